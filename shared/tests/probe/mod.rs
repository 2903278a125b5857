//! The panic probe: a service whose handler panics on request. Served in-process by
//! `tests/handler_panic.rs` and, built with the release profile, by
//! `src/bin/panic_probe.rs`, which includes this file.

use std::num::NonZeroUsize;

use bytes::Bytes;
use shared::{
    ServiceError,
    service::{Handler, ServiceSpec},
};

/// Panics on `probe.panic`, echoes anything else.
#[derive(Debug)]
pub(crate) struct Probe;

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
pub(crate) fn spec() -> ServiceSpec {
    ServiceSpec {
        name: "probe",
        version: "0.1.0",
        description: "Panics on request",
        queue_group: "probe",
        endpoints: &["panic", "echo"],
        max_request_bytes: 1024,
        max_in_flight: NonZeroUsize::MIN,
        shutdown_grace: std::time::Duration::from_secs(5),
        metrics_addr: None,
    }
}
