use clap::Parser as _;
use gateway::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    gateway::run(Config::parse(), shared::shutdown::signal()).await
}
