//! The NATS edge: decodes requests, applies the domain rules, books a vessel,
//! stores the consignment, announces it and replies.

use async_nats::Client;
use bytes::Bytes;
use shared::{
    ServiceError,
    codec::{decode_request, encode},
    model::{ConsignmentList, CreatedConsignment, NewConsignment},
    service::Handler,
    subjects::consignment,
};

use crate::{
    domain::{ValidConsignment, ValidationError},
    repository::{ConsignmentRepository, RepositoryError},
    vessels::VesselClient,
};

/// Serves the consignment endpoints.
#[derive(Debug)]
pub struct ConsignmentHandler<R> {
    repository: R,
    vessels: VesselClient,
    events: Client,
}

impl<R: ConsignmentRepository> ConsignmentHandler<R> {
    /// `events` publishes `consignment.created` after each create.
    pub fn new(repository: R, vessels: VesselClient, events: Client) -> Self {
        Self { repository, vessels, events }
    }

    async fn create(&self, payload: &[u8]) -> Result<Vec<u8>, ServiceError> {
        let request: NewConsignment = decode_request(payload)?;
        let valid = ValidConsignment::parse(request)?;
        let vessel = self.vessels.find_available(valid.specification()).await?;
        let consignment = valid.book(uuid::Uuid::new_v4().to_string(), vessel.id);
        self.repository.create(consignment.clone()).await?;
        tracing::info!(consignment = %consignment.id, vessel = %consignment.vessel_id, "consignment created");

        let event = encode(&consignment);
        if let Err(error) = self.events.publish(consignment::CREATED_EVENT, event.into()).await {
            // The consignment is stored: the caller's create succeeded either way.
            tracing::warn!(%error, consignment = %consignment.id, "could not publish {}", consignment::CREATED_EVENT);
        }
        Ok(encode(&CreatedConsignment { created: true, consignment }))
    }

    async fn list(&self) -> Result<Vec<u8>, ServiceError> {
        let consignments = self.repository.list().await?;
        Ok(encode(&ConsignmentList { consignments }))
    }
}

impl<R: ConsignmentRepository> Handler for ConsignmentHandler<R> {
    async fn handle(&self, subject: &str, payload: Bytes) -> Result<Vec<u8>, ServiceError> {
        match subject {
            consignment::CREATE => self.create(&payload).await,
            consignment::LIST => self.list().await,
            other => Err(ServiceError::not_found(format!("no endpoint {other}"))),
        }
    }
}

impl From<ValidationError> for ServiceError {
    fn from(error: ValidationError) -> Self {
        Self::bad_request(error.to_string())
    }
}

impl From<RepositoryError> for ServiceError {
    fn from(error: RepositoryError) -> Self {
        tracing::error!(%error);
        Self::internal("could not store the consignment")
    }
}
