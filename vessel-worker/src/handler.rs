//! The NATS edge: decodes requests, asks [`Vessels`], encodes replies, and maps
//! [`VesselError`]s to error replies, logging each 5xx once, with its cause, as it
//! is answered.

use async_nats::HeaderMap;
use bytes::Bytes;
use shared::{
    ServiceError,
    codec::{decode_request, encode},
    model::{CreatedVessel, ListVessels, NewVessel, Specification, VesselList, VesselReply},
    service::Handler,
    subjects::vessel,
};

use crate::{
    fleet::FleetError,
    store::FleetLog,
    vessels::{VesselError, Vessels},
};

/// Vessels in a page unless the request asks for fewer.
pub const DEFAULT_PAGE: u32 = 1000;
/// The most vessels in a page.
pub const MAX_PAGE: u32 = 1000;
/// Room left in a reply for everything but the vessels.
const ENVELOPE_BYTES: usize = 1024;

/// Serves the vessel endpoints.
#[derive(Debug)]
pub struct VesselHandler<L> {
    vessels: Vessels<L>,
    /// The largest reply NATS carries: no page may exceed it.
    max_payload: usize,
}

impl<L: FleetLog> VesselHandler<L> {
    pub fn new(vessels: Vessels<L>, max_payload: usize) -> Self {
        Self { vessels, max_payload }
    }

    async fn find_available(&self, payload: &[u8]) -> Result<Vec<u8>, ServiceError> {
        let spec: Specification = decode_request(payload)?;
        let vessel = self.vessels.find(spec.load(), spec.sequence).await.map_err(|error| failed(&error))?;
        Ok(encode(&VesselReply { vessel }))
    }

    async fn create(&self, payload: &[u8]) -> Result<Vec<u8>, ServiceError> {
        let vessel: NewVessel = decode_request(payload)?;
        let vessel = self.vessels.add(vessel).await.map_err(|error| failed(&error))?;
        Ok(encode(&CreatedVessel { created: true, vessel }))
    }

    async fn list(&self, payload: &[u8]) -> Result<Vec<u8>, ServiceError> {
        // `nats req vessel.list ''` asks for the first page.
        let request: ListVessels =
            if payload.trim_ascii().is_empty() { ListVessels::default() } else { decode_request(payload)? };
        let limit = request.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ServiceError::bad_request(format!("limit must be between 1 and {MAX_PAGE}")));
        }
        let max_bytes = self.max_payload.saturating_sub(ENVELOPE_BYTES);
        let (vessels, more) = self
            .vessels
            .list(request.cursor.as_deref(), limit as usize, max_bytes)
            .await
            .map_err(|error| failed(&error))?;
        let next = more.then(|| vessels.last().map(|listed| listed.vessel.id.clone())).flatten();
        Ok(encode(&VesselList { vessels, next }))
    }
}

impl<L: FleetLog> Handler for VesselHandler<L> {
    async fn handle(
        &self,
        subject: &str,
        _headers: Option<&HeaderMap>,
        payload: Bytes,
    ) -> Result<Vec<u8>, ServiceError> {
        match subject {
            vessel::FIND_AVAILABLE => self.find_available(&payload).await,
            vessel::CREATE => self.create(&payload).await,
            vessel::LIST => self.list(&payload).await,
            other => Err(ServiceError::not_found(format!("no endpoint {other}"))),
        }
    }
}

/// The error reply to a vessel operation that failed; a 5xx is logged here, with
/// its cause, once: the reply is sent next ([`shared::service`]).
fn failed(error: &VesselError) -> ServiceError {
    let reply = match error {
        VesselError::Fleet(FleetError::NoVesselAvailable(_)) => ServiceError::not_found(error.to_string()),
        VesselError::Fleet(FleetError::Duplicate(_)) => ServiceError::conflict(error.to_string()),
        VesselError::Fleet(FleetError::Invalid(_)) => ServiceError::bad_request(error.to_string()),
        VesselError::Behind(_) => ServiceError::new(shared::ErrorCode::Unavailable, error.to_string()),
        VesselError::Store(_) => ServiceError::internal("the store failed"),
    };
    if reply.code.is_server_error() {
        tracing::error!(code = %reply.code, %error, "request failed");
    }
    reply
}
