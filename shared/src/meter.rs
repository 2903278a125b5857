//! The metrics a worker records, through the `metrics` facade, for Prometheus
//! to scrape (`/metrics`, served by [`crate::health`] when `METRICS_ADDR` is set).
//!
//! Until [`install`] runs (no `METRICS_ADDR`), nothing is recorded: each call
//! below is one atomic load, and a service's endpoints have no [`Endpoint`]
//! metrics. After it, the metrics recorded on every request are registered once
//! ([`Endpoint`], and per subject for outgoing requests) and recorded through
//! their handles; the rare ones (errors, timeouts, conflicts) are looked up by
//! name and labels when they happen. Names follow the Prometheus conventions (`_total`,
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
    collections::HashMap,
    sync::{
        LazyLock, OnceLock, PoisonError, RwLock,
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

/// The metrics of one endpoint of a service, registered once, when the service
/// starts: a request then records through these handles, not looking each one up
/// in the recorder's registry by name and labels, which costs several times the
/// recording itself (README, "Overhead").
#[derive(Debug)]
pub struct Endpoint {
    service: &'static str,
    name: &'static str,
    requests: metrics::Counter,
    duration: metrics::Histogram,
    in_flight: metrics::Gauge,
    wait: metrics::Histogram,
}

impl Endpoint {
    /// The metrics of `endpoint` (its name) of `service`, if metrics are recorded
    /// ([`install`] has run).
    pub fn new(service: &'static str, endpoint: &'static str) -> Option<Self> {
        on().then(|| Self {
            service,
            name: endpoint,
            requests: metrics::counter!(REQUESTS, "service" => service, "endpoint" => endpoint),
            duration: metrics::histogram!(PROCESS_DURATION, "service" => service, "endpoint" => endpoint),
            in_flight: metrics::gauge!(IN_FLIGHT, "service" => service),
            wait: metrics::histogram!(REQUEST_WAIT, "service" => service),
        })
    }
}

/// One request to an endpoint, in flight until dropped.
#[derive(Debug)]
pub struct Request<'a>(&'a Endpoint);

impl<'a> Request<'a> {
    /// A request to `endpoint`, taken off the subscription `waited` ago, now
    /// starting; nothing while metrics are not recorded (no `endpoint`).
    pub fn start(endpoint: Option<&'a Endpoint>, waited: Duration) -> Option<Self> {
        let endpoint = endpoint?;
        endpoint.in_flight.increment(1);
        endpoint.wait.record(waited);
        Some(Self(endpoint))
    }

    /// The request was answered after `took`, with `error` if it failed.
    pub fn done(&self, took: Duration, error: Option<ErrorCode>) {
        let Endpoint { service, name, requests, duration, .. } = self.0;
        requests.increment(1);
        duration.record(took);
        if let Some(code) = error {
            metrics::counter!(REQUEST_ERRORS, "service" => *service, "endpoint" => *name,
                "error_type" => code.to_string())
            .increment(1);
        }
    }
}

impl Drop for Request<'_> {
    fn drop(&mut self) {
        self.0.in_flight.decrement(1);
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
    match outcome {
        Outcome::Answered => {}
        Outcome::TimedOut => {
            metrics::counter!(CLIENT_TIMEOUTS, "messaging_destination_name" => subject.to_owned()).increment(1);
        }
        Outcome::NoResponders => {
            metrics::counter!(CLIENT_NO_RESPONDERS, "messaging_destination_name" => subject.to_owned()).increment(1);
        }
    }
    client_duration(subject).record(took);
}

/// The latency histogram of the requests sent to `subject`, registered once per
/// subject (a worker sends to one or two): as for [`Endpoint`], a lookup by name
/// and labels on every request would cost more than the recording.
fn client_duration(subject: &str) -> metrics::Histogram {
    static BY_SUBJECT: LazyLock<RwLock<HashMap<String, metrics::Histogram>>> = LazyLock::new(RwLock::default);
    if let Some(histogram) = BY_SUBJECT.read().unwrap_or_else(PoisonError::into_inner).get(subject) {
        return histogram.clone();
    }
    BY_SUBJECT
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(subject.to_owned())
        .or_insert_with(|| metrics::histogram!(CLIENT_DURATION, "messaging_destination_name" => subject.to_owned()))
        .clone()
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
