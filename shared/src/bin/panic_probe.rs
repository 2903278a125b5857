//! A service whose handler panics on request: the release profile's proof that a
//! handler panic costs one request, never the process (`tests/handler_panic.rs`).
//!
//! Serves `probe.panic` (panics) and `probe.echo` (echoes the body) on `NATS_URL`;
//! prints `ready` on stdout once it takes requests, and runs until killed.
//!
//! Built only when asked for, with its own feature, so that a release build of it
//! reuses the workers' release dependencies:
//! `cargo build --release -p shared --features panic-probe --bin panic_probe`.

use std::num::NonZeroUsize;

use bytes::Bytes;
use shared::{
    ServiceError,
    service::{Handler, Service, ServiceSpec},
};

/// Panics on `probe.panic`, echoes anything else.
#[derive(Debug)]
struct Probe;

impl Handler for Probe {
    async fn handle(
        &self,
        subject: &str,
        _headers: Option<&async_nats::HeaderMap>,
        payload: Bytes,
    ) -> Result<Vec<u8>, ServiceError> {
        assert!(subject != "probe.panic", "the probe panics on request");
        Ok(payload.to_vec())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var(shared::nats::URL_ENV).unwrap_or_else(|_| shared::nats::DEFAULT_URL.to_owned());
    let client = async_nats::connect(url).await?;
    let spec = ServiceSpec {
        name: "probe",
        version: "0.1.0",
        description: "Panics on request",
        queue_group: "probe",
        endpoints: &["panic", "echo"],
        max_request_bytes: 1024,
        max_in_flight: NonZeroUsize::MIN,
    };
    let service = Service::start(client, spec, Probe).await?;
    println!("ready");
    service.serve(std::future::pending()).await?;
    Ok(())
}
