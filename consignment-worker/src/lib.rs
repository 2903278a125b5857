//! `consignment-worker`: takes consignments and books each onto a vessel.
//!
//! | subject              | request                                   | reply                                   |
//! |----------------------|-------------------------------------------|-----------------------------------------|
//! | `consignment.create` | `{"description","weight","containers"}`   | `{"created":true,"consignment":{..}}`   |
//! | `consignment.get`    | `{"id":..}`                               | `{"consignment":{..}}`                  |
//! | `consignment.list`   | `{"limit","cursor","vessel_id","user_id"}` or empty | `{"consignments":[..],"next":..}` |
//!
//! For each create it asks `vessel.find_available` (capacity = number of containers,
//! `max_weight` = weight) which vessel has room, sets `vessel_id`, and stores and
//! announces the consignment in one durable append to the event stream: the
//! `consignment.created.<vessel_id>` event ([`create`]). With no vessel-worker
//! running, the create fails at once with 503 "vessel service unavailable".
//!
//! Instances hold no state of their own: each keeps a projection of the event
//! stream in memory ([`consignments`]), rebuilt at start, and the server guards
//! every decision taken on it ([`shared::store`], "Sequence rules").

pub mod consignments;
pub mod create;
pub mod domain;
pub mod handler;
pub mod read;
pub mod store;
pub mod vessels;

use std::{future::Future, sync::Arc, time::Duration};

use shared::{
    config::WorkerConfig,
    projection::Projection,
    service::{Service, ServiceSpec},
    subjects::consignment,
};

use crate::{
    consignments::Consignments, create::Creator, handler::ConsignmentHandler, read::Reader, store::JetStreamLog,
    vessels::VesselClient,
};

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
pub type ConsignmentService = Service<ConsignmentHandler<JetStreamLog, VesselClient>>;

/// Connects to NATS, opens the event stream, catches the projection up with it and
/// registers the consignment service; returns once it takes requests.
pub async fn start(config: &Config) -> anyhow::Result<ConsignmentService> {
    tracing::info!(nats_url = %config.worker.nats.redacted_url(), "starting consignment-worker");
    let client = shared::nats::connect_worker(&config.worker.nats, shared::roles::CONSIGNMENT_WORKER).await?;
    let js = async_nats::jetstream::new(client.clone());
    let stream = shared::store::events(&js, &config.worker.store).await?;
    let log = Arc::new(JetStreamLog::new(client.clone(), js, stream.clone()));
    let view = Projection::new(Consignments::new(config.worker.idempotency_window()));
    let following = shared::projection::follow(&client, stream, Arc::clone(&view)).await?;
    tracing::info!(consignments = view.read(Consignments::len), "consignment projection ready");
    let vessels = VesselClient::new(client.clone(), Duration::from_millis(config.vessel_timeout_ms));
    let max_payload = client.server_info().max_payload;
    let creator = Creator::new(Arc::clone(&log), vessels, Arc::clone(&view), max_payload);
    let reader = Reader::new(log, view);
    let handler = ConsignmentHandler::new(creator, reader, max_payload, Some(following));
    let spec = ServiceSpec {
        name: consignment::SERVICE,
        version: env!("CARGO_PKG_VERSION"),
        description: "Creates consignments and books them onto vessels",
        queue_group: consignment::QUEUE_GROUP,
        endpoints: &[consignment::CREATE_ENDPOINT, consignment::GET_ENDPOINT, consignment::LIST_ENDPOINT],
        max_request_bytes: config.worker.max_request_bytes,
        max_in_flight: config.worker.max_in_flight,
        shutdown_grace: config.worker.shutdown_grace(),
        metrics_addr: config.worker.health.metrics_addr.clone(),
    };
    Ok(Service::start(client, spec, handler).await?)
}

/// Runs a consignment-worker until `shutdown` completes, then stops gracefully.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    shared::service::run(start(&config), shutdown).await
}
