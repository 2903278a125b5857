//! `vessel-worker`: keeps the fleet and answers which vessel has room.
//!
//! | subject                 | request           | reply                             |
//! |-------------------------|-------------------|-----------------------------------|
//! | `vessel.find_available` | `{"capacity":3,"max_weight":55000}` | `{"vessel":{..}}` or 404 `no vessel available for …`, with the most room left |
//! | `vessel.create`         | a vessel          | `{"created":true,"vessel":{..}}`  |
//! | `vessel.list`           | `{"limit","cursor"}` or empty | `{"vessels":[..],"next":..}` |
//!
//! Every instance joins the `vessel-worker` queue group and answers from its
//! [`fleet::Fleet`], a projection of the event stream kept in memory: the vessels
//! added, and what the consignment-worker's created events booked on each
//! ([`shared::store`] has the layout). Adding a vessel appends its event
//! ([`store`]); the vessel-worker books nothing itself.

pub mod fleet;
pub mod handler;
pub mod store;
pub mod vessels;

use std::{future::Future, path::PathBuf};

use anyhow::Context as _;
use shared::{
    config::WorkerConfig,
    model::NewVessel,
    projection::Projection,
    service::{Service, ServiceSpec},
    subjects::vessel,
};

use crate::{fleet::Fleet, handler::VesselHandler, store::JetStreamLog, vessels::Vessels};

/// How a vessel-worker is set up: flags, or the environment variables named.
#[derive(Debug, Clone, clap::Parser)]
#[command(version, about)]
pub struct Config {
    #[command(flatten)]
    pub worker: WorkerConfig,
    /// JSON file holding the fleet to seed, as an array of vessels; the built-in fleet without it.
    /// Seeding adds only the vessels not stored yet.
    #[arg(long, env = "FLEET_FILE")]
    pub fleet_file: Option<PathBuf>,
}

impl Config {
    /// The defaults, connecting to `nats_url`.
    pub fn new(nats_url: impl Into<String>) -> Self {
        Self { worker: WorkerConfig::new(nats_url), fleet_file: None }
    }

    /// The fleet to seed: the fleet file's, or the built-in one.
    pub fn fleet(&self) -> anyhow::Result<Vec<NewVessel>> {
        let Some(path) = &self.fleet_file else {
            return Ok(fleet::default_fleet());
        };
        let read = || -> anyhow::Result<Vec<NewVessel>> {
            let vessels: Vec<NewVessel> = serde_json::from_slice(&std::fs::read(path)?)?;
            Ok(fleet::new_fleet(vessels)?)
        };
        read().with_context(|| format!("loading the fleet from {}", path.display()))
    }
}

/// The vessel service as this crate runs it.
pub type VesselService = Service<VesselHandler<JetStreamLog>>;

/// Connects to NATS, opens the event stream, seeds the fleet, catches the fleet
/// projection up with the stream and registers the vessel service; returns once it
/// takes requests.
pub async fn start(config: &Config) -> anyhow::Result<VesselService> {
    let fleet = config.fleet()?;
    tracing::info!(nats_url = %config.worker.nats.redacted_url(), "starting vessel-worker");
    let client = shared::nats::connect_worker(&config.worker.nats, shared::roles::VESSEL_WORKER).await?;
    let js = async_nats::jetstream::new(client.clone());
    let stream = shared::store::events(&js, &config.worker.store).await?;
    let log = JetStreamLog::new(js, stream.clone());
    // Seeding is idempotent (a vessel stored already is left as it is): asked again
    // while the stream has no leader.
    let added = shared::store::until_answered("seed the fleet", || Vessels::seed(&log, &fleet)).await?;
    tracing::info!(seeded = fleet.len(), added, "fleet seeded; vessels already stored were left as they are");

    let projection = Projection::new(Fleet::new(config.worker.idempotency_window()));
    let following = shared::projection::follow(&client, stream, std::sync::Arc::clone(&projection)).await?;
    tracing::info!(vessels = projection.read(Fleet::len), "fleet projection ready");
    let vessels = Vessels::new(log, projection, Some(following));
    let max_payload = client.server_info().max_payload;
    let spec = ServiceSpec {
        name: vessel::SERVICE,
        version: env!("CARGO_PKG_VERSION"),
        description: "Finds vessels with room for consignments and keeps the fleet",
        queue_group: vessel::QUEUE_GROUP,
        endpoints: &[vessel::FIND_AVAILABLE_ENDPOINT, vessel::CREATE_ENDPOINT, vessel::LIST_ENDPOINT],
        max_request_bytes: config.worker.max_request_bytes,
        max_in_flight: config.worker.max_in_flight,
        shutdown_grace: config.worker.shutdown_grace(),
        metrics_addr: config.worker.health.metrics_addr.clone(),
    };
    Ok(Service::start(client, spec, VesselHandler::new(vessels, max_payload)).await?)
}

/// Runs a vessel-worker until `shutdown` completes, then stops gracefully.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    shared::service::run(start(&config), shutdown).await
}
