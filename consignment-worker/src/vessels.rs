//! Asking the vessel service to book a vessel: the one outgoing request of this worker.

use std::time::Duration;

use async_nats::Client;
use shared::{
    ErrorCode, ServiceError,
    client::{RequestError, request},
    codec::encode,
    model::{Specification, Vessel, VesselReply},
    subjects::vessel,
};

/// Sends `vessel.find_available` requests to whichever vessel-worker NATS picks.
#[derive(Debug, Clone)]
pub struct VesselClient {
    client: Client,
    timeout: Duration,
}

impl VesselClient {
    pub fn new(client: Client, timeout: Duration) -> Self {
        Self { client, timeout }
    }

    /// The vessel booked for `spec` (which names the consignment, so that a repeat
    /// books once), or the error to pass on to whoever asked for the consignment.
    pub async fn book(&self, spec: &Specification) -> Result<Vessel, ServiceError> {
        match request::<VesselReply>(&self.client, vessel::FIND_AVAILABLE, encode(spec).into(), self.timeout).await {
            Ok(reply) => Ok(reply.vessel),
            Err(error) => {
                tracing::warn!(%error, ?spec, "vessel booking failed");
                Err(passed_on(error))
            }
        }
    }
}

/// What the consignment's requester is told when the vessel lookup fails.
fn passed_on(error: RequestError) -> ServiceError {
    match error {
        // NATS reports "no responders" at once: no waiting out the timeout.
        RequestError::NoResponders { .. } => ServiceError::new(ErrorCode::Unavailable, "vessel service unavailable"),
        RequestError::TimedOut { .. } => ServiceError::new(ErrorCode::Timeout, "vessel service timed out"),
        // "no vessel available" and the like go back unchanged.
        RequestError::Service(error) => error,
        RequestError::Transport { .. } | RequestError::InvalidReply { .. } => {
            ServiceError::new(ErrorCode::Unavailable, format!("vessel service failed: {error}"))
        }
    }
}
