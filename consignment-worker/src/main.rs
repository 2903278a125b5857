use clap::Parser as _;
use consignment_worker::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    // Boxed: the worker's state machine is large, and lives on the heap once.
    Box::pin(consignment_worker::run(Config::parse(), shared::shutdown::signal())).await
}
