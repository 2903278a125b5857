use clap::Parser as _;
use gateway::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = shared::telemetry::init("gateway");
    gateway::run(Config::parse(), shared::shutdown::signal()).await
}
