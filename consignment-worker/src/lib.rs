//! `consignment-worker`: takes consignments and books each onto a vessel.
//!
//! | subject              | request                                   | reply                                   |
//! |----------------------|-------------------------------------------|-----------------------------------------|
//! | `consignment.create` | `{"description","weight","containers"}`   | `{"created":true,"consignment":{..}}`   |
//! | `consignment.list`   | anything                                  | `{"consignments":[..]}`                 |
//!
//! For each create it asks `vessel.find_available` (capacity = number of containers,
//! `max_weight` = weight), sets `vessel_id`, stores the consignment and publishes
//! `consignment.created`. With no vessel-worker running, the create fails at once
//! with 503 "vessel service unavailable".

pub mod domain;
pub mod handler;
pub mod repository;
pub mod vessels;

use std::{future::Future, time::Duration};

use shared::{
    config::WorkerConfig,
    service::{Service, ServiceSpec},
    subjects::consignment,
};

use crate::{handler::ConsignmentHandler, repository::InMemoryRepository, vessels::VesselClient};

/// How long the vessel service has to answer, by default, in milliseconds.
pub const DEFAULT_VESSEL_TIMEOUT_MS: u64 = 2_000;

/// How a consignment-worker is set up: flags, or the environment variables named.
#[derive(Debug, Clone, clap::Parser)]
#[command(version, about)]
pub struct Config {
    #[command(flatten)]
    pub worker: WorkerConfig,
    /// How long to wait for the vessel service, in milliseconds.
    #[arg(long, env = "VESSEL_TIMEOUT_MS", default_value_t = DEFAULT_VESSEL_TIMEOUT_MS)]
    pub vessel_timeout_ms: u64,
}

impl Config {
    /// The defaults, connecting to `nats_url`.
    pub fn new(nats_url: impl Into<String>) -> Self {
        Self { worker: WorkerConfig::new(nats_url), vessel_timeout_ms: DEFAULT_VESSEL_TIMEOUT_MS }
    }
}

/// The consignment service as this crate runs it.
pub type ConsignmentService = Service<ConsignmentHandler<InMemoryRepository>>;

/// Connects to NATS and registers the consignment service; returns once it takes requests.
pub async fn start(config: &Config) -> anyhow::Result<ConsignmentService> {
    tracing::info!(nats_url = %config.worker.nats_url, "starting consignment-worker");
    let client = shared::nats::connect_worker(&config.worker.nats_url, consignment::QUEUE_GROUP).await?;
    let vessels = VesselClient::new(client.clone(), Duration::from_millis(config.vessel_timeout_ms));
    let handler = ConsignmentHandler::new(InMemoryRepository::default(), vessels, client.clone());
    let spec = ServiceSpec {
        name: consignment::SERVICE,
        version: env!("CARGO_PKG_VERSION"),
        description: "Creates consignments and books them onto vessels",
        queue_group: consignment::QUEUE_GROUP,
        endpoints: &[consignment::CREATE_ENDPOINT, consignment::LIST_ENDPOINT],
        max_request_bytes: config.worker.max_request_bytes,
        max_in_flight: config.worker.max_in_flight,
    };
    Ok(Service::start(client, spec, handler).await?)
}

/// Runs a consignment-worker until `shutdown` completes, then stops gracefully.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    shared::service::run(start(&config), shutdown).await
}
