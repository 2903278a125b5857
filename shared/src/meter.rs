//! The metrics a worker records, through the `metrics` facade, for Prometheus
//! to scrape (`/metrics`, served by [`crate::health`] when `METRICS_ADDR` is set).
//!
//! Until [`install`] runs (no `METRICS_ADDR`), nothing is recorded: each call
//! below is one atomic load. Names follow the Prometheus conventions (`_total`,
//! `_seconds`, base units) and, where one applies, the OpenTelemetry messaging semantic
//! convention (`messaging.process.duration`, `messaging.client.operation.duration`,
//! label `messaging_destination_name` for the subject a request is sent to).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `shippy_requests_total` | counter | `service`, `endpoint` (`consignment`, `create`: subject `consignment.create`) |
//! | `shippy_request_errors_total` | counter | the same, `error_type` (the error code) |
//! | `messaging_process_duration_seconds` | histogram | `service`, `endpoint` |
//! | `shippy_requests_in_flight` | gauge | `service` |
//! | `shippy_request_wait_seconds` | histogram | `service`: from taking the request off the subscription to its handler starting |
//! | `messaging_client_operation_duration_seconds` | histogram | `messaging_destination_name` |
//! | `shippy_client_timeouts_total`, `shippy_client_no_responders_total` | counter | `messaging_destination_name` |
//! | `shippy_jetstream_operation_duration_seconds` | histogram | `operation` |
//! | `shippy_jetstream_conflicts_total` | counter | (an append refused: another writer came first) |
//! | `shippy_jetstream_retries_total` | counter | (a decision taken again after a conflict) |
//! | `shippy_recoveries_total` | counter | `kind` (`refollow`: the projection followed the stream again) |
//! | `shippy_nats_reconnects_total`, `shippy_nats_slow_consumers_total` | counter | |

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::ErrorCode;

pub const REQUESTS: &str = "shippy_requests_total";
pub const REQUEST_ERRORS: &str = "shippy_request_errors_total";
pub const PROCESS_DURATION: &str = "messaging_process_duration_seconds";
pub const IN_FLIGHT: &str = "shippy_requests_in_flight";
pub const REQUEST_WAIT: &str = "shippy_request_wait_seconds";
pub const CLIENT_DURATION: &str = "messaging_client_operation_duration_seconds";
pub const CLIENT_TIMEOUTS: &str = "shippy_client_timeouts_total";
pub const CLIENT_NO_RESPONDERS: &str = "shippy_client_no_responders_total";
pub const JETSTREAM_DURATION: &str = "shippy_jetstream_operation_duration_seconds";
pub const JETSTREAM_CONFLICTS: &str = "shippy_jetstream_conflicts_total";
pub const JETSTREAM_RETRIES: &str = "shippy_jetstream_retries_total";
pub const RECOVERIES: &str = "shippy_recoveries_total";
pub const RECONNECTS: &str = "shippy_nats_reconnects_total";
pub const SLOW_CONSUMERS: &str = "shippy_nats_slow_consumers_total";

/// Histogram buckets, in seconds: 100 µs to 10 s.
const BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static ON: AtomicBool = AtomicBool::new(false);

fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Installs the Prometheus recorder (once per process; later calls return the
/// same handle) and starts recording.
///
/// # Panics
/// Never: the buckets are valid, and the recorder is installed only here.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), BUCKETS)
                .expect("the buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).expect("the recorder is installed once, here");
            ON.store(true, Ordering::Relaxed);
            handle
        })
        .clone()
}

/// One request to a service's endpoint, in flight until dropped.
#[derive(Debug)]
pub struct Request {
    service: &'static str,
    endpoint: &'static str,
}

impl Request {
    /// A request to `endpoint` (its name) of `service`, taken off the
    /// subscription `waited` ago, now starting.
    pub fn start(service: &'static str, endpoint: &'static str, waited: Duration) -> Option<Self> {
        if !on() {
            return None;
        }
        metrics::gauge!(IN_FLIGHT, "service" => service).increment(1);
        metrics::histogram!(REQUEST_WAIT, "service" => service).record(waited);
        Some(Self { service, endpoint })
    }

    /// The request was answered after `took`, with `error` if it failed.
    pub fn done(&self, took: Duration, error: Option<ErrorCode>) {
        let (service, endpoint) = (self.service, self.endpoint);
        metrics::counter!(REQUESTS, "service" => service, "endpoint" => endpoint).increment(1);
        metrics::histogram!(PROCESS_DURATION, "service" => service, "endpoint" => endpoint).record(took);
        if let Some(code) = error {
            metrics::counter!(REQUEST_ERRORS, "service" => service, "endpoint" => endpoint,
                "error_type" => code.to_string())
            .increment(1);
        }
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        metrics::gauge!(IN_FLIGHT, "service" => self.service).decrement(1);
    }
}

/// How an outgoing request ended, for [`client_request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    TimedOut,
    NoResponders,
}

/// An outgoing request to `subject` that took `took`.
pub fn client_request(subject: &str, took: Duration, outcome: Outcome) {
    if !on() {
        return;
    }
    let subject = subject.to_owned();
    match outcome {
        Outcome::Answered => {}
        Outcome::TimedOut => {
            metrics::counter!(CLIENT_TIMEOUTS, "messaging_destination_name" => subject.clone()).increment(1);
        }
        Outcome::NoResponders => {
            metrics::counter!(CLIENT_NO_RESPONDERS, "messaging_destination_name" => subject.clone()).increment(1);
        }
    }
    metrics::histogram!(CLIENT_DURATION, "messaging_destination_name" => subject).record(took);
}

/// A JetStream `operation` (`publish`, `get`...) that took `took`; `conflict` if
/// the server refused an append for its expected sequence.
pub fn jetstream(operation: &'static str, took: Duration, conflict: bool) {
    if !on() {
        return;
    }
    metrics::histogram!(JETSTREAM_DURATION, "operation" => operation).record(took);
    if conflict {
        metrics::counter!(JETSTREAM_CONFLICTS).increment(1);
    }
}

/// A decision taken again after a conflict.
pub fn jetstream_retry() {
    if on() {
        metrics::counter!(JETSTREAM_RETRIES).increment(1);
    }
}

/// A recovery of `kind`.
pub fn recovery(kind: &'static str) {
    if on() {
        metrics::counter!(RECOVERIES, "kind" => kind).increment(1);
    }
}

/// A connection event: reconnects and slow consumers are counted.
pub fn nats_event(event: &async_nats::Event, reconnect: bool) {
    if !on() {
        return;
    }
    match event {
        async_nats::Event::Connected if reconnect => metrics::counter!(RECONNECTS).increment(1),
        async_nats::Event::SlowConsumer(_) => metrics::counter!(SLOW_CONSUMERS).increment(1),
        _ => {}
    }
}
