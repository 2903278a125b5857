use clap::Parser as _;
use vessel_worker::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    // Boxed: the worker's state machine is large, and lives on the heap once.
    Box::pin(vessel_worker::run(Config::parse(), shared::shutdown::signal())).await
}
