//! JetStream, the one store of the shippy system: bucket and stream names, how they
//! are created, and reading stored messages in batches.
//!
//! Every piece of state lives in a JetStream Key-Value bucket or stream on the NATS
//! server the workers already use, so the workers themselves are stateless: any
//! instance can serve any request, and a restarted one has lost nothing.
//!
//! | name                          | kind   | key / subject                  | written by          |
//! |-------------------------------|--------|--------------------------------|---------------------|
//! | [`VESSELS_BUCKET`]            | KV     | vessel id                      | vessel-worker       |
//! | [`BOOKINGS_BUCKET`]           | KV     | consignment id                 | vessel-worker       |
//! | [`CONSIGNMENTS_BUCKET`]       | KV     | consignment id                 | consignment-worker  |
//! | [`CREATES_BUCKET`]            | KV     | consignment id (in flight)     | consignment-worker  |
//! | [`IDEMPOTENCY_BUCKET`]        | KV     | name-based UUID of `Nats-Msg-Id` | consignment-worker |
//! | [`EVENTS_STREAM`]             | stream | `consignment.created`          | consignment-worker  |
//!
//! The key layout and revision rules of each bucket are documented with the worker
//! that owns it (`vessel_worker::store`, `consignment_worker::store`).

use std::time::Duration;

use async_nats::{
    Client, StatusCode,
    jetstream::{self, kv, stream::StorageType},
};
use bytes::Bytes;
use futures::StreamExt as _;
use serde::Serialize;

/// Vessels, one key per vessel, holding its capacity and what is booked on it.
pub const VESSELS_BUCKET: &str = "shippy-vessels";
/// Bookings, one key per consignment: which vessel carries it.
pub const BOOKINGS_BUCKET: &str = "shippy-bookings";
/// Consignments, one key per consignment, written once.
pub const CONSIGNMENTS_BUCKET: &str = "shippy-consignments";
/// Creates in flight, one key per consignment, deleted when the create is done.
pub const CREATES_BUCKET: &str = "shippy-creates";
/// Idempotency keys (`Nats-Msg-Id`) seen within the idempotency window.
pub const IDEMPOTENCY_BUCKET: &str = "shippy-idempotency";
/// The durable `consignment.created` events, one per consignment.
pub const EVENTS_STREAM: &str = "shippy-consignment-events";

/// The subject of `key` in `bucket`'s stream: KV buckets are streams named
/// `KV_<bucket>` whose subjects are `$KV.<bucket>.<key>`.
pub fn kv_subject(bucket: &str, key: &str) -> String {
    format!("$KV.{bucket}.{key}")
}

/// The stream behind a KV bucket.
pub fn kv_stream(bucket: &str) -> String {
    format!("KV_{bucket}")
}

/// Where JetStream keeps the buckets and streams a worker creates when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Storage {
    /// On disk: survives a NATS restart (the default).
    File,
    /// In memory: gone when the NATS server stops. For tests and benchmarks only.
    Memory,
}

impl From<Storage> for StorageType {
    fn from(storage: Storage) -> Self {
        match storage {
            Storage::File => Self::File,
            Storage::Memory => Self::Memory,
        }
    }
}

/// How the buckets and streams are created when a worker finds them absent.
/// Existing ones are used as they are: changing replicas later is an operator's
/// `nats stream edit`, not a worker's restart.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct StoreConfig {
    /// Replicas of every bucket and stream: 1 on a single server, 3 on a cluster.
    #[arg(long, env = "JS_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub js_replicas: u8,
    /// Storage of every bucket and stream.
    #[arg(long, env = "JS_STORAGE", value_enum, default_value_t = Storage::File)]
    pub js_storage: Storage,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { js_replicas: 1, js_storage: Storage::File }
    }
}

impl StoreConfig {
    /// A KV bucket keeping only the latest value of each key, as every shippy bucket does.
    pub fn bucket(&self, name: &str, description: &str) -> kv::Config {
        kv::Config {
            bucket: name.to_owned(),
            description: description.to_owned(),
            history: 1,
            storage: self.js_storage.into(),
            num_replicas: usize::from(self.js_replicas),
            ..kv::Config::default()
        }
    }

    /// A stream with these settings.
    pub fn stream(&self, config: jetstream::stream::Config) -> jetstream::stream::Config {
        jetstream::stream::Config {
            storage: self.js_storage.into(),
            num_replicas: usize::from(self.js_replicas),
            allow_direct: true,
            ..config
        }
    }
}

/// The most consumers a stream clients follow may have at once (its
/// `max_consumers`): each `shippy watch`, or other follower of the events, holds one
/// while it runs and for up to [`CONSUMER_INACTIVE_LIMIT`] after it is gone. One
/// more is refused by the server with JetStream error 10026, "maximum consumers
/// limit reached".
pub const MAX_CONSUMERS: i32 = 64;

/// The longest a consumer of a stream clients follow outlives its last subscriber
/// (the stream's `consumer_limits.inactive_threshold`): the server deletes any
/// consumer, durable or not, this long after nobody consumes from it; one asking
/// for longer is refused. 30 s is what async-nats gives its ordered consumers
/// (`shippy watch`).
pub const CONSUMER_INACTIVE_LIMIT: Duration = Duration::from_secs(30);

/// `config` bounded for the clients that follow it (README, "Security"): at most
/// [`MAX_CONSUMERS`] consumers at once, none outliving its last subscriber by more
/// than [`CONSUMER_INACTIVE_LIMIT`], so that nothing a client creates on the
/// stream piles up or stays behind. Durable consumers that must survive a quiet
/// spell therefore need a stream without these limits, or the admin lifting them
/// (`nats stream edit`). Applied when the stream is created; an existing stream is
/// the admin's to update.
pub fn bounded_for_clients(config: jetstream::stream::Config) -> jetstream::stream::Config {
    jetstream::stream::Config {
        max_consumers: MAX_CONSUMERS,
        consumer_limits: Some(jetstream::stream::ConsumerLimits {
            inactive_threshold: CONSUMER_INACTIVE_LIMIT,
            max_ack_pending: 0,
        }),
        ..config
    }
}

/// A JetStream operation that failed.
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {source}")]
pub struct StoreError {
    pub operation: String,
    #[source]
    pub source: async_nats::Error,
}

impl StoreError {
    pub fn new(operation: impl Into<String>, source: impl Into<async_nats::Error>) -> Self {
        Self { operation: operation.into(), source: source.into() }
    }
}

/// A store failure costs the request a 500; the details go to the log, not to the caller.
impl From<StoreError> for crate::ServiceError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "JetStream store failed");
        Self::internal("the store failed")
    }
}

/// The bucket `config.bucket`, created with `config` if it does not exist yet.
///
/// Several instances may start at once: whichever creates it, all end up with the same bucket.
pub async fn key_value(js: &jetstream::Context, config: kv::Config) -> Result<kv::Store, StoreError> {
    if let Ok(store) = js.get_key_value(&config.bucket).await {
        return Ok(store);
    }
    let name = config.bucket.clone();
    match js.create_key_value(config).await {
        Ok(store) => Ok(store),
        // Another instance created it between the two calls.
        Err(error) => {
            js.get_key_value(&name).await.map_err(|_| StoreError::new(format!("create bucket {name}"), error))
        }
    }
}

/// The stream `config.name`, created with `config` if it does not exist yet.
pub async fn stream(
    js: &jetstream::Context,
    config: jetstream::stream::Config,
) -> Result<jetstream::stream::Stream, StoreError> {
    let name = config.name.clone();
    js.get_or_create_stream(config).await.map_err(|error| StoreError::new(format!("create stream {name}"), error))
}

/// Whether `key` can be a key in a bucket as shippy uses them: one NATS subject
/// token of letters, digits, `-` and `_`, at most 128 bytes (ids from requests are
/// checked with this before they reach a subject).
pub fn is_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 128 && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// Decodes a stored JSON value; `what` names it in the error.
pub fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| StoreError::new(format!("decode {what}"), error))
}

/// Encodes a value to store, as JSON.
pub fn encode(value: &impl Serialize) -> Bytes {
    crate::codec::encode(value).into()
}

/// The value of `key` in `bucket`, decoded; `None` if there is none.
pub async fn read<T: serde::de::DeserializeOwned>(bucket: &kv::Store, key: &str) -> Result<Option<T>, StoreError> {
    let value =
        bucket.get(key).await.map_err(|error| StoreError::new(format!("read {key} in {}", bucket.name), error))?;
    value.map(|bytes| decode(key, &bytes)).transpose()
}

/// Creates `key` in `bucket` holding `value` unless the key exists; returns the
/// value that is stored, and whether this call stored it. Of two racing creates
/// one wins and both return the winner's value.
///
/// The stored value is read from the stream's leader: on a cluster, a direct get
/// (which `bucket.get` is) may reach a follower that has not got the winner's value yet.
pub async fn create_or_read<T: Serialize + serde::de::DeserializeOwned + Clone>(
    bucket: &kv::Store,
    key: &str,
    value: &T,
) -> Result<(T, bool), StoreError> {
    match bucket.create(key, encode(value)).await {
        Ok(_) => Ok((value.clone(), true)),
        Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists || is_wrong_sequence(&error) => {
            let stored = read_from_leader(bucket, key).await?;
            Ok((
                stored.ok_or_else(|| StoreError::new(format!("read {key}"), "it exists and yet cannot be read"))?,
                false,
            ))
        }
        Err(error) => Err(StoreError::new(format!("create {key} in {}", bucket.name), error)),
    }
}

/// The value of `key` in `bucket`, decoded, as the stream's leader has it; `None`
/// if there is none.
async fn read_from_leader<T: serde::de::DeserializeOwned>(
    bucket: &kv::Store,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match bucket.stream.get_last_raw_message_by_subject(&kv_subject(&bucket.name, key)).await {
        Ok(message) => {
            let operation = message.headers.get("KV-Operation").map(async_nats::HeaderValue::as_str);
            if matches!(operation, Some("DEL" | "PURGE")) {
                return Ok(None);
            }
            decode(key, &message.payload).map(Some)
        }
        Err(error) if error.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(error) => Err(StoreError::new(format!("read {key} in {} from its leader", bucket.name), error)),
    }
}

/// Whether a compare-and-set update of a KV entry failed because the entry is no
/// longer at the revision given: another writer came first, and the caller should
/// read the entry again.
///
/// A single server answers a stale revision with JetStream error 10071, which
/// async-nats 0.51 reports as [`kv::UpdateErrorKind::WrongLastRevision`]. The leader
/// of a replicated stream (NATS 2.12) answers with 10164, "wrong last sequence"
/// without the sequence, which async-nats reports as `Other`: both are looked for.
pub fn is_wrong_revision(error: &kv::UpdateError) -> bool {
    error.kind() == kv::UpdateErrorKind::WrongLastRevision || is_wrong_sequence(error)
}

/// Whether JetStream refused a write, somewhere in `error`'s chain of sources,
/// because the subject's last sequence was not the one expected (10071 or 10164).
fn is_wrong_sequence(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(error) = source {
        if let Some(jetstream) = error.downcast_ref::<jetstream::Error>() {
            return matches!(
                jetstream.error_code(),
                jetstream::ErrorCode::STREAM_WRONG_LAST_SEQUENCE
                    | jetstream::ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT
            );
        }
        source = error.source();
    }
    false
}

/// Every value in `bucket` (its subject cut to the key), newest revision of each
/// key, in key order: the whole bucket in as few round trips as [`direct_batch`]
/// allows. For buckets that stay small (the fleet, the creates in flight), not for
/// the consignments. A key changed while a read spans several batches shows once,
/// as the newest revision read (or not at all, if that is a delete).
pub async fn read_bucket(client: &Client, bucket: &str, timeout: Duration) -> Result<Vec<StoredMessage>, StoreError> {
    let stream = kv_stream(bucket);
    let prefix = kv_subject(bucket, "");
    let mut entries = std::collections::BTreeMap::new();
    let mut from = 1;
    loop {
        let request = BatchRequest { from, subject: kv_subject(bucket, ">"), batch: MAX_BATCH, max_bytes: None };
        let batch = direct_batch(client, &stream, &request, timeout).await?;
        let Some(last) = batch.last() else { break };
        let more = last.pending > 0;
        from = last.sequence + 1;
        for mut message in batch {
            let key = message.subject.strip_prefix(&prefix).unwrap_or(&message.subject).to_owned();
            message.subject.clone_from(&key);
            entries.insert(key, message);
        }
        if !more {
            break;
        }
    }
    Ok(entries.into_values().filter(|message| !message.deleted).collect())
}

/// A message read back from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub subject: String,
    /// The stream sequence; for a KV entry, its revision.
    pub sequence: u64,
    pub payload: Bytes,
    /// A KV delete or purge marker rather than a value.
    pub deleted: bool,
    /// Messages matching the filter after this one, as the server counted them.
    pub pending: u64,
}

/// What [`direct_batch`] asks for: up to `batch` messages on `subject` (wildcards
/// allowed) from sequence `from` on, at most about `max_bytes` of them.
#[derive(Debug, Clone, Serialize)]
pub struct BatchRequest {
    #[serde(rename = "seq")]
    pub from: u64,
    #[serde(rename = "next_by_subj")]
    pub subject: String,
    pub batch: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<usize>,
}

/// The most messages one [`BatchRequest`] returns (the server's limit).
pub const MAX_BATCH: usize = 1000;

/// Reads a batch of messages from `stream` in one round trip, with the direct get
/// API of ADR-31 (`$JS.API.DIRECT.GET.<stream>`, NATS 2.11+, streams with `allow_direct`,
/// which every KV bucket has): no consumer is created.
///
/// async-nats 0.51 has single-message direct gets only, and the `jetstream-extra`
/// crate that wraps batches is built on async-nats 0.48, so the few lines of protocol
/// live here: the server answers on our inbox with one message per match, each with
/// `Nats-Subject` and `Nats-Sequence` headers, then an empty `204 EOB` status
/// (`404` when nothing matches).
///
/// # Panics
/// Never: a [`BatchRequest`] always serializes.
pub async fn direct_batch(
    client: &Client,
    stream: &str,
    request: &BatchRequest,
    timeout: Duration,
) -> Result<Vec<StoredMessage>, StoreError> {
    let operation = || format!("read {stream} from sequence {}", request.from);
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.map_err(|error| StoreError::new(operation(), error))?;
    let body = serde_json::to_vec(request).expect("a batch request serializes");
    client
        .publish_with_reply(format!("$JS.API.DIRECT.GET.{stream}"), inbox, body.into())
        .await
        .map_err(|error| StoreError::new(operation(), error))?;

    let mut messages = Vec::new();
    let read = async {
        while let Some(message) = replies.next().await {
            match message.status.as_ref().map(StatusCode::as_u16) {
                // 204 EOB ends the batch; 404 says nothing (more) matches.
                Some(204 | 404) => return Ok(()),
                Some(status) if status != 200 => {
                    let reason = message.description.unwrap_or_default();
                    return Err(StoreError::new(operation(), format!("direct get answered {status} {reason}")));
                }
                _ => messages.push(stored_message(message).map_err(|error| StoreError::new(operation(), error))?),
            }
        }
        Err(StoreError::new(operation(), "the connection closed"))
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| StoreError::new(operation(), "timed out"))??;
    Ok(messages)
}

fn stored_message(message: async_nats::Message) -> Result<StoredMessage, String> {
    let headers = message.headers.ok_or("a direct get reply without headers")?;
    let header = |name: &str| headers.get(name).map(async_nats::HeaderValue::as_str);
    let number = |name: &str| header(name).and_then(|value| value.parse::<u64>().ok());
    Ok(StoredMessage {
        subject: header("Nats-Subject").ok_or("no Nats-Subject header")?.to_owned(),
        sequence: number("Nats-Sequence").ok_or("no Nats-Sequence header")?,
        deleted: matches!(header("KV-Operation"), Some("DEL" | "PURGE")),
        pending: number("Nats-Num-Pending").unwrap_or(0),
        payload: message.payload,
    })
}

#[cfg(test)]
mod tests {
    use async_nats::jetstream::context::{PublishError, PublishErrorKind};

    use super::*;

    /// A KV update refused by JetStream with `err_code`, as async-nats 0.51 reports it.
    fn refused(err_code: u64) -> kv::UpdateError {
        let refusal: jetstream::Error = serde_json::from_value(serde_json::json!({
            "code": 400, "err_code": err_code, "description": "wrong last sequence"
        }))
        .unwrap();
        let kind = if err_code == 10071 { PublishErrorKind::WrongLastSequence } else { PublishErrorKind::Other };
        PublishError::with_source(kind, refusal).into()
    }

    #[test]
    fn a_stale_revision_is_a_lost_race_on_a_single_server_and_on_a_cluster() {
        assert!(is_wrong_revision(&refused(10071)));
        assert!(is_wrong_revision(&refused(10164)));
        assert!(!is_wrong_revision(&refused(10077)));
        let created: kv::CreateError = refused(10164).into();
        assert!(is_wrong_sequence(&created));
    }
}
