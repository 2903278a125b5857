//! Logging, filtered by `RUST_LOG`, and distributed tracing: OpenTelemetry spans
//! exported over OTLP, their W3C trace context carried in NATS headers.
//!
//! # Export
//!
//! [`init`] reads the standard variables: with `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, spans are batched and sent over
//! OTLP/HTTP (protobuf), named by `OTEL_SERVICE_NAME` (default: the binary's name)
//! and sampled by `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG` (default
//! `parentbased_always_on`). Without an endpoint, or with `OTEL_SDK_DISABLED=true`
//! or `OTEL_TRACES_EXPORTER=none`, no OpenTelemetry layer is installed: the
//! request and JetStream spans are not made, nothing is exported and nothing is
//! added to messages.
//!
//! # Trace context in NATS headers
//!
//! [`extract`] reads `traceparent`/`tracestate` from a request's headers, names
//! matched in any case (Go's propagator writes `Traceparent`); a malformed value,
//! or one longer than [`MAX_HEADER_LEN`], is ignored and the request starts a
//! root span. [`inject`] writes the current span's context into outgoing headers:
//! requests a worker sends and messages it appends to JetStream, so that a
//! consumer of the events can link back to the request that wrote them.
//!
//! # Spans
//!
//! The service runtime opens a server span per endpoint request ([`server_span`]),
//! the request client a client span per request ([`client_span`]), the store a
//! span per JetStream operation; each carries the OpenTelemetry messaging attributes
//! (`messaging.system`, `messaging.destination.name`, ...). Log lines written within
//! a request's span carry its `trace_id` and `span_id`.

use std::{
    io::IsTerminal as _,
    sync::{
        OnceLock,
        atomic::{AtomicBool, Ordering},
    },
};

use async_nats::HeaderMap;
use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator as _},
    trace::{TraceContextExt as _, TracerProvider as _},
};
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing::{Level, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::{EnvFilter, Layer, filter, layer::SubscriberExt as _, util::SubscriberInitExt as _};

/// The longest `traceparent` or `tracestate` taken from a message: longer ones are
/// ignored unread (a `traceparent` is 55 characters, a `tracestate` at most 32
/// members of 256).
pub const MAX_HEADER_LEN: usize = 8 * 1024;

/// The tracer's instrumentation scope.
const SCOPE: &str = "shippy";

/// Whether an OpenTelemetry layer is installed: without one, the request and
/// JetStream spans below are not made at all (nothing would read them).
static TRACING: AtomicBool = AtomicBool::new(false);

/// Whether spans are recorded for OpenTelemetry in this process.
pub fn tracing_on() -> bool {
    TRACING.load(Ordering::Relaxed)
}

/// Keeps the exporter of [`init`] running; on drop, sends the spans not yet sent.
#[derive(Debug)]
#[must_use = "dropping it stops the export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "could not send the last spans");
        }
    }
}

/// Installs a `tracing` subscriber that writes to stderr, filtered by `RUST_LOG`
/// (default `info`), in colour only on a terminal, and exports spans over OTLP when
/// the `OTEL_*` variables ask for it (module documentation). `service` names the
/// process when `OTEL_SERVICE_NAME` does not. Safe to call more than once; later
/// calls install nothing.
pub fn init(service: &'static str) -> Telemetry {
    init_with(service, "info")
}

/// [`init`], logging `default_filter` (such as `warn`, for a command line tool)
/// when `RUST_LOG` is unset.
pub fn init_with(service: &'static str, default_filter: &str) -> Telemetry {
    let provider = otlp_provider(service);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter);
    let spans = provider.as_ref().map(layer);
    // Ignored error: a subscriber is already installed (tests call this repeatedly).
    let _ = tracing_subscriber::registry().with(logs).with(spans).try_init();
    Telemetry { provider }
}

/// The layer that turns `tracing` spans at `info` and above into OpenTelemetry
/// spans of `provider`: [`init`]'s, or a test's with an in-memory exporter.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + use<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    TRACING.store(true, Ordering::Relaxed);
    // Only what is exported: no `target`, thread or code location attributes, no
    // busy/idle timings and no OpenTelemetry context made current on each poll of
    // an instrumented future (nothing here reads it: [`inject`] takes the span's).
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(SCOPE))
        .with_level(false)
        .with_threads(false)
        .with_location(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_context_activation(false)
        .with_filter(filter::filter_fn(|metadata| {
            // Spans at `info` and above; of the log events, warnings and errors (as
            // span events): the rest are in the logs, with the span's ids.
            *metadata.level() <= if metadata.is_span() { Level::INFO } else { Level::WARN }
        }))
}

/// The OTLP exporter the environment asks for, if any.
fn otlp_provider(service: &'static str) -> Option<SdkTracerProvider> {
    let set = |name: &str| std::env::var(name).is_ok_and(|value| !value.trim().is_empty());
    let is = |name: &str, value: &str| std::env::var(name).is_ok_and(|set| set.trim().eq_ignore_ascii_case(value));
    if is("OTEL_SDK_DISABLED", "true")
        || is("OTEL_TRACES_EXPORTER", "none")
        || !(set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    {
        return None;
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder().with_http().build() {
        Ok(exporter) => exporter,
        Err(error) => {
            // No subscriber yet: straight to stderr.
            eprintln!("{service}: tracing off, the OTLP exporter could not be built: {error}");
            return None;
        }
    };
    let name = std::env::var("OTEL_SERVICE_NAME").ok().filter(|name| !name.is_empty());
    let resource =
        opentelemetry_sdk::Resource::builder().with_service_name(name.unwrap_or_else(|| service.to_owned())).build();
    Some(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

/// The trace id of `span` (32 hex digits), if it has a valid one: only while spans
/// are exported (or a test's layer is installed).
pub fn trace_id(span: &Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| span_context.trace_id().to_string())
}

/// Makes `span`'s trace continue the one in `headers`, if they carry a valid
/// `traceparent` (see the module's documentation); else `span` stays a root.
/// Records its ids in its `trace_id`/`span_id` fields, for the log lines within.
pub fn continue_trace(span: &Span, headers: Option<&HeaderMap>) {
    if span.is_disabled() {
        return;
    }
    if let Some(headers) = headers {
        let parent = propagator().extract(&Headers(headers));
        if parent.span().span_context().is_valid() {
            // Ignored error: only when no OpenTelemetry layer is installed.
            let _ = span.set_parent(parent);
        }
    }
    let context = span.context();
    let ids = context.span().span_context().clone();
    if ids.is_valid() {
        span.record("trace_id", tracing::field::display(ids.trace_id()));
        span.record("span_id", tracing::field::display(ids.span_id()));
    }
}

/// Links `span` to the trace of `other`, if it has one: for work done for several
/// requests at once (one append of several creates).
pub fn link(span: &Span, other: &Span) {
    let context = other.context();
    let other = context.span().span_context().clone();
    if other.is_valid() {
        span.add_link(other);
    }
}

/// Writes the context of the current span into `headers`, if it has one: a
/// `traceparent` (and `tracestate`). Creates the headers only then, so that
/// nothing is added to a message while tracing is off.
pub fn inject(headers: &mut Option<HeaderMap>) {
    inject_span(&Span::current(), headers);
}

/// [`inject`] with the context of `span`.
pub fn inject_span(span: &Span, headers: &mut Option<HeaderMap>) {
    if span.is_disabled() {
        return;
    }
    inject_context(&span.context(), headers);
}

fn inject_context(context: &Context, headers: &mut Option<HeaderMap>) {
    if !context.span().span_context().is_valid() {
        return;
    }
    propagator().inject_context(context, &mut HeadersMut(headers.get_or_insert_with(HeaderMap::new)));
}

fn propagator() -> &'static TraceContextPropagator {
    static PROPAGATOR: OnceLock<TraceContextPropagator> = OnceLock::new();
    PROPAGATOR.get_or_init(TraceContextPropagator::new)
}

/// Reads trace context headers, names in any case, values no longer than [`MAX_HEADER_LEN`].
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let (_, values) = self.0.iter().find(|(name, _)| AsRef::<str>::as_ref(name).eq_ignore_ascii_case(key))?;
        let value = values.first()?.as_str();
        (value.len() <= MAX_HEADER_LEN).then_some(value)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value);
    }
}

/// A server span for a request to `subject`, served by `queue_group`: the span
/// a [`crate::service::Service`] serves each request in. Its `error.type` is
/// recorded by [`record_error`]. Like the other spans below, a disabled span
/// (nothing made) unless [`tracing_on`].
///
/// The OpenTelemetry attributes go to the span's OpenTelemetry data only
/// ([`attributes`]), not into its `tracing` fields: the log lines within carry
/// the span's name and ids, not a dozen attributes formatted for each span.
pub fn server_span(subject: &str, queue_group: &'static str, bytes: usize) -> Span {
    if !tracing_on() {
        return Span::none();
    }
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("process {subject}"),
        otel.kind = "server",
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    attributes(
        &span,
        subject,
        [
            ("messaging.operation.type", "process".into()),
            ("messaging.consumer.group.name", queue_group.into()),
            body_size(bytes),
        ],
    );
    span
}

/// A client span for a request sent to `subject`.
pub fn client_span(subject: &str, bytes: usize) -> Span {
    if !tracing_on() {
        return Span::none();
    }
    let span = tracing::info_span!("send", otel.name = %format_args!("send {subject}"), otel.kind = "client");
    attributes(&span, subject, [("messaging.operation.type", "send".into()), body_size(bytes)]);
    span
}

/// A span for a JetStream operation (`publish`, `get`, `list`...) on `stream`,
/// about `subject`.
pub fn jetstream_span(operation: &'static str, stream: &str, subject: &str) -> Span {
    if !tracing_on() {
        return Span::none();
    }
    let span = tracing::info_span!(
        "jetstream",
        otel.name = %format_args!("{operation} {stream}"),
        otel.kind = if operation == "publish" { "producer" } else { "client" },
    );
    attributes(
        &span,
        subject,
        [("messaging.operation.name", operation.into()), ("messaging.jetstream.stream", stream.to_owned().into())],
    );
    span
}

/// The `messaging.message.body.size` attribute.
fn body_size(bytes: usize) -> (&'static str, opentelemetry::Value) {
    ("messaging.message.body.size", i64::try_from(bytes).unwrap_or(i64::MAX).into())
}

/// Sets the OpenTelemetry messaging attributes of `span`, about `subject`, and `more`.
fn attributes<const N: usize>(span: &Span, subject: &str, more: [(&'static str, opentelemetry::Value); N]) {
    span.set_attribute("messaging.system", "nats");
    span.set_attribute("messaging.destination.name", subject.to_owned());
    for (key, value) in more {
        span.set_attribute(key, value);
    }
}

/// Marks `span` failed with `kind` (an error code, `timeout`, `conflict`...): its
/// `error.type` attribute, and an error status.
pub fn record_error(span: &Span, kind: &dyn std::fmt::Display) {
    if span.is_disabled() {
        return;
    }
    let kind = kind.to_string();
    span.set_attribute("error.type", kind.clone());
    span.set_status(opentelemetry::trace::Status::error(kind));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, *value);
        }
        headers
    }

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn trace_context_names_match_in_any_case() {
        for name in ["traceparent", "Traceparent", "TRACEPARENT"] {
            let context = propagator().extract(&Headers(&headers(&[(name, PARENT)])));
            let span = context.span().span_context().clone();
            assert!(span.is_valid(), "{name}");
            assert_eq!(span.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        }
    }

    #[test]
    fn a_malformed_or_huge_traceparent_is_ignored() {
        let huge = format!("{PARENT}{}", "0".repeat(MAX_HEADER_LEN));
        for value in ["", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "ff-x-y-z", &huge] {
            let context = propagator().extract(&Headers(&headers(&[("traceparent", value)])));
            assert!(!context.span().span_context().is_valid(), "{value:.60}");
        }
    }

    #[test]
    fn nothing_is_injected_without_a_trace() {
        let mut headers = None;
        inject(&mut headers);
        assert!(headers.is_none());
    }
}
