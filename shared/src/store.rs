//! JetStream, the one store of the shippy system: the event stream every piece of
//! state is derived from, appending to it, following it, and reading it back.
//!
//! # Layout
//!
//! One stream, [`EVENTS_STREAM`], holds every fact, each on a subject that names
//! what it is about:
//!
//! | subject                           | message                      | written by          | one per |
//! |-----------------------------------|------------------------------|---------------------|---------|
//! | `vessel.added.<vessel_id>`        | [`VesselAdded`]              | vessel-worker       | vessel: the only message on its subject |
//! | `consignment.created.<vessel_id>` | [`ConsignmentsCreated`]      | consignment-worker  | durable append of one or more creates booked onto that vessel |
//!
//! # Sequence rules
//!
//! * **A vessel is added once**: its event is appended with
//!   `Nats-Expected-Last-Subject-Sequence: 0`, which the server refuses when the
//!   subject holds a message already. Two instances seeding the same fleet end with
//!   one event per vessel.
//! * **Capacity is guarded by the server**: an append to
//!   `consignment.created.<vessel_id>` names the subject's last sequence that the
//!   writer's decision saw. If another writer appended in between, the server
//!   refuses it ([`AppendError::Conflict`]) and the writer decides again on a newer
//!   view. Exact subjects only, so the check costs the same whatever the fleet.
//! * **Idempotency keys**: the first entry for a key within the idempotency window,
//!   in stream order, is the create; a later entry with the same key (two instances
//!   racing onto different vessels) is void: it books nothing and lists nowhere.
//!   Every projection applies this rule alike ([`crate::ledger`]).
//! * Nothing is ever changed or deleted: projections are rebuilt by reading the
//!   stream from its first sequence.
//!
//! [`VesselAdded`]: crate::model::VesselAdded
//! [`ConsignmentsCreated`]: crate::model::ConsignmentsCreated

use std::time::Duration;

use async_nats::{
    Client, StatusCode,
    jetstream::{self, consumer::DeliverPolicy, stream::StorageType},
};
use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use serde::Serialize;

use crate::subjects::{consignment, vessel};

/// The events: every vessel added and every consignment created.
pub const EVENTS_STREAM: &str = "shippy-events";
/// The events again, mirrored by the server for clients to follow (`shippy watch`):
/// bounded by [`bounded_for_clients`], so that what clients create on it can never
/// keep the workers, who follow [`EVENTS_STREAM`], from following.
pub const FEED_STREAM: &str = "shippy-feed";

/// Where JetStream keeps the event stream a worker creates when absent.
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

/// How the event stream is created when a worker finds it absent.
/// Existing ones are used as they are: changing replicas later is an operator's
/// `nats stream edit`, not a worker's restart.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct StoreConfig {
    /// Replicas of the event stream: 1 on a single server, 3 on a cluster.
    #[arg(long, env = "JS_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub js_replicas: u8,
    /// Storage of the event stream.
    #[arg(long, env = "JS_STORAGE", value_enum, default_value_t = Storage::File)]
    pub js_storage: Storage,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { js_replicas: 1, js_storage: Storage::File }
    }
}

impl StoreConfig {
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
/// The reply to a request the store failed: a 500 that keeps the cause to itself;
/// the worker answering logs the cause.
impl From<StoreError> for crate::ServiceError {
    fn from(_: StoreError) -> Self {
        Self::internal("the store failed")
    }
}

/// The event stream, and its mirror for clients ([`FEED_STREAM`]), created with
/// `config` if they do not exist yet; returns the event stream.
///
/// Several instances may start at once: whichever creates them, all end up with the
/// same streams. Messages are kept for good (no limits): the stream is the record.
pub async fn events(js: &jetstream::Context, config: &StoreConfig) -> Result<jetstream::stream::Stream, StoreError> {
    let events = config.stream(jetstream::stream::Config {
        name: EVENTS_STREAM.to_owned(),
        description: Some("shippy events: vessels added and consignments created".to_owned()),
        subjects: vec![consignment::CREATED_EVENTS.to_owned(), vessel::ADDED_EVENTS.to_owned()],
        // Nothing is deduplicated by message id: appends are guarded by subject sequences.
        duplicate_window: Duration::from_secs(1),
        ..jetstream::stream::Config::default()
    });
    let feed = bounded_for_clients(config.stream(jetstream::stream::Config {
        name: FEED_STREAM.to_owned(),
        description: Some("shippy events, mirrored for clients to follow".to_owned()),
        mirror: Some(jetstream::stream::Source { name: EVENTS_STREAM.to_owned(), ..Default::default() }),
        ..jetstream::stream::Config::default()
    }));
    let stream =
        until_answered(&format!("open stream {EVENTS_STREAM}"), || js.get_or_create_stream(events.clone())).await?;
    until_answered(&format!("open stream {FEED_STREAM}"), || js.get_or_create_stream(feed.clone())).await?;
    Ok(stream)
}

/// How long a worker starting keeps asking JetStream for one thing it needs to
/// start: long enough to ride out a cluster's election (seconds), short enough that
/// a lasting fault (JetStream off, a login without the permissions) ends the worker
/// with its error within a minute.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The pause between two of those asks.
const START_RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Runs `attempt` until it succeeds, for up to [`START_TIMEOUT`]: for what a worker
/// needs at start. A stream of a cluster may have no leader for a few seconds (an
/// election after a node was lost or cut off, a stream just created), and a worker
/// starting then waits for it instead of exiting and being restarted. Over NATS a
/// lasting fault looks the same as a passing one (a request JetStream does not
/// answer), so every failure is asked again, and the last is returned.
pub async fn until_answered<T, E, F>(operation: &str, mut attempt: impl FnMut() -> F) -> Result<T, StoreError>
where
    F: std::future::Future<Output = Result<T, E>>,
    E: Into<async_nats::Error>,
{
    let started = std::time::Instant::now();
    for failures in 1_u32.. {
        let error = match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => StoreError::new(operation, error),
        };
        if started.elapsed() >= START_TIMEOUT {
            return Err(error);
        }
        // The 1st, 2nd, 4th, 8th... failure: the log shows the fault without a line every 250 ms.
        if failures.is_power_of_two() {
            tracing::warn!(%error, failures, "JetStream did not answer yet; asking again");
        }
        tokio::time::sleep(START_RETRY_PAUSE).await;
    }
    unreachable!("fails for good within START_TIMEOUT, long before u32::MAX failures")
}

/// Why an append to the event stream failed.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The subject's last sequence is not the one expected: another writer came
    /// first, and the writer must decide again on a newer view.
    #[error("another writer appended to {0} first")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Appends `payload` to `subject` in the event stream, provided the last message on
/// `subject` has sequence `expected` (0: none), and waits until JetStream has
/// stored it (with `sync_interval: always`, fsynced). Returns its stream sequence.
///
/// In a span of its own, whose trace context goes into the message's headers
/// ([`crate::telemetry`]): a consumer of the event can link back to the request.
pub async fn append(js: &jetstream::Context, subject: &str, expected: u64, payload: Bytes) -> Result<u64, AppendError> {
    let span = crate::telemetry::jetstream_span("publish", EVENTS_STREAM, subject);
    span.run(append_in_current_span(js, subject, expected, payload)).await
}

/// [`append`] in the current span: a `publish` span
/// ([`crate::telemetry::jetstream_span`]) that its caller runs it in, so that one
/// write for several requests makes a single span, linked to all of them, rather
/// than one span more per write.
pub async fn append_in_current_span(
    js: &jetstream::Context,
    subject: &str,
    expected: u64,
    payload: Bytes,
) -> Result<u64, AppendError> {
    let failed = |error: async_nats::jetstream::context::PublishError| {
        if is_wrong_sequence(&error) {
            AppendError::Conflict(subject.to_owned())
        } else {
            AppendError::Store(StoreError::new(format!("append to {subject}"), error))
        }
    };
    let mut headers = None;
    crate::telemetry::inject(&mut headers);
    let mut headers = headers.unwrap_or_default();
    headers.insert(async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, expected.to_string().as_str());
    let started = std::time::Instant::now();
    let acked = async {
        let ack = js.publish_with_headers(subject.to_owned(), headers, payload).await.map_err(failed)?;
        ack.await.map_err(failed)
    }
    .await;
    let conflict = matches!(acked, Err(AppendError::Conflict(_)));
    crate::meter::jetstream("publish", started.elapsed(), conflict);
    match acked {
        Ok(ack) => Ok(ack.sequence),
        Err(error) => {
            crate::telemetry::record_error(&if conflict { "conflict" } else { "store" });
            tracing::debug!(%error, "append failed");
            Err(error)
        }
    }
}

/// The sequence of the newest message in the event stream (0 when it is empty),
/// as its leader has it.
pub async fn last_sequence(stream: &jetstream::stream::Stream) -> Result<u64, StoreError> {
    let span = crate::telemetry::jetstream_span("info", EVENTS_STREAM, EVENTS_STREAM);
    let info = span.run(stream.get_info()).await.map_err(|error| {
        span.record_error(&"store");
        StoreError::new(format!("read the state of {EVENTS_STREAM}"), error)
    })?;
    Ok(info.state.last_sequence)
}

/// A message of the event stream, as a follower gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub sequence: u64,
    pub subject: String,
    /// When the server stored it, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub payload: Bytes,
}

/// Follows the event stream from sequence `from` on, in stream order, through an
/// ordered push consumer: ephemeral, unacknowledged, recreated by async-nats from
/// the next sequence after a gap or a lost connection, and gone when dropped.
pub async fn follow(
    client: &Client,
    stream: &jetstream::stream::Stream,
    from: u64,
) -> Result<impl Stream<Item = Result<Event, StoreError>> + Send + use<>, StoreError> {
    let consumer = stream
        .create_consumer(jetstream::consumer::push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: from.max(1) },
            ..Default::default()
        })
        .await
        .map_err(|error| StoreError::new(format!("follow {EVENTS_STREAM}"), error))?;
    let messages =
        consumer.messages().await.map_err(|error| StoreError::new(format!("follow {EVENTS_STREAM}"), error))?;
    Ok(messages.map(|message| {
        let message = message.map_err(|error| StoreError::new(format!("follow {EVENTS_STREAM}"), error))?;
        let info = message.info().map_err(|error| StoreError::new(format!("follow {EVENTS_STREAM}"), error))?;
        let nanos = info.published.unix_timestamp_nanos();
        let event = Event {
            sequence: info.stream_sequence,
            subject: message.subject.to_string(),
            time_ms: u64::try_from(nanos / 1_000_000).unwrap_or(0),
            payload: message.payload.clone(),
        };
        Ok(event)
    }))
}

/// Whether `key` can stand in a subject as shippy uses ids: one NATS subject token
/// of letters, digits, `-` and `_`, at most 128 bytes (ids from requests are
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

/// Whether JetStream refused a write, somewhere in `error`'s chain of sources,
/// because the subject's last sequence was not the one expected (10071 or 10164).
pub fn is_wrong_sequence(error: &(dyn std::error::Error + 'static)) -> bool {
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

/// A message read back from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub subject: String,
    /// The stream sequence.
    pub sequence: u64,
    pub payload: Bytes,
    /// Messages matching the filter after this one, as the server counted them.
    pub pending: u64,
}

/// What [`direct_batch`] asks for: up to `batch` messages on `subject` (wildcards
/// allowed) from sequence `from` on, at most about `max_bytes` of them, from a
/// replica that has the stream up to `min_last_seq` at least.
#[derive(Debug, Clone, Serialize)]
pub struct BatchRequest {
    #[serde(rename = "seq")]
    pub from: u64,
    #[serde(rename = "next_by_subj")]
    pub subject: String,
    pub batch: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<usize>,
    /// Read your writes on a replicated stream: a replica that has not stored this
    /// sequence yet refuses (ADR-31), and the read is sent again, to whichever
    /// replica answers, until one has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_last_seq: Option<u64>,
}

/// How often a read that a replica could not answer whole (behind the sequence
/// asked for, or lacking events the others hold) is sent again, and the pause
/// before each, growing.
const READ_RETRIES: u32 = 10;
const READ_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// Runs `read` again while it gives `None` (the replica that answered could not
/// answer whole), up to [`READ_RETRIES`] more times after a growing pause: each ask
/// may reach another replica. `None` if none did.
pub async fn ask_replicas<T, F>(mut read: impl FnMut() -> F) -> Result<Option<T>, StoreError>
where
    F: std::future::Future<Output = Result<Option<T>, StoreError>>,
{
    for attempt in 0..=READ_RETRIES {
        if attempt > 0 {
            tokio::time::sleep(READ_RETRY_PAUSE * attempt).await;
        }
        if let Some(answer) = read().await? {
            return Ok(Some(answer));
        }
    }
    Ok(None)
}

/// The most messages one [`BatchRequest`] returns (the server's limit).
pub const MAX_BATCH: usize = 1000;

/// Reads a batch of messages from `stream` in one round trip, with the direct get
/// API of ADR-31 (`$JS.API.DIRECT.GET.<stream>`, NATS 2.11+, streams with `allow_direct`,
/// as the event stream has): no consumer is created.
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
    let span = crate::telemetry::jetstream_span("direct_get", stream, &request.subject);
    let started = std::time::Instant::now();
    let read = span.run(ask_replicas(|| direct_batch_once(client, stream, request, timeout))).await;
    crate::meter::jetstream("direct_get", started.elapsed(), false);
    let read = read.and_then(|read| {
        read.ok_or_else(|| {
            let operation = format!("read {stream} from sequence {}", request.from);
            StoreError::new(operation, "every replica that answered is behind the sequence asked for")
        })
    });
    if read.is_err() {
        span.record_error(&"store");
    }
    read
}

/// One [`direct_batch`]; `None` if the replica that answered is behind `min_last_seq`.
async fn direct_batch_once(
    client: &Client,
    stream: &str,
    request: &BatchRequest,
    timeout: Duration,
) -> Result<Option<Vec<StoredMessage>>, StoreError> {
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
                Some(204 | 404) => return Ok(true),
                // A replica behind `min_last_seq`.
                Some(412) => return Ok(false),
                Some(status) if status != 200 => {
                    let reason = message.description.unwrap_or_default();
                    return Err(StoreError::new(operation(), format!("direct get answered {status} {reason}")));
                }
                _ => messages.push(stored_message(message).map_err(|error| StoreError::new(operation(), error))?),
            }
        }
        Err(StoreError::new(operation(), "the connection closed"))
    };
    let current =
        tokio::time::timeout(timeout, read).await.map_err(|_| StoreError::new(operation(), "timed out"))??;
    Ok(current.then_some(messages))
}

fn stored_message(message: async_nats::Message) -> Result<StoredMessage, String> {
    let headers = message.headers.ok_or("a direct get reply without headers")?;
    let header = |name: &str| headers.get(name).map(async_nats::HeaderValue::as_str);
    let number = |name: &str| header(name).and_then(|value| value.parse::<u64>().ok());
    Ok(StoredMessage {
        subject: header("Nats-Subject").ok_or("no Nats-Subject header")?.to_owned(),
        sequence: number("Nats-Sequence").ok_or("no Nats-Sequence header")?,
        pending: number("Nats-Num-Pending").unwrap_or(0),
        payload: message.payload,
    })
}

#[cfg(test)]
mod tests {
    use async_nats::jetstream::context::{PublishError, PublishErrorKind};

    use super::*;

    /// A publish refused by JetStream with `err_code`, as async-nats 0.51 reports it.
    fn refused(err_code: u64, description: &str) -> PublishError {
        let refusal: jetstream::Error = serde_json::from_value(serde_json::json!({
            "code": 400, "err_code": err_code, "description": description
        }))
        .unwrap();
        let kind = if err_code == 10071 { PublishErrorKind::WrongLastSequence } else { PublishErrorKind::Other };
        PublishError::with_source(kind, refusal)
    }

    #[test]
    fn a_stale_subject_sequence_is_a_conflict_on_a_single_server_and_on_a_cluster() {
        assert!(is_wrong_sequence(&refused(10071, "wrong last sequence: 7")));
        assert!(is_wrong_sequence(&refused(10164, "wrong last sequence")));
        assert!(!is_wrong_sequence(&refused(10077, "maximum messages exceeded")));
    }
}
