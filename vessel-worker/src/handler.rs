//! The NATS edge: decodes requests, asks the [`Fleet`], encodes replies.

use std::sync::RwLock;

use bytes::Bytes;
use shared::{
    ServiceError,
    codec::{decode_request, encode},
    model::{CreatedVessel, Specification, Vessel, VesselList, VesselReply},
    service::Handler,
    subjects::vessel,
};

use crate::fleet::{Fleet, FleetError};

/// Serves the vessel endpoints from an in-memory fleet.
#[derive(Debug)]
pub struct VesselHandler {
    fleet: RwLock<Fleet>,
}

impl VesselHandler {
    pub fn new(fleet: Fleet) -> Self {
        Self { fleet: RwLock::new(fleet) }
    }

    fn find_available(&self, payload: &[u8]) -> Result<Vec<u8>, ServiceError> {
        let spec: Specification = decode_request(payload)?;
        let fleet = self.fleet.read().expect("fleet lock poisoned");
        let vessel = fleet.find_available(&spec)?.clone();
        tracing::debug!(?spec, vessel = %vessel.id, "vessel found");
        Ok(encode(&VesselReply { vessel }))
    }

    fn create(&self, payload: &[u8]) -> Result<Vec<u8>, ServiceError> {
        let mut vessel: Vessel = decode_request(payload)?;
        if vessel.id.is_empty() {
            vessel.id = uuid::Uuid::new_v4().to_string();
        }
        self.fleet.write().expect("fleet lock poisoned").add(vessel.clone())?;
        tracing::info!(vessel = %vessel.id, "vessel added");
        Ok(encode(&CreatedVessel { created: true, vessel }))
    }

    fn list(&self) -> Vec<u8> {
        let vessels = self.fleet.read().expect("fleet lock poisoned").vessels().to_vec();
        encode(&VesselList { vessels })
    }
}

impl Handler for VesselHandler {
    async fn handle(&self, subject: &str, payload: Bytes) -> Result<Vec<u8>, ServiceError> {
        match subject {
            vessel::FIND_AVAILABLE => self.find_available(&payload),
            vessel::CREATE => self.create(&payload),
            vessel::LIST => Ok(self.list()),
            other => Err(ServiceError::not_found(format!("no endpoint {other}"))),
        }
    }
}

impl From<FleetError> for ServiceError {
    fn from(error: FleetError) -> Self {
        match error {
            FleetError::NoVesselAvailable => Self::not_found(error.to_string()),
            FleetError::Duplicate(_) => Self::conflict(error.to_string()),
            FleetError::Invalid(_) => Self::bad_request(error.to_string()),
        }
    }
}
