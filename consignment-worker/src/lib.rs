//! `consignment-worker`: takes consignments and books each onto a vessel.
//!
//! | subject              | request                                   | reply                                   |
//! |----------------------|-------------------------------------------|-----------------------------------------|
//! | `consignment.create` | `{"description","weight","containers"}`   | `{"created":true,"consignment":{..}}`   |
//! | `consignment.get`    | `{"id":..}`                               | `{"consignment":{..}}`                  |
//! | `consignment.list`   | `{"limit","cursor","vessel_id","user_id"}` or empty | `{"consignments":[..],"next":..}` |
//!
//! For each create it asks `vessel.find_available` (capacity = number of containers,
//! `max_weight` = weight, and the consignment's id, so the vessel-worker books the
//! space once), sets `vessel_id`, stores the consignment and announces it on
//! `consignment.created`, surviving a crash at any step ([`create`]). With no
//! vessel-worker running, the create fails at once with 503 "vessel service unavailable".
//!
//! Instances hold no state: everything is in JetStream ([`store`]).

pub mod create;
pub mod domain;
pub mod handler;
pub mod store;
pub mod vessels;

use std::{future::Future, time::Duration};

use shared::{
    config::WorkerConfig,
    service::{Service, ServiceSpec},
    subjects::consignment,
};

use crate::{
    create::Creator,
    handler::ConsignmentHandler,
    store::{JetStreamStore, jetstream::Windows},
    vessels::VesselClient,
};

/// How long the vessel service has to answer, by default, in milliseconds.
pub const DEFAULT_VESSEL_TIMEOUT_MS: u64 = 2_000;
/// How long a create may be in flight before recovery finishes it, by default, in milliseconds.
pub const DEFAULT_RECOVER_AFTER_MS: u64 = 10_000;
/// How long an idempotency key is remembered, by default, in seconds (24 h).
pub const DEFAULT_IDEMPOTENCY_WINDOW_SECS: u64 = 24 * 60 * 60;
/// The events stream's duplicate window, by default, in seconds (1 h).
pub const DEFAULT_EVENT_DEDUP_WINDOW_SECS: u64 = 60 * 60;

/// How a consignment-worker is set up: flags, or the environment variables named.
#[derive(Debug, Clone, clap::Parser)]
#[command(version, about)]
pub struct Config {
    #[command(flatten)]
    pub worker: WorkerConfig,
    /// How long to wait for the vessel service, in milliseconds.
    #[arg(long, env = "VESSEL_TIMEOUT_MS", default_value_t = DEFAULT_VESSEL_TIMEOUT_MS)]
    pub vessel_timeout_ms: u64,
    /// A create in flight for longer than this many milliseconds was interrupted, and
    /// any instance finishes it; checked every half of it. Keep it well above `VESSEL_TIMEOUT_MS`.
    #[arg(long, env = "RECOVER_AFTER_MS", default_value_t = DEFAULT_RECOVER_AFTER_MS)]
    pub recover_after_ms: u64,
    /// How long, in seconds, a `Nats-Msg-Id` gives the same consignment (used when
    /// the bucket is created).
    #[arg(long, env = "IDEMPOTENCY_WINDOW_SECS", default_value_t = DEFAULT_IDEMPOTENCY_WINDOW_SECS)]
    pub idempotency_window_secs: u64,
    /// The events stream's duplicate window in seconds (used when the stream is created).
    #[arg(long, env = "EVENT_DEDUP_WINDOW_SECS", default_value_t = DEFAULT_EVENT_DEDUP_WINDOW_SECS)]
    pub event_dedup_window_secs: u64,
}

impl Config {
    /// The defaults, connecting to `nats_url`.
    pub fn new(nats_url: impl Into<String>) -> Self {
        Self {
            worker: WorkerConfig::new(nats_url),
            vessel_timeout_ms: DEFAULT_VESSEL_TIMEOUT_MS,
            recover_after_ms: DEFAULT_RECOVER_AFTER_MS,
            idempotency_window_secs: DEFAULT_IDEMPOTENCY_WINDOW_SECS,
            event_dedup_window_secs: DEFAULT_EVENT_DEDUP_WINDOW_SECS,
        }
    }
}

/// The consignment service as this crate runs it.
pub type ConsignmentService = Service<ConsignmentHandler<JetStreamStore>>;

/// Connects to NATS, opens the store and registers the consignment service; returns once it takes requests.
pub async fn start(config: &Config) -> anyhow::Result<ConsignmentService> {
    tracing::info!(nats_url = %config.worker.nats.redacted_url(), "starting consignment-worker");
    let client = shared::nats::connect_worker(&config.worker.nats, shared::roles::CONSIGNMENT_WORKER).await?;
    let windows = Windows {
        idempotency: Duration::from_secs(config.idempotency_window_secs),
        events: Duration::from_secs(config.event_dedup_window_secs),
    };
    let store = JetStreamStore::open(client.clone(), &config.worker.store, windows).await?;
    let vessels = VesselClient::new(client.clone(), Duration::from_millis(config.vessel_timeout_ms));
    let recover_after = Duration::from_millis(config.recover_after_ms);
    let creator = Creator::new(store, vessels, recover_after);
    let max_payload = client.server_info().max_payload;
    let handler = ConsignmentHandler::new(creator, max_payload, (recover_after / 2).max(Duration::from_millis(100)));
    let spec = ServiceSpec {
        name: consignment::SERVICE,
        version: env!("CARGO_PKG_VERSION"),
        description: "Creates consignments and books them onto vessels",
        queue_group: consignment::QUEUE_GROUP,
        endpoints: &[consignment::CREATE_ENDPOINT, consignment::GET_ENDPOINT, consignment::LIST_ENDPOINT],
        max_request_bytes: config.worker.max_request_bytes,
        max_in_flight: config.worker.max_in_flight,
        shutdown_grace: config.worker.shutdown_grace(),
    };
    Ok(Service::start(client, spec, handler).await?)
}

/// Runs a consignment-worker until `shutdown` completes, then stops gracefully.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    shared::service::run(start(&config), shutdown).await
}
