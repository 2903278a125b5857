//! The gateway's client of the shippy endpoints: one typed call per subject, each
//! bounded by the request timeout, and refused at once while NATS is unreachable.

use std::time::Duration;

use async_nats::{Client, HeaderMap, connection::State};
use serde::{Serialize, de::DeserializeOwned};
use shared::{
    client::{RequestError, request_with_headers},
    model::{
        ConsignmentList, ConsignmentReply, CreatedConsignment, CreatedVessel, GetConsignment, ListConsignments,
        ListVessels, NewConsignment, NewVessel, Specification, VesselList, VesselReply,
    },
    subjects::{consignment, vessel},
};

use crate::error::ApiError;

/// The endpoints, over one NATS connection.
#[derive(Debug, Clone)]
pub struct Nats {
    client: Client,
    timeout: Duration,
}

impl Nats {
    /// Requests over `client`, each waiting at most `timeout` for its reply.
    pub fn new(client: Client, timeout: Duration) -> Self {
        Self { client, timeout }
    }

    /// Whether the connection to NATS is up.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// `consignment.create`, with `key` as its `Nats-Msg-Id`: the same key gives the
    /// same consignment.
    pub async fn create_consignment(&self, new: &NewConsignment, key: &str) -> Result<CreatedConsignment, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(consignment::IDEMPOTENCY_HEADER, key);
        self.ask(consignment::CREATE, Some(headers), new).await
    }

    /// `consignment.get`.
    pub async fn consignment(&self, id: String) -> Result<ConsignmentReply, ApiError> {
        self.ask(consignment::GET, None, &GetConsignment { id }).await
    }

    /// `consignment.list`.
    pub async fn consignments(&self, query: &ListConsignments) -> Result<ConsignmentList, ApiError> {
        self.ask(consignment::LIST, None, query).await
    }

    /// `vessel.list`.
    pub async fn vessels(&self, query: &ListVessels) -> Result<VesselList, ApiError> {
        self.ask(vessel::LIST, None, query).await
    }

    /// `vessel.create`.
    pub async fn create_vessel(&self, new: &NewVessel) -> Result<CreatedVessel, ApiError> {
        self.ask(vessel::CREATE, None, new).await
    }

    /// `vessel.find_available`.
    pub async fn find_available(&self, specification: &Specification) -> Result<VesselReply, ApiError> {
        self.ask(vessel::FIND_AVAILABLE, None, specification).await
    }

    async fn ask<T: DeserializeOwned>(
        &self,
        subject: &str,
        headers: Option<HeaderMap>,
        body: &impl Serialize,
    ) -> Result<T, ApiError> {
        // A request sent while disconnected would wait in the client's buffer until
        // it timed out: say at once that NATS is not there.
        if !self.is_connected() {
            return Err(ApiError::NatsUnavailable);
        }
        let payload = shared::codec::encode(body).into();
        request_with_headers(&self.client, subject, headers, payload, self.timeout).await.map_err(|error| {
            if !matches!(error, RequestError::Service(_)) {
                tracing::warn!(%error, subject, "request failed");
            }
            ApiError::from(error)
        })
    }
}
