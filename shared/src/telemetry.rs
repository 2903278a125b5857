//! Logging, filtered by `RUST_LOG`, and distributed tracing: OpenTelemetry spans
//! exported over OTLP, their W3C trace context carried in NATS headers.
//!
//! # Export
//!
//! [`init`] reads the standard variables: with `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, spans are batched (4,096 a batch, at
//! most 16,384 queued, unless `OTEL_BSP_*` say otherwise) and sent over
//! OTLP/HTTP (protobuf), named by `OTEL_SERVICE_NAME` (default: the binary's name)
//! and sampled by `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG` (default
//! `parentbased_always_on`). The export runs on the batch processor's thread at
//! idle priority ([`IdleExport`]): it takes only CPU time no request wants, and
//! when the CPUs stay busy until the queue is full, spans are dropped (the SDK
//! logs a warning at the first and the count at shutdown), never requests slowed.
//! Without an endpoint, or with `OTEL_SDK_DISABLED=true`
//! or `OTEL_TRACES_EXPORTER=none`, no tracer is installed: the request and
//! JetStream spans are not made, nothing is exported and nothing is added to
//! messages.
//!
//! # Spans
//!
//! The spans on a request's path are made with the OpenTelemetry SDK's tracer
//! directly, as [`OtelSpan`]s, not as `tracing` spans bridged by
//! `tracing-opentelemetry`: that bridge costs a registry slot, a lock and an
//! allocation or two per span and a timestamp per poll, several times the span
//! itself (README, "Overhead"). They are the service runtime's server span per
//! endpoint request ([`server_span`]), the request client's client span per request
//! ([`client_span`]) and the store's span per JetStream operation
//! ([`jetstream_span`]), each with the OpenTelemetry messaging attributes
//! (`messaging.system`, `messaging.destination.name`, ...). A future run in one
//! ([`OtelSpan::run`]) has its context current (OpenTelemetry's, set on each poll),
//! so the spans made and the headers written within continue it; [`current`] takes
//! it on to another task.
//!
//! Recovery and background work, rare, are `tracing` spans at `info`, turned into
//! OpenTelemetry spans by [`layer`]; entering one makes its context current too.
//!
//! # Trace context in NATS headers
//!
//! [`server_span`] continues the trace in a request's `traceparent`/`tracestate`,
//! names matched in any case (Go's propagator writes `Traceparent`); a malformed
//! value, or one longer than [`MAX_HEADER_LEN`], is ignored and the request starts
//! a root span. [`OtelSpan::inject`] and [`inject`] write a span's context into
//! outgoing headers: requests a worker sends and messages it appends to JetStream,
//! so that a consumer of the events can link back to the request that wrote them.
//!
//! # Logs
//!
//! Log lines end with the `trace_id` and `span_id` of the OpenTelemetry span
//! current where they are written, if any.

use std::{fmt, future::Future, io::IsTerminal as _, sync::OnceLock};

use async_nats::{HeaderMap, header::HeaderName};
use futures::future::Either;
use opentelemetry::{
    Context, KeyValue,
    context::FutureExt as _,
    trace::{
        SpanContext, SpanId, SpanKind, SpanRef, Status, TraceContextExt as _, TraceFlags, TraceId, Tracer as _,
        TracerProvider as _,
    },
};
use opentelemetry_sdk::{
    error::OTelSdkResult,
    trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData, SpanExporter},
};
use tracing::{Level, Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::{
    EnvFilter, Layer, filter,
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    layer::SubscriberExt as _,
    registry::LookupSpan,
    util::SubscriberInitExt as _,
};

/// The longest `traceparent` or `tracestate` taken from a message: longer ones are
/// ignored unread (a `traceparent` is 55 characters, a `tracestate` at most 32
/// members of 256).
pub const MAX_HEADER_LEN: usize = 8 * 1024;

/// The tracer's instrumentation scope.
const SCOPE: &str = "shippy";

/// The tracer of the spans on a request's path, set by [`layer`]: while it is
/// unset, those spans are not made at all (nothing would read them).
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Whether spans are recorded for OpenTelemetry in this process.
pub fn tracing_on() -> bool {
    TRACER.get().is_some()
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
        .event_format(TraceIds(tracing_subscriber::fmt::format()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter);
    let spans = provider.as_ref().map(layer);
    // Ignored error: a subscriber is already installed (tests call this repeatedly).
    let _ = tracing_subscriber::registry().with(logs).with(spans).try_init();
    Telemetry { provider }
}

/// Makes `provider` (the first one given, in a process) the tracer of the spans on
/// a request's path, and returns the layer that turns `tracing` spans at `info` and
/// above into its spans: [`init`]'s provider, or a test's with an in-memory exporter.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + use<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    let tracer = provider.tracer(SCOPE);
    // Ignored error: a tracer is set already, and stays (one per process).
    let _ = TRACER.set(tracer.clone());
    // Only what is exported: no `target`, thread or code location attributes and no
    // busy/idle timings. Entering a span makes its context current, for the spans
    // and log lines within.
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_level(false)
        .with_threads(false)
        .with_location(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_context_activation(true)
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
    // Larger batches than the SDK's defaults (512 of at most 2,048 queued) unless
    // the `OTEL_BSP_*` variables say otherwise: at thousands of requests per second,
    // 512 spans are an export every few tens of milliseconds, and each export costs
    // both sides a request. Measured in README "Overhead".
    let mut batch = BatchConfigBuilder::default();
    if !set("OTEL_BSP_MAX_QUEUE_SIZE") {
        batch = batch.with_max_queue_size(16 * 1024);
    }
    if !set("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") {
        batch = batch.with_max_export_batch_size(4 * 1024);
    }
    let processor = BatchSpanProcessor::builder(IdleExport(exporter)).with_batch_config(batch.build()).build();
    Some(SdkTracerProvider::builder().with_span_processor(processor).with_resource(resource).build())
}

/// An exporter that lowers the priority of the thread it exports on (the batch
/// processor's, "OpenTelemetry.Traces.BatchProcessor") on its first export: to
/// `SCHED_IDLE` on Linux, the lowest nice value elsewhere. Turning spans into
/// OTLP, encoding and freeing them costs as much CPU as before, but only CPU that
/// no request wants (module documentation; README, "Overhead").
#[derive(Debug)]
struct IdleExport<E>(E);

impl<E: SpanExporter> SpanExporter for IdleExport<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        thread_local!(static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
        if !LOWERED.replace(true)
            && let Err(error) = lower_priority()
        {
            tracing::warn!(?error, "spans are exported at normal priority: it could not be lowered");
        }
        self.0.export(batch)
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.0.set_resource(resource);
    }
}

/// Gives the calling thread the lowest priority there is for it: see [`IdleExport`].
fn lower_priority() -> Result<(), thread_priority::Error> {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        thread_priority::set_thread_priority_and_policy(thread_priority::thread_native_id(), ThreadPriority::Min, idle)
    }
    #[cfg(not(target_os = "linux"))]
    thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min)
}

/// The line format of `tracing-subscriber` (`F`), ending with the current
/// OpenTelemetry span's `trace_id` and `span_id` when there is one (then without
/// colours). The line is formatted into a buffer of its own, so that the ids go
/// before its newline, and written at once; the ids are written as hex digits
/// straight from their bytes, not through `fmt` (README, "Overhead").
struct TraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for TraceIds<F>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    N: for<'writer> FormatFields<'writer> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let context = Context::current();
        let span = context.span();
        let ids = span.span_context();
        if !ids.is_valid() {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::with_capacity(256);
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let ended = line.ends_with('\n');
        if ended {
            line.pop();
        }
        let (trace_id, span_id) = (Hex::<32>::of(ids.trace_id().to_bytes()), Hex::<16>::of(ids.span_id().to_bytes()));
        for part in [
            line.as_str(),
            " trace_id=",
            trace_id.as_str(),
            " span_id=",
            span_id.as_str(),
            if ended { "\n" } else { "" },
        ] {
            writer.write_str(part)?;
        }
        Ok(())
    }
}

/// `N` bytes in `M` = 2 `N` lower-case hex digits, made without `fmt` or an
/// allocation: for the ids in log lines and `traceparent` headers.
struct Hex<const M: usize>([u8; M]);

impl<const M: usize> Hex<M> {
    fn of<const N: usize>(bytes: [u8; N]) -> Self {
        const { assert!(M == 2 * N) };
        let mut digits = [0; M];
        // Cannot fail: `digits` is twice as long as `bytes`.
        let _ = hex::encode_to_slice(bytes, &mut digits);
        Self(digits)
    }

    fn as_str(&self) -> &str {
        // Hex digits are ASCII: never the default.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The trace id of `span`, a `tracing` span (32 hex digits), if it has a valid one:
/// only while spans are exported (or a test's layer is installed).
pub fn trace_id(span: &Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| span_context.trace_id().to_string())
}

/// An OpenTelemetry span on a request's path, made with the SDK's tracer directly
/// (module documentation); it ends when dropped. While tracing is off, nothing is
/// made and every method returns at once.
#[derive(Debug, Default)]
#[must_use = "the span ends when dropped"]
pub struct OtelSpan(Option<Context>);

impl OtelSpan {
    fn start(tracer: &SdkTracer, name: String, kind: SpanKind, parent: &Context, attributes: Vec<KeyValue>) -> Self {
        let span =
            tracer.span_builder(name).with_kind(kind).with_attributes(attributes).start_with_context(tracer, parent);
        Self(Some(parent.with_span(span)))
    }

    /// Runs `future` with this span current: the spans made and headers written
    /// within continue it. (A plain function, not an `async` one: the future is
    /// moved once, into the one returned, not again on its first poll.)
    pub fn run<F: Future>(&self, future: F) -> impl Future<Output = F::Output> + use<F> {
        match &self.0 {
            Some(context) => Either::Left(future.with_context(context.clone())),
            None => Either::Right(future),
        }
    }

    /// Calls `f` with this span current.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _current = self.0.clone().map(Context::attach);
        f()
    }

    /// Writes this span's context into `headers`: a `traceparent` (and
    /// `tracestate`). Creates the headers only then, so that nothing is added to a
    /// message while tracing is off.
    pub fn inject(&self, headers: &mut Option<HeaderMap>) {
        if let Some(context) = &self.0 {
            inject_context(context, headers);
        }
    }

    /// Marks this span failed with `kind` (an error code, `timeout`, `conflict`...):
    /// its `error.type` attribute, and an error status.
    pub fn record_error(&self, kind: &dyn fmt::Display) {
        if let Some(context) = &self.0 {
            mark_failed(&context.span(), kind);
        }
    }

    /// Links this span to the trace of `other`, if it has one: for work done for
    /// several requests at once (one append of several creates).
    pub fn link(&self, other: &TraceContext) {
        if let (Some(context), Some(other)) = (&self.0, &other.0) {
            let other = other.span().span_context().clone();
            if other.is_valid() {
                context.span().add_link(other, Vec::new());
            }
        }
    }
}

impl Drop for OtelSpan {
    fn drop(&mut self) {
        if let Some(context) = &self.0 {
            context.span().end();
        }
    }
}

/// The trace context current where it was taken ([`current`]), to continue its
/// trace on another task.
#[derive(Debug, Clone, Default)]
pub struct TraceContext(Option<Context>);

impl TraceContext {
    /// Calls `f` with this context current.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _current = self.0.clone().map(Context::attach);
        f()
    }
}

/// The current trace context (nothing while tracing is off).
pub fn current() -> TraceContext {
    TraceContext(tracing_on().then(Context::current))
}

/// Writes the context of the current span into `headers`, if there is one: see
/// [`OtelSpan::inject`].
pub fn inject(headers: &mut Option<HeaderMap>) {
    if tracing_on() {
        inject_context(&Context::current(), headers);
    }
}

/// Marks the current span failed: see [`OtelSpan::record_error`].
pub fn record_error(kind: &dyn fmt::Display) {
    if tracing_on() {
        opentelemetry::trace::get_active_span(|span| mark_failed(&span, kind));
    }
}

fn mark_failed(span: &SpanRef<'_>, kind: &dyn fmt::Display) {
    let kind = kind.to_string();
    span.set_attribute(KeyValue::new("error.type", kind.clone()));
    span.set_status(Status::error(kind));
}

/// Writes `context`'s span into `headers` as W3C Trace Context, the `traceparent`
/// byte for byte as the SDK's [`TraceContextPropagator`] writes it (a test holds
/// them to it) and the `tracestate` unless empty: built from the ids' bytes, where
/// the propagator formats them through `fmt` at several times the cost, and under
/// header names made once (README, "Overhead").
///
/// [`TraceContextPropagator`]: opentelemetry_sdk::propagation::TraceContextPropagator
fn inject_context(context: &Context, headers: &mut Option<HeaderMap>) {
    const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
    const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
    let span = context.span();
    let ids = span.span_context();
    if !ids.is_valid() {
        return;
    }
    let headers = headers.get_or_insert_with(HeaderMap::new);
    headers.insert(TRACEPARENT, traceparent(ids));
    let state = ids.trace_state().header();
    if !state.is_empty() {
        headers.insert(TRACESTATE, state);
    }
}

/// `00-<trace id>-<span id>-<flags>`: version 00, and of the flags only `sampled`.
fn traceparent(ids: &SpanContext) -> String {
    let flags = (ids.trace_flags() & TraceFlags::SAMPLED).to_u8();
    let mut value = String::with_capacity(55);
    for part in [
        "00-",
        Hex::<32>::of(ids.trace_id().to_bytes()).as_str(),
        "-",
        Hex::<16>::of(ids.span_id().to_bytes()).as_str(),
        "-",
        Hex::<2>::of([flags]).as_str(),
    ] {
        value.push_str(part);
    }
    value
}

/// The remote span context in `headers`: their `traceparent` (W3C Trace Context)
/// and `tracestate`, names in any case, values no longer than [`MAX_HEADER_LEN`].
/// `None` when there is no valid `traceparent`. Read from the bytes, where the
/// SDK's [`TraceContextPropagator`] splits and parses through `str` at several
/// times the cost (README, "Overhead"); a test holds the two to the same
/// contexts, this one the stricter (lower-case hex of exactly the W3C lengths).
///
/// [`TraceContextPropagator`]: opentelemetry_sdk::propagation::TraceContextPropagator
fn extract(headers: &HeaderMap) -> Option<SpanContext> {
    let (trace_id, span_id, flags) = parse_traceparent(header(headers, "traceparent")?.trim().as_bytes())?;
    let state = header(headers, "tracestate").and_then(|state| state.parse().ok()).unwrap_or_default();
    let ids = SpanContext::new(trace_id, span_id, flags, true, state);
    ids.is_valid().then_some(ids)
}

/// The value of header `name` (in any case), unless longer than [`MAX_HEADER_LEN`].
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let (_, values) = headers.iter().find(|(key, _)| AsRef::<str>::as_ref(key).eq_ignore_ascii_case(name))?;
    let value = values.first()?.as_str();
    (value.len() <= MAX_HEADER_LEN).then_some(value)
}

/// `<version>-<trace id>-<span id>-<flags>` in lower-case hex, 2, 32, 16 and 2
/// digits: version 00 exactly so, a later one (up to fe) perhaps followed by
/// `-` and fields of its own, which are ignored. Of the flags, only `sampled`.
fn parse_traceparent(value: &[u8]) -> Option<(TraceId, SpanId, TraceFlags)> {
    let (fixed, rest) = value.split_at_checked(55)?;
    let [version] = lower_hex::<1>(&fixed[..2])?;
    let extended = match rest.first() {
        None => false,
        Some(b'-') => true,
        Some(_) => return None,
    };
    if version == 0xff || (version == 0 && extended) || [fixed[2], fixed[35], fixed[52]] != [b'-'; 3] {
        return None;
    }
    let trace_id = TraceId::from_bytes(lower_hex(&fixed[3..35])?);
    let span_id = SpanId::from_bytes(lower_hex(&fixed[36..52])?);
    let [flags] = lower_hex::<1>(&fixed[53..55])?;
    Some((trace_id, span_id, TraceFlags::new(flags) & TraceFlags::SAMPLED))
}

/// `2 N` lower-case hex digits as `N` bytes.
fn lower_hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if !digits.iter().all(|digit| matches!(digit, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut bytes = [0; N];
    hex::decode_to_slice(digits, &mut bytes).ok()?;
    Some(bytes)
}

/// A server span for a request to `subject`, served by `queue_group`: the span a
/// [`crate::service::Service`] serves each request in. It continues the trace in
/// `headers`, if they carry a valid `traceparent` (module documentation); else it
/// is a root.
pub fn server_span(subject: &str, queue_group: &'static str, headers: Option<&HeaderMap>) -> OtelSpan {
    let Some(tracer) = TRACER.get() else {
        return OtelSpan::default();
    };
    let parent =
        headers.and_then(extract).map_or_else(Context::new, |remote| Context::new().with_remote_span_context(remote));
    let attributes = messaging(subject, [KeyValue::new("messaging.consumer.group.name", queue_group)]);
    OtelSpan::start(tracer, name("process", subject), SpanKind::Server, &parent, attributes)
}

/// A client span for a request sent to `subject`, in the current span.
pub fn client_span(subject: &str) -> OtelSpan {
    let Some(tracer) = TRACER.get() else {
        return OtelSpan::default();
    };
    OtelSpan::start(tracer, name("send", subject), SpanKind::Client, &Context::current(), messaging(subject, []))
}

/// A span for a JetStream operation (`publish`, `get`, `list`...) on `stream`,
/// about `subject`, in the current span.
pub fn jetstream_span(operation: &'static str, stream: &str, subject: &str) -> OtelSpan {
    let Some(tracer) = TRACER.get() else {
        return OtelSpan::default();
    };
    let kind = if operation == "publish" { SpanKind::Producer } else { SpanKind::Client };
    let attributes = messaging(
        subject,
        [
            KeyValue::new("messaging.operation.name", operation),
            KeyValue::new("messaging.jetstream.stream", stream.to_owned()),
        ],
    );
    OtelSpan::start(tracer, name(operation, stream), kind, &Context::current(), attributes)
}

/// A span's name, `<operation> <destination>`, allocated once at its size.
fn name(operation: &str, destination: &str) -> String {
    [operation, " ", destination].concat()
}

/// The OpenTelemetry messaging attributes of a span about `subject`, and `more`:
/// only these, since every attribute of every span costs the exporter an
/// allocation or two and its bytes (README, "Overhead"). The operation is in the
/// span's name and kind.
fn messaging<const N: usize>(subject: &str, more: [KeyValue; N]) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(2 + N);
    attributes.push(KeyValue::new("messaging.system", "nats"));
    attributes.push(KeyValue::new("messaging.destination.name", subject.to_owned()));
    attributes.extend(more);
    attributes
}

#[cfg(test)]
mod tests {
    use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
    use opentelemetry_sdk::propagation::TraceContextPropagator;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, *value);
        }
        headers
    }

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// The SDK's reading of trace context headers, to hold [`extract`] to.
    struct Sdk<'a>(&'a HeaderMap);

    impl Extractor for Sdk<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            header(self.0, key)
        }

        fn keys(&self) -> Vec<&str> {
            self.0.iter().map(|(name, _)| name.as_ref()).collect()
        }
    }

    fn sdk_extract(headers: &HeaderMap) -> Option<SpanContext> {
        let context = TraceContextPropagator::new().extract(&Sdk(headers));
        let ids = context.span().span_context().clone();
        ids.is_valid().then_some(ids)
    }

    #[test]
    fn trace_context_names_match_in_any_case() {
        for name in ["traceparent", "Traceparent", "TRACEPARENT"] {
            let ids = extract(&headers(&[(name, PARENT)])).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(ids.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_eq!(ids.span_id().to_string(), "00f067aa0ba902b7");
            assert!(ids.is_sampled() && ids.is_remote());
        }
    }

    #[test]
    fn a_malformed_or_huge_traceparent_is_ignored() {
        let huge = format!("{PARENT}{}", "0".repeat(MAX_HEADER_LEN));
        for value in [
            "",
            "garbage",
            "ff-x-y-z",
            &huge,
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01extra",
            // Taken by the SDK's propagator, which parses numbers rather than W3C's digits.
            "0-1-1-1",
            "+0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(extract(&headers(&[("traceparent", value)])), None, "{value:.60}");
        }
        // A later version's own fields are ignored.
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes";
        assert!(extract(&headers(&[("traceparent", later)])).is_some());
    }

    /// Random ids and flags, with trace state `state`.
    fn random_ids(state: &str) -> SpanContext {
        SpanContext::new(
            TraceId::from_bytes(fastrand::u128(1..).to_be_bytes()),
            SpanId::from_bytes(fastrand::u64(1..).to_be_bytes()),
            TraceFlags::new(fastrand::u8(..)),
            false,
            state.parse().unwrap(),
        )
    }

    #[test]
    fn the_trace_context_read_is_the_propagators() {
        use std::collections::HashMap;

        let states = ["", "vendor=value", "a=1,b=2", "not a state"];
        let names = ["traceparent", "Traceparent", "TRACEPARENT"];
        let (mut taken, mut refused) = (0, 0);
        for round in 0..2_000 {
            let ids = random_ids(states[round % 3]);
            let mut written = HashMap::new();
            TraceContextPropagator::new().inject_context(&Context::new().with_remote_span_context(ids), &mut written);
            let state = if round % 4 == 3 { states[3] } else { &written["tracestate"] };
            let sent = headers(&[(names[round % 3], &written["traceparent"]), ("tracestate", state)]);
            assert_eq!(extract(&sent), sdk_extract(&sent), "{sent:?}");
            assert!(extract(&sent).is_some(), "{sent:?}");

            // One byte changed: where this reading takes the value, the SDK's takes it
            // the same (it takes some that W3C does not: see above).
            let mut traceparent = written["traceparent"].clone().into_bytes();
            let at = fastrand::usize(..traceparent.len());
            traceparent[at] = *fastrand::choice(b"0123456789abcdefABCDEFg-+ ").unwrap();
            let traceparent = String::from_utf8(traceparent).expect("ASCII, one ASCII byte changed");
            let sent = headers(&[("traceparent", &traceparent)]);
            match extract(&sent) {
                Some(ours) => {
                    assert_eq!(Some(ours), sdk_extract(&sent), "{traceparent}");
                    taken += 1;
                }
                None => refused += 1,
            }
        }
        assert!(taken > 500 && refused > 500, "changes taken {taken}, refused {refused}");
    }

    #[test]
    fn log_lines_end_with_the_current_spans_ids() {
        use std::sync::{Arc, Mutex};

        use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

        #[derive(Clone, Default)]
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().write(bytes)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        let lines = Lines::default();
        let writer = lines.clone();
        let logs = tracing_subscriber::fmt::layer()
            .event_format(TraceIds(tracing_subscriber::fmt::format()))
            .with_ansi(false)
            .with_writer(move || writer.clone());
        tracing::subscriber::with_default(tracing_subscriber::registry().with(logs), || {
            let ids = SpanContext::new(
                TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
                SpanId::from_hex("00f067aa0ba902b7").unwrap(),
                TraceFlags::SAMPLED,
                true,
                TraceState::default(),
            );
            let current = Context::new().with_remote_span_context(ids).attach();
            tracing::warn!(key = 1, "inside");
            tracing::warn!("two\nlines");
            drop(current);
            tracing::warn!("outside");
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let ids = "trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7";
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].ends_with(&format!("inside key=1 {ids}")), "{text}");
        // The ids end the event, after a newline within its message.
        assert!(lines[1].ends_with("two"), "{text}");
        assert_eq!(lines[2], format!("lines {ids}"), "{text}");
        assert!(lines[3].ends_with("outside"), "{text}");
    }

    #[test]
    fn the_trace_context_written_is_the_propagators() {
        use std::collections::HashMap;

        let states = ["", "vendor=value", "a=1,b=2"];
        for round in 0..1_000 {
            let context = Context::new().with_remote_span_context(random_ids(states[round % states.len()]));
            let mut ours = None;
            inject_context(&context, &mut ours);
            let ours = ours.unwrap();
            let mut theirs = HashMap::new();
            TraceContextPropagator::new().inject_context(&context, &mut theirs);
            assert_eq!(
                ours.get("traceparent").map(async_nats::HeaderValue::as_str),
                Some(theirs["traceparent"].as_str())
            );
            let state = Some(theirs["tracestate"].as_str()).filter(|state| !state.is_empty());
            assert_eq!(ours.get("tracestate").map(async_nats::HeaderValue::as_str), state);
        }
    }

    #[test]
    fn nothing_is_injected_without_a_trace() {
        let mut headers = None;
        inject(&mut headers);
        assert!(headers.is_none());
    }

    /// Records the scheduling policy of the thread each export runs on.
    #[cfg(target_os = "linux")]
    #[derive(Debug, Clone, Default)]
    struct PolicyOfExports(std::sync::Arc<std::sync::Mutex<Vec<thread_priority::ThreadSchedulePolicy>>>);

    #[cfg(target_os = "linux")]
    impl SpanExporter for PolicyOfExports {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            let policy = thread_priority::thread_schedule_policy().expect("the export thread's policy");
            self.0.lock().expect("not poisoned").push(policy);
            Ok(())
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn spans_are_exported_at_idle_priority_and_requests_keep_theirs() {
        use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy, thread_schedule_policy};

        let exports = PolicyOfExports::default();
        let processor = BatchSpanProcessor::builder(IdleExport(exports.clone())).build();
        let provider = SdkTracerProvider::builder().with_span_processor(processor).build();
        let before = thread_schedule_policy().expect("this thread's policy");
        for _ in 0..2 {
            opentelemetry::trace::Span::end(&mut provider.tracer(SCOPE).start("a request"));
            provider.force_flush().expect("flushed");
        }
        assert_eq!(
            *exports.0.lock().expect("not poisoned"),
            [ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle); 2]
        );
        assert_eq!(thread_schedule_policy().expect("this thread's policy"), before);
        assert_ne!(before, ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle));
        provider.shutdown().expect("shut down");
    }
}
