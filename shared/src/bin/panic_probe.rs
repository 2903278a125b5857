//! A service whose handler panics on request: the release profile's proof that a
//! handler panic costs one request, never the process (`tests/handler_panic.rs`).
//!
//! Serves `probe.panic` (panics) and `probe.echo` (echoes the body) on `NATS_URL`;
//! prints `ready` on stdout once it takes requests, and runs until killed.
//!
//! Built only when asked for, with its own feature, so that a release build of it
//! reuses the workers' release dependencies:
//! `cargo build --release -p shared --features panic-probe --bin panic_probe`.

#[path = "../../tests/probe/mod.rs"]
mod probe;

use shared::service::Service;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var(shared::nats::URL_ENV).unwrap_or_else(|_| shared::nats::DEFAULT_URL.to_owned());
    let client = async_nats::connect(url).await?;
    let service = Service::start(client, probe::spec(), probe::Probe).await?;
    println!("ready");
    service.serve(std::future::pending()).await?;
    Ok(())
}
