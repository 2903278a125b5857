//! [`EventLog`] on the JetStream event stream.

use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use shared::{
    store::{
        AppendError, BatchRequest, EVENTS_STREAM, StoreError, StoredMessage, append_in_current_span, direct_batch,
    },
    subjects::consignment,
};

use super::{EventLog, Read};

/// How long one read may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The event stream, as the consignment-worker writes and reads it.
#[derive(Debug, Clone)]
pub struct JetStreamLog {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
}

impl JetStreamLog {
    pub fn new(client: async_nats::Client, js: jetstream::Context, stream: jetstream::stream::Stream) -> Self {
        Self { client, js, stream }
    }
}

impl EventLog for JetStreamLog {
    /// In the current span: the write round's `publish` span ([`crate::create`]).
    async fn append(&self, vessel_id: &str, expected: u64, event: Bytes) -> Result<u64, AppendError> {
        let subject = consignment::created_event(vessel_id);
        append_in_current_span(&self.js, &subject, expected, event).await
    }

    async fn last_sequence(&self) -> Result<u64, StoreError> {
        shared::store::last_sequence(&self.stream).await
    }

    async fn read(&self, read: Read<'_>) -> Result<Vec<StoredMessage>, StoreError> {
        let subject = read.vessel_id.map_or_else(|| consignment::CREATED_EVENTS.to_owned(), consignment::created_event);
        let request = BatchRequest {
            from: read.from,
            subject,
            batch: read.batch,
            max_bytes: read.max_bytes,
            min_last_seq: Some(read.until),
        };
        direct_batch(&self.client, EVENTS_STREAM, &request, READ_TIMEOUT).await
    }
}
