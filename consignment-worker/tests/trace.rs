//! One create is one trace, from the client to the JetStream write, through both
//! workers, each span with the right parent; a request without trace context is a
//! root, and a malformed one is ignored. Spans go to the SDK's in-memory exporter.
//!
//! One test in this binary: the subscriber it installs is the process's.

use std::{sync::OnceLock, time::Duration};

use async_nats::HeaderMap;
use futures::StreamExt as _;
use opentelemetry::{
    KeyValue,
    trace::{SpanId, SpanKind, TraceId},
};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use shared::{
    model::CreatedConsignment,
    subjects::{consignment, vessel},
};
use testkit::Nats;
use tracing::Instrument as _;
use tracing_subscriber::{layer::SubscriberExt as _, util::SubscriberInitExt as _};

const TIMEOUT: Duration = Duration::from_secs(10);
use testkit::SEED_CONSIGNMENT as SEED;

/// The exporter of the spans every test of this binary records.
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<(InMemorySpanExporter, SdkTracerProvider)> = OnceLock::new();
    &EXPORTER
        .get_or_init(|| {
            let exporter = InMemorySpanExporter::default();
            let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
            tracing_subscriber::registry().with(shared::telemetry::layer(&provider)).init();
            (exporter, provider)
        })
        .0
}

/// The spans finished so far, once `done` holds of them (spans end after their reply
/// is sent, so a little after the requester has it).
async fn spans_once(done: impl Fn(&[SpanData]) -> bool) -> Vec<SpanData> {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let spans = exporter().get_finished_spans().unwrap();
        if done(&spans) {
            return spans;
        }
        assert!(tokio::time::Instant::now() < deadline, "spans never came: {:#?}", names(&spans));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn names(spans: &[SpanData]) -> Vec<String> {
    spans.iter().map(|span| format!("{} ({:?})", span.name, span.span_kind)).collect()
}

fn named<'a>(spans: &'a [SpanData], trace: TraceId, name: &str) -> Option<&'a SpanData> {
    spans.iter().find(|span| span.span_context.trace_id() == trace && span.name == name)
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes.iter().find(|KeyValue { key: k, .. }| k.as_str() == key).map(|kv| kv.value.to_string())
}

#[tokio::test]
async fn a_create_is_one_trace_a_request_without_context_a_root_and_a_malformed_one_ignored() {
    exporter();
    let nats = Nats::start().await;
    let vessels = testkit::serve(
        vessel_worker::start(&vessel_worker::Config::new(nats.url())).await.expect("start vessel-worker"),
    );
    let consignments = testkit::serve(
        consignment_worker::start(&consignment_worker::Config::new(nats.url()))
            .await
            .expect("start consignment-worker"),
    );
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut events = client.subscribe(consignment::CREATED_EVENTS).await.unwrap();
    shared::nats::round_trip(&client).await.unwrap();

    one_create_is_one_trace(&client, &mut events).await;
    a_missing_or_malformed_context_is_a_root(&client).await;

    consignments.stop().await.unwrap();
    vessels.stop().await.unwrap();
}

async fn one_create_is_one_trace(client: &async_nats::Client, events: &mut async_nats::Subscriber) {
    // One create, sent as a shippy client sends it, in a root span of the test's.
    exporter().reset();
    let root = tracing::info_span!("test");
    let created: CreatedConsignment = shared::client::request(client, consignment::CREATE, SEED.into(), TIMEOUT)
        .instrument(root.clone())
        .await
        .unwrap();
    assert!(created.created);
    let trace = shared::telemetry::trace_id(&root).expect("the test's span has a trace");
    drop(root);
    let trace = TraceId::from_hex(&trace).unwrap();
    let process = |subject: &str| format!("process {subject}");
    let send = |subject: &str| format!("send {subject}");
    let spans = spans_once(|spans| {
        [
            "test",
            &send(consignment::CREATE),
            &process(consignment::CREATE),
            &process(vessel::FIND_AVAILABLE),
            "publish shippy-events",
        ]
        .iter()
        .all(|name| named(spans, trace, name).is_some())
    })
    .await;
    let span =
        |name: &str| named(&spans, trace, name).unwrap_or_else(|| panic!("no span {name}: {:#?}", names(&spans)));
    let (root, create_sent, create_served) =
        (span("test"), span(&send(consignment::CREATE)), span(&process(consignment::CREATE)));
    let (find_sent, find_served, append) =
        (span(&send(vessel::FIND_AVAILABLE)), span(&process(vessel::FIND_AVAILABLE)), span("publish shippy-events"));

    assert_eq!(create_sent.span_kind, SpanKind::Client);
    assert_eq!(create_sent.parent_span_id, root.span_context.span_id());
    assert_eq!(create_served.span_kind, SpanKind::Server);
    assert_eq!(
        create_served.parent_span_id,
        create_sent.span_context.span_id(),
        "the server continues the client's span"
    );
    assert!(create_served.parent_span_is_remote);
    assert_eq!(attribute(create_served, "messaging.system").as_deref(), Some("nats"));
    assert_eq!(attribute(create_served, "messaging.destination.name").as_deref(), Some(consignment::CREATE));
    assert_eq!(attribute(create_served, "messaging.consumer.group.name").as_deref(), Some(consignment::QUEUE_GROUP));
    assert_eq!(attribute(create_served, "error.type"), None);

    // Five spans for the services' part, and no more: each one costs (README, "Overhead").
    let in_trace: Vec<&SpanData> = spans.iter().filter(|span| span.span_context.trace_id() == trace).collect();
    assert_eq!(in_trace.len(), 6, "the test's, the client's and the services' four: {:#?}", names(&spans));

    assert_eq!(find_sent.span_kind, SpanKind::Client);
    assert_eq!(find_sent.parent_span_id, create_served.span_context.span_id(), "sent while serving the create");
    assert_eq!(find_served.span_kind, SpanKind::Server);
    assert_eq!(find_served.parent_span_id, find_sent.span_context.span_id());
    assert_eq!(attribute(find_served, "messaging.consumer.group.name").as_deref(), Some(vessel::QUEUE_GROUP));

    assert_eq!(append.span_kind, SpanKind::Producer);
    assert_eq!(append.parent_span_id, create_served.span_context.span_id(), "the append is made for the create");
    assert_eq!(attribute(append, "messaging.destination.name").as_deref(), Some("consignment.created.vessel001"));

    // The event carries the append's trace context: a consumer links back to the create.
    let event = events.next().await.unwrap();
    let traceparent = event.headers.as_ref().and_then(|headers| headers.get("traceparent")).map(ToString::to_string);
    assert_eq!(
        traceparent,
        Some(format!("00-{trace}-{}-01", append.span_context.span_id())),
        "the event's headers: {:?}",
        event.headers
    );
    let tracestate = event.headers.as_ref().and_then(|headers| headers.get("tracestate"));
    assert!(tracestate.is_none(), "no empty tracestate is written: {:?}", event.headers);
}

async fn a_missing_or_malformed_context_is_a_root(client: &async_nats::Client) {
    let process = |subject: &str| format!("process {subject}");
    // A plain request (as `nats req` sends it): the server span is a root.
    exporter().reset();
    let plain = client.request(consignment::LIST, "{}".into()).await.unwrap();
    assert!(plain.headers.is_none(), "a list reply has no headers: {:?}", plain.headers);
    let served = |spans: &[SpanData]| -> Vec<SpanData> {
        spans.iter().filter(|span| span.name == process(consignment::LIST)).cloned().collect()
    };
    let spans = spans_once(|spans| served(spans).len() == 1).await;
    let root = &served(&spans)[0];
    assert_eq!(root.parent_span_id, SpanId::INVALID, "no traceparent: a root span");
    assert!(root.span_context.is_valid());

    // Malformed or huge trace context, in any case: ignored, a root, the same reply.
    let malformed = [
        ("traceparent", "garbage".to_owned()),
        ("Traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01".to_owned()),
        ("TRACEPARENT", format!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01{}", "0".repeat(60_000))),
        ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\u{7f}".to_owned()),
    ];
    for (name, value) in &malformed {
        exporter().reset();
        let mut headers = HeaderMap::new();
        headers.insert(*name, value.as_str());
        headers.insert("tracestate", "x".repeat(10_000).as_str());
        let reply = client.request_with_headers(consignment::LIST, headers, "{}".into()).await.unwrap();
        assert_eq!(reply.payload, plain.payload, "{name}: {value:.60}");
        assert!(reply.headers.is_none(), "{name}: no error headers: {:?}", reply.headers);
        let spans = spans_once(|spans| served(spans).len() == 1).await;
        assert_eq!(served(&spans)[0].parent_span_id, SpanId::INVALID, "{name}: {value:.60}");
    }

    // A valid one written as Go's propagator writes it: continued.
    exporter().reset();
    let mut headers = HeaderMap::new();
    headers.insert("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    let reply = client.request_with_headers(consignment::LIST, headers, "{}".into()).await.unwrap();
    assert_eq!(reply.payload, plain.payload);
    let spans = spans_once(|spans| served(spans).len() == 1).await;
    let continued = &served(&spans)[0];
    assert_eq!(continued.span_context.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(continued.parent_span_id.to_string(), "00f067aa0ba902b7");
}
