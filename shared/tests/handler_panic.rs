//! A handler panic costs one request (a 500 reply), never the worker.
//!
//! `cargo test` always unwinds; the release binaries unwind too, because
//! `shared::service` refuses to build with any other panic strategy
//! (`compile_error!` under `cfg(not(panic = "unwind"))`), so the `catch_unwind` that
//! this test exercises holds in the binaries users run.

use std::{num::NonZeroUsize, time::Duration};

use bytes::Bytes;
use shared::{
    ErrorCode, ServiceError,
    client::request,
    service::{Handler, Service, ServiceSpec},
};
use testkit::{Nats, service_error};

const TIMEOUT: Duration = Duration::from_secs(10);

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

/// The probe service: `probe.panic` and `probe.echo`, one request at a time.
fn spec() -> ServiceSpec {
    ServiceSpec {
        name: "probe",
        version: "0.1.0",
        description: "Panics on request",
        queue_group: "probe",
        endpoints: &["panic", "echo"],
        max_request_bytes: 1024,
        max_in_flight: NonZeroUsize::MIN,
        shutdown_grace: Duration::from_secs(5),
        metrics_addr: None,
    }
}

#[tokio::test]
async fn handler_panic_is_a_500_and_the_service_keeps_serving() {
    let nats = Nats::start().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let worker = testkit::serve(Service::start(client.clone(), spec(), Probe).await.unwrap());
    // Three panics, each answered with a 500, and an echo after each.
    for _ in 0..3 {
        let error = service_error(request::<serde_json::Value>(&client, "probe.panic", "{}".into(), TIMEOUT).await);
        assert_eq!(error, ServiceError::new(ErrorCode::Internal, "internal error"));
        let echo: serde_json::Value =
            request(&client, "probe.echo", r#"{"still":"here"}"#.into(), TIMEOUT).await.unwrap();
        assert_eq!(echo["still"], "here");
    }
    worker.stop().await.unwrap();
}
