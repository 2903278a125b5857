//! Asking the vessel service which vessel has room: the one outgoing request of
//! this worker.

use std::{future::Future, time::Duration};

use async_nats::Client;
use shared::{
    client::{RequestError, request},
    codec::encode,
    model::{Specification, Vessel, VesselReply},
    subjects::vessel,
};

/// Finds a vessel with room.
pub trait VesselFinder: Send + Sync + 'static {
    /// The first vessel, in id order, with room for `spec`.
    fn find(&self, spec: &Specification) -> impl Future<Output = Result<Vessel, RequestError>> + Send;
}

/// Sends `vessel.find_available` to whichever vessel-worker NATS picks.
#[derive(Debug, Clone)]
pub struct VesselClient {
    client: Client,
    timeout: Duration,
}

impl VesselClient {
    pub fn new(client: Client, timeout: Duration) -> Self {
        Self { client, timeout }
    }
}

impl VesselFinder for VesselClient {
    #[tracing::instrument(level = "debug", skip(self), err(level = "debug"))]
    async fn find(&self, spec: &Specification) -> Result<Vessel, RequestError> {
        let reply: VesselReply =
            request(&self.client, vessel::FIND_AVAILABLE, encode(spec).into(), self.timeout).await?;
        Ok(reply.vessel)
    }
}
