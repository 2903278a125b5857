//! `vessel-worker`: keeps the fleet in JetStream and books space on it.
//!
//! | subject                 | request           | reply                             |
//! |-------------------------|-------------------|-----------------------------------|
//! | `vessel.find_available` | `{"capacity":3,"max_weight":55000}` | `{"vessel":{..}}` or 404 `no vessel available` |
//! | ... with `"consignment_id":ID` | the same, booking the space for ID once | the vessel booked |
//! | `vessel.create`         | a vessel          | `{"created":true,"vessel":{..}}`  |
//! | `vessel.list`           | anything          | `{"vessels":[..]}`                |
//!
//! Every instance joins the `vessel-worker` queue group and holds no state of its
//! own: the fleet and the bookings live in JetStream ([`store`]), so any instance
//! answers any request the same way.

pub mod booking;
pub mod fleet;
pub mod handler;
pub mod store;

use std::{future::Future, path::PathBuf, time::Duration};

use anyhow::Context as _;
use shared::{
    config::WorkerConfig,
    model::NewVessel,
    service::{Service, ServiceSpec},
    subjects::vessel,
};

use crate::{
    booking::Booker,
    fleet::VesselRecord,
    handler::VesselHandler,
    store::{JetStreamStore, VesselStore as _},
};

/// How often leftover holds are settled.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

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
    pub fn fleet(&self) -> anyhow::Result<Vec<VesselRecord>> {
        let Some(path) = &self.fleet_file else {
            return Ok(fleet::default_fleet());
        };
        let read = || -> anyhow::Result<Vec<VesselRecord>> {
            let vessels: Vec<NewVessel> = serde_json::from_slice(&std::fs::read(path)?)?;
            Ok(fleet::new_fleet(vessels)?)
        };
        read().with_context(|| format!("loading the fleet from {}", path.display()))
    }
}

/// The vessel service as this crate runs it.
pub type VesselService = Service<VesselHandler<JetStreamStore>>;

/// Connects to NATS, opens the buckets, seeds the fleet and registers the vessel
/// service; returns once it takes requests.
pub async fn start(config: &Config) -> anyhow::Result<VesselService> {
    let fleet = config.fleet()?;
    tracing::info!(nats_url = %config.worker.nats.redacted_url(), "starting vessel-worker");
    let client = shared::nats::connect_worker(&config.worker.nats, shared::roles::VESSEL_WORKER).await?;
    let store = JetStreamStore::open(client.clone(), &config.worker.store).await?;
    let mut added = 0;
    for record in &fleet {
        added += usize::from(store.create_vessel(record).await?);
    }
    tracing::info!(seeded = fleet.len(), added, "fleet seeded; vessels already stored were left as they are");

    let booker = Booker::new(store);
    let spec = ServiceSpec {
        name: vessel::SERVICE,
        version: env!("CARGO_PKG_VERSION"),
        description: "Finds and books vessels for consignments and keeps the fleet",
        queue_group: vessel::QUEUE_GROUP,
        endpoints: &[vessel::FIND_AVAILABLE_ENDPOINT, vessel::CREATE_ENDPOINT, vessel::LIST_ENDPOINT],
        max_request_bytes: config.worker.max_request_bytes,
        max_in_flight: config.worker.max_in_flight,
        shutdown_grace: config.worker.shutdown_grace(),
    };
    Ok(Service::start(client, spec, VesselHandler::new(booker, SWEEP_INTERVAL)).await?)
}

/// Runs a vessel-worker until `shutdown` completes, then stops gracefully.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    shared::service::run(start(&config), shutdown).await
}
