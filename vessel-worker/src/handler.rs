//! The NATS edge: decodes requests, asks the [`Booker`], encodes replies.

use std::{sync::Arc, time::Duration};

use async_nats::HeaderMap;
use bytes::Bytes;
use shared::{
    ServiceError,
    codec::{decode_request, encode},
    model::{CreatedVessel, NewVessel, Specification, VesselList, VesselReply},
    service::Handler,
    subjects::vessel,
};

use tokio_util::sync::DropGuard;

use crate::{
    booking::{Booker, BookingError},
    fleet::{FleetError, VesselRecord},
    store::VesselStore,
};

/// Serves the vessel endpoints from the store.
#[derive(Debug)]
pub struct VesselHandler<S> {
    booker: Arc<Booker<S>>,
    _sweeper: DropGuard,
}

impl<S: VesselStore> VesselHandler<S> {
    /// Serves from `booker`, settling leftover holds every `sweep_interval` while it lives.
    pub fn new(booker: Booker<S>, sweep_interval: Duration) -> Self {
        let booker = Arc::new(booker);
        let sweeper = shared::background::every("hold sweeper", sweep_interval, {
            let booker = Arc::clone(&booker);
            move || {
                let booker = Arc::clone(&booker);
                async move {
                    // Failures are logged by the span; the next round tries again.
                    if let Ok(settled @ 1..) = booker.sweep().await {
                        tracing::info!(settled, "settled holds left by an interrupted booking");
                    }
                }
            }
        });
        Self { booker, _sweeper: sweeper }
    }

    async fn find_available(&self, payload: &[u8]) -> Result<Vec<u8>, ServiceError> {
        let spec: Specification = decode_request(payload)?;
        let vessel = match &spec.consignment_id {
            None => self.booker.find(spec.load()).await?,
            Some(consignment) => {
                if !shared::store::is_key(consignment) {
                    return Err(ServiceError::bad_request("consignment_id may hold only letters, digits, '-' and '_'"));
                }
                let vessel = self.booker.book(consignment, spec.load()).await?;
                tracing::debug!(%consignment, vessel = %vessel.id, "space booked");
                vessel
            }
        };
        Ok(encode(&VesselReply { vessel }))
    }

    async fn create(&self, payload: &[u8]) -> Result<Vec<u8>, ServiceError> {
        let mut vessel: NewVessel = decode_request(payload)?;
        if vessel.id.is_empty() {
            vessel.id = uuid::Uuid::new_v4().to_string();
        }
        let record = VesselRecord::new(vessel).map_err(BookingError::from)?;
        if !self.booker.store().create_vessel(&record).await.map_err(BookingError::from)? {
            return Err(BookingError::from(FleetError::Duplicate(record.vessel.id)).into());
        }
        tracing::info!(vessel = %record.vessel.id, "vessel added");
        Ok(encode(&CreatedVessel { created: true, vessel: record.vessel }))
    }

    async fn list(&self) -> Result<Vec<u8>, ServiceError> {
        let fleet = self.booker.store().vessels().await.map_err(BookingError::from)?;
        let vessels = fleet.into_iter().map(|entry| entry.value.vessel.into()).collect();
        Ok(encode(&VesselList { vessels }))
    }
}

impl<S: VesselStore> Handler for VesselHandler<S> {
    async fn handle(
        &self,
        subject: &str,
        _headers: Option<&HeaderMap>,
        payload: Bytes,
    ) -> Result<Vec<u8>, ServiceError> {
        match subject {
            vessel::FIND_AVAILABLE => self.find_available(&payload).await,
            vessel::CREATE => self.create(&payload).await,
            vessel::LIST => self.list().await,
            other => Err(ServiceError::not_found(format!("no endpoint {other}"))),
        }
    }
}

impl From<BookingError> for ServiceError {
    fn from(error: BookingError) -> Self {
        match error {
            BookingError::Fleet(error @ FleetError::NoVesselAvailable) => Self::not_found(error.to_string()),
            BookingError::Fleet(error @ FleetError::Duplicate(_)) => Self::conflict(error.to_string()),
            BookingError::Fleet(error @ FleetError::Invalid(_)) => Self::bad_request(error.to_string()),
            error @ BookingError::Contended(_) => Self::new(shared::ErrorCode::Unavailable, error.to_string()),
            error @ (BookingError::VesselMissing { .. } | BookingError::Stopped) => {
                tracing::error!(%error);
                Self::internal("the vessel store failed")
            }
            BookingError::Store(error) => error.into(),
        }
    }
}
