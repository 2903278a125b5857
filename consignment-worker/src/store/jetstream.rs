//! [`ConsignmentStore`] on JetStream: three Key-Value buckets and the events stream.

use std::time::Duration;

use async_nats::{
    HeaderMap,
    jetstream::{self, kv},
};
use shared::{
    model::Consignment,
    store::{
        BatchRequest, CONSIGNMENTS_BUCKET, CREATES_BUCKET, EVENTS_STREAM, IDEMPOTENCY_BUCKET, MAX_BATCH, StoreConfig,
        StoreError, create_or_read, decode, direct_batch, encode, key_value, kv_stream, kv_subject, read, read_bucket,
    },
    subjects::consignment::{CREATED_EVENT, IDEMPOTENCY_HEADER},
};
use tracing::instrument;

use super::{ConsignmentStore, KeyClaim, Page, PageQuery, PendingCreate, StoredCreate};

/// How long one batch read may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The most stored consignments one filtered page looks at before it answers with
/// what it found and a cursor to go on from.
const SCAN_LIMIT: usize = 10 * MAX_BATCH;

/// How long the marker a finished create leaves in the creates bucket lives: the
/// bucket holds the creates in flight and the few finished in this while, so
/// scanning it costs what is in flight, not what was ever created.
const FINISHED_MARKER_TTL: Duration = Duration::from_secs(5);

/// How long idempotency keys and event ids are remembered.
#[derive(Debug, Clone, Copy)]
pub struct Windows {
    /// A repeated `Nats-Msg-Id` within this window gives the same consignment.
    pub idempotency: Duration,
    /// A repeated event within this window is stored once (the stream's duplicate window).
    pub events: Duration,
}

/// The consignment-worker's buckets and stream.
#[derive(Debug, Clone)]
pub struct JetStreamStore {
    client: async_nats::Client,
    js: jetstream::Context,
    consignments: kv::Store,
    creates: kv::Store,
    keys: kv::Store,
}

impl JetStreamStore {
    /// Opens the buckets and the stream, creating them with `config` if absent.
    pub async fn open(client: async_nats::Client, config: &StoreConfig, windows: Windows) -> Result<Self, StoreError> {
        let js = jetstream::new(client.clone());
        let consignments =
            key_value(&js, config.bucket(CONSIGNMENTS_BUCKET, "shippy consignments, by id, written once")).await?;
        let creates = key_value(
            &js,
            kv::Config {
                // Lets a finished create's purge marker expire (per-message TTL, NATS 2.11+).
                limit_markers: Some(FINISHED_MARKER_TTL),
                ..config.bucket(CREATES_BUCKET, "shippy creates in flight")
            },
        )
        .await?;
        let keys = key_value(
            &js,
            kv::Config {
                max_age: windows.idempotency,
                ..config.bucket(IDEMPOTENCY_BUCKET, "shippy idempotency keys (Nats-Msg-Id) and what they created")
            },
        )
        .await?;
        shared::store::stream(
            &js,
            // Clients follow it (`shippy watch`): bounded for them.
            shared::store::bounded_for_clients(config.stream(jetstream::stream::Config {
                name: EVENTS_STREAM.to_owned(),
                description: Some("shippy consignment.created events, one per consignment".to_owned()),
                subjects: vec![CREATED_EVENT.to_owned()],
                duplicate_window: windows.events,
                ..jetstream::stream::Config::default()
            })),
        )
        .await?;
        Ok(Self { client, js, consignments, creates, keys })
    }
}

impl ConsignmentStore for JetStreamStore {
    #[instrument(skip_all, err)]
    async fn claim_key(&self, key: &str, claim: &KeyClaim) -> Result<KeyClaim, StoreError> {
        Ok(create_or_read(&self.keys, key, claim).await?.0)
    }

    #[instrument(skip(self), err)]
    async fn consignment(&self, id: &str) -> Result<Option<Consignment>, StoreError> {
        read(&self.consignments, id).await
    }

    #[instrument(skip_all, fields(consignment = %consignment.id), err)]
    async fn store_consignment(&self, consignment: &Consignment) -> Result<Consignment, StoreError> {
        Ok(create_or_read(&self.consignments, &consignment.id, consignment).await?.0)
    }

    #[instrument(skip(self, create), err)]
    async fn begin_create(&self, id: &str, create: &PendingCreate) -> Result<bool, StoreError> {
        Ok(create_or_read(&self.creates, id, create).await?.1)
    }

    #[instrument(skip(self), err)]
    async fn finish_create(&self, id: &str) -> Result<(), StoreError> {
        self.creates
            .purge_with_ttl(id, FINISHED_MARKER_TTL)
            .await
            .map_err(|error| StoreError::new(format!("finish create {id}"), error))
    }

    #[instrument(skip(self), err)]
    async fn creates_in_flight(&self) -> Result<Vec<StoredCreate>, StoreError> {
        read_bucket(&self.client, CREATES_BUCKET, READ_TIMEOUT)
            .await?
            .into_iter()
            .map(|entry| {
                Ok(StoredCreate { create: decode(&entry.subject, &entry.payload)?, consignment_id: entry.subject })
            })
            .collect()
    }

    #[instrument(skip_all, fields(consignment = %consignment.id), err)]
    async fn announce(&self, consignment: &Consignment) -> Result<(), StoreError> {
        let operation = || format!("announce consignment {}", consignment.id);
        let mut headers = HeaderMap::new();
        headers.insert(IDEMPOTENCY_HEADER, consignment.id.as_str());
        self.js
            .publish_with_headers(CREATED_EVENT, headers, encode(consignment))
            .await
            .map_err(|error| StoreError::new(operation(), error))?
            .await
            .map_err(|error| StoreError::new(operation(), error))?;
        Ok(())
    }

    #[instrument(skip(self), err)]
    async fn page(&self, query: &PageQuery) -> Result<Page, StoreError> {
        let stream = kv_stream(CONSIGNMENTS_BUCKET);
        let mut page = Page { consignments: Vec::new(), next: None };
        let (mut bytes, mut scanned, mut from) = (0, 0, query.after + 1);
        let batch_size = if query.filter.is_empty() { query.limit.min(MAX_BATCH) } else { MAX_BATCH };
        loop {
            let request = BatchRequest {
                from,
                subject: kv_subject(CONSIGNMENTS_BUCKET, ">"),
                batch: batch_size,
                max_bytes: Some(query.max_bytes),
            };
            let batch = direct_batch(&self.client, &stream, &request, READ_TIMEOUT).await?;
            let Some(last) = batch.last() else { return Ok(page) };
            let (last_sequence, more) = (last.sequence, last.pending > 0);
            for message in batch {
                scanned += 1;
                if !message.deleted {
                    let consignment: Consignment = decode(&message.subject, &message.payload)?;
                    if query.filter.matches(&consignment) {
                        // As the reply encodes it, which need not be as it was stored, and a
                        // comma; the caller leaves room in max_bytes for the reply's envelope.
                        let size = shared::codec::encode(&consignment).len() + 1;
                        if bytes + size > query.max_bytes {
                            return Ok(page);
                        }
                        bytes += size;
                        page.consignments.push(consignment);
                    }
                }
                page.next = Some(message.sequence);
                if page.consignments.len() == query.limit {
                    if message.pending == 0 {
                        page.next = None;
                    }
                    return Ok(page);
                }
            }
            if !more {
                page.next = None;
                return Ok(page);
            }
            if scanned >= SCAN_LIMIT {
                return Ok(page);
            }
            from = last_sequence + 1;
        }
    }
}
