use clap::Parser as _;
use consignment_worker::Config;

/// jemalloc: its per-thread caches take back cheaply what another thread frees
/// (README, "Overhead").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    if let Some(shared::health::Command::Health) = config.worker.command {
        return Ok(shared::health::probe(config.worker.health.metrics_addr.as_deref()).await?);
    }
    let _telemetry = shared::telemetry::init("consignment-worker");
    // Boxed: the worker's state machine is large, and lives on the heap once.
    Box::pin(consignment_worker::run(config, shared::shutdown::signal())).await
}
