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

/// The pauses before a create is sent again, with the same key, while it fails for now.
pub const CREATE_RETRY_BACKOFF: [Duration; 2] = [Duration::from_millis(50), Duration::from_millis(250)];

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
    /// same consignment, so a create that may pass if sent again (no responder, the
    /// service unavailable or failing for now) is sent again, after each of
    /// [`CREATE_RETRY_BACKOFF`]. A timeout is not retried: it has spent the time.
    pub async fn create_consignment(&self, new: &NewConsignment, key: &str) -> Result<CreatedConsignment, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(consignment::IDEMPOTENCY_HEADER, key);
        let mut backoff = CREATE_RETRY_BACKOFF.iter();
        loop {
            match self.request(consignment::CREATE, Some(headers.clone()), new).await {
                Err(Some(error)) if error.is_passing() && !matches!(error, RequestError::TimedOut { .. }) => {
                    let Some(pause) = backoff.next() else { return Err(error.into()) };
                    tracing::debug!(%error, ?pause, "create failed for now; sending it again with its key");
                    tokio::time::sleep(*pause).await;
                }
                result => return result.map_err(|error| error.map_or(ApiError::NatsUnavailable, ApiError::from)),
            }
        }
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
        self.request(subject, headers, body)
            .await
            .map_err(|error| error.map_or(ApiError::NatsUnavailable, ApiError::from))
    }

    /// The request's reply; `Err(None)` if NATS is unreachable, when nothing is sent.
    async fn request<T: DeserializeOwned>(
        &self,
        subject: &str,
        headers: Option<HeaderMap>,
        body: &impl Serialize,
    ) -> Result<T, Option<RequestError>> {
        // A request sent while disconnected would wait in the client's buffer until
        // it timed out: say at once that NATS is not there.
        if !self.is_connected() {
            return Err(None);
        }
        let payload = shared::codec::encode(body).into();
        request_with_headers(&self.client, subject, headers, payload, self.timeout).await.map_err(|error| {
            if !matches!(error, RequestError::Service(_)) {
                tracing::warn!(%error, subject, "request failed");
            }
            Some(error)
        })
    }
}
