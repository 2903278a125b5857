//! [`FleetLog`] on the JetStream event stream.

use async_nats::jetstream;
use shared::{
    model::NewVessel,
    store::{AppendError, StoreError, append, encode},
    subjects::vessel,
};

use super::FleetLog;

/// The event stream, as the vessel-worker writes it.
#[derive(Debug, Clone)]
pub struct JetStreamLog {
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
}

impl JetStreamLog {
    pub fn new(js: jetstream::Context, stream: jetstream::stream::Stream) -> Self {
        Self { js, stream }
    }
}

impl FleetLog for JetStreamLog {
    #[tracing::instrument(level = "debug", skip_all, fields(vessel = %vessel.id), err(level = "debug"))]
    async fn add_vessel(&self, vessel: &NewVessel) -> Result<Option<u64>, StoreError> {
        match append(&self.js, &vessel::added_event(&vessel.id), 0, encode(vessel)).await {
            Ok(sequence) => Ok(Some(sequence)),
            Err(AppendError::Conflict(_)) => Ok(None),
            Err(AppendError::Store(error)) => Err(error),
        }
    }

    async fn last_sequence(&self) -> Result<u64, StoreError> {
        shared::store::last_sequence(&self.stream).await
    }
}
