//! [`VesselStore`] on JetStream Key-Value buckets.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    kv::{self, CreateErrorKind},
};
use shared::store::{
    BOOKINGS_BUCKET, StoreConfig, StoreError, VESSELS_BUCKET, create_or_read, decode, encode, is_wrong_revision,
    key_value, read, read_bucket,
};
use tracing::instrument;

use super::{Versioned, VesselStore};
use crate::fleet::{Booking, VesselRecord};

/// How long a read of the whole fleet may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The vessels and bookings buckets.
#[derive(Debug, Clone)]
pub struct JetStreamStore {
    client: async_nats::Client,
    vessels: kv::Store,
    bookings: kv::Store,
}

impl JetStreamStore {
    /// Opens both buckets, creating them with `config` if absent.
    pub async fn open(client: async_nats::Client, config: &StoreConfig) -> Result<Self, StoreError> {
        let js = jetstream::new(client.clone());
        let vessels =
            key_value(&js, config.bucket(VESSELS_BUCKET, "shippy vessels and what is booked on them")).await?;
        let bookings = key_value(&js, config.bucket(BOOKINGS_BUCKET, "shippy bookings, by consignment id")).await?;
        Ok(Self { client, vessels, bookings })
    }
}

impl VesselStore for JetStreamStore {
    #[instrument(skip(self), err)]
    async fn vessels(&self) -> Result<Vec<Versioned<VesselRecord>>, StoreError> {
        let mut fleet = read_bucket(&self.client, VESSELS_BUCKET, READ_TIMEOUT)
            .await?
            .into_iter()
            .map(|entry| Ok(Versioned { value: decode(&entry.subject, &entry.payload)?, revision: entry.sequence }))
            .collect::<Result<Vec<Versioned<VesselRecord>>, StoreError>>()?;
        fleet.sort_by(|a, b| a.value.vessel.id.cmp(&b.value.vessel.id));
        Ok(fleet)
    }

    #[instrument(skip(self), err)]
    async fn vessel(&self, id: &str) -> Result<Option<Versioned<VesselRecord>>, StoreError> {
        let entry =
            self.vessels.entry(id).await.map_err(|error| StoreError::new(format!("read vessel {id}"), error))?;
        match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                Ok(Some(Versioned { value: decode(id, &entry.value)?, revision: entry.revision }))
            }
            _ => Ok(None),
        }
    }

    #[instrument(skip_all, fields(vessel = %record.vessel.id), err)]
    async fn create_vessel(&self, record: &VesselRecord) -> Result<bool, StoreError> {
        match self.vessels.create(&record.vessel.id, encode(record)).await {
            Ok(_) => Ok(true),
            Err(error) if error.kind() == CreateErrorKind::AlreadyExists => Ok(false),
            Err(error) => Err(StoreError::new(format!("create vessel {}", record.vessel.id), error)),
        }
    }

    #[instrument(skip_all, fields(vessel = %record.vessel.id, revision), err)]
    async fn update_vessel(&self, record: &VesselRecord, revision: u64) -> Result<bool, StoreError> {
        match self.vessels.update(&record.vessel.id, encode(record), revision).await {
            Ok(_) => Ok(true),
            Err(error) if is_wrong_revision(&error) => Ok(false),
            Err(error) => Err(StoreError::new(format!("update vessel {}", record.vessel.id), error)),
        }
    }

    #[instrument(skip(self), err)]
    async fn booking(&self, consignment: &str) -> Result<Option<Booking>, StoreError> {
        read(&self.bookings, consignment).await
    }

    #[instrument(skip(self, booking), err)]
    async fn record_booking(&self, consignment: &str, booking: &Booking) -> Result<Booking, StoreError> {
        Ok(create_or_read(&self.bookings, consignment, booking).await?.0)
    }
}
