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
    /// books once), or why not.
    pub async fn book(&self, spec: &Specification) -> Result<Vessel, BookingFailed> {
        match request::<VesselReply>(&self.client, vessel::FIND_AVAILABLE, encode(spec).into(), self.timeout).await {
            Ok(reply) => Ok(reply.vessel),
            Err(error) => {
                tracing::warn!(%error, ?spec, "vessel booking failed");
                let known = match &error {
                    RequestError::NoResponders { .. } => Booked::NotByThisRequest,
                    // The vessel-worker answers these only when the consignment has no
                    // booking and no hold anywhere: nothing is booked for it.
                    RequestError::Service(error)
                        if matches!(error.code, ErrorCode::NotFound | ErrorCode::BadRequest) =>
                    {
                        Booked::Nothing
                    }
                    _ => Booked::Unknown,
                };
                Err(BookingFailed { error: passed_on(error), booked: known })
            }
        }
    }
}

/// A booking that did not answer with a vessel: the error to pass on to whoever
/// asked for the consignment, and what is known of the booking.
#[derive(Debug)]
pub struct BookingFailed {
    pub error: ServiceError,
    pub booked: Booked,
}

/// What a failed booking request says of the consignment's booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Booked {
    /// Nothing is booked for the consignment, by any attempt.
    Nothing,
    /// This request reached no vessel-worker; an earlier attempt may have booked.
    NotByThisRequest,
    /// It may or may not be booked.
    Unknown,
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
