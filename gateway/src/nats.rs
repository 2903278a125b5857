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

/// How long [`Nats::service_stats`] waits for more replies after the last one.
pub const STATS_QUIET: Duration = Duration::from_millis(200);

/// One instance of a service, as its `$SRV.STATS` reply (ADR-32) reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ServiceStats {
    pub name: String,
    /// The instance's id.
    pub id: String,
    pub version: String,
    /// When it started, RFC 3339.
    pub started: String,
    pub endpoints: Vec<EndpointStats>,
}

/// What one endpoint of an instance has served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct EndpointStats {
    pub name: String,
    pub subject: String,
    pub num_requests: u64,
    pub num_errors: u64,
    #[serde(default)]
    pub last_error: String,
    /// Nanoseconds.
    pub average_processing_time: u64,
}

impl Nats {
    /// Every running instance's `$SRV.STATS` reply, by name then id: the request
    /// goes to all of them, and the replies are gathered until none has come for
    /// [`STATS_QUIET`] (or the request timeout is spent). A reply that is not
    /// ADR-32 stats is skipped.
    pub async fn service_stats(&self) -> Result<Vec<ServiceStats>, ApiError> {
        if !self.is_connected() {
            return Err(ApiError::NatsUnavailable);
        }
        let transport = |error: &dyn std::fmt::Display| {
            tracing::warn!(%error, "gathering $SRV.STATS failed");
            ApiError::Transport("$SRV.STATS".to_owned())
        };
        let inbox = self.client.new_inbox();
        let mut replies = self.client.subscribe(inbox.clone()).await.map_err(|error| transport(&error))?;
        self.client
            .publish_with_reply("$SRV.STATS", inbox, bytes::Bytes::new())
            .await
            .map_err(|error| transport(&error))?;
        let mut services = Vec::new();
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let quiet = (tokio::time::Instant::now() + STATS_QUIET).min(deadline);
            match tokio::time::timeout_at(quiet, futures::StreamExt::next(&mut replies)).await {
                Ok(Some(reply)) => match serde_json::from_slice::<ServiceStats>(&reply.payload) {
                    Ok(stats) => services.push(stats),
                    Err(error) => tracing::debug!(%error, "a $SRV.STATS reply that is not ADR-32 stats: skipped"),
                },
                Ok(None) | Err(_) => break,
            }
        }
        services.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        Ok(services)
    }
}
