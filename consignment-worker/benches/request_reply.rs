//! Request-reply latency of the shippy endpoints, each as a ratio to raw NATS
//! request-reply measured in the same run against the same server.
//!
//! `cargo bench -p consignment-worker` (needs Docker, like the integration tests).
//!
//! - `raw_nats`: a bare subscriber echoing a vessel-sized reply; the floor.
//! - `vessel.find_available`: one hop through vessel-worker.
//! - `consignment.create`: two hops (consignment-worker asks vessel-worker), plus
//!   validation, storage and the `consignment.created` event.

use std::{
    collections::BTreeMap,
    hint::black_box,
    sync::Mutex,
    time::{Duration, Instant},
};

use bytes::Bytes;
use criterion::{Criterion, criterion_group};
use futures::StreamExt as _;
use shared::subjects::{consignment, vessel};
use testkit::Nats;

const ECHO: &str = "bench.echo";
const SPEC: &str = r#"{"capacity":3,"max_weight":55000}"#;
const SEED: &str = include_str!("../../consignment.json");

/// Time and iterations measured per benchmark, to report ratios once criterion is done.
static MEASURED: Mutex<BTreeMap<&'static str, (Duration, u64)>> = Mutex::new(BTreeMap::new());

fn request_reply(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let (nats, client, workers) = runtime.block_on(async {
        let nats = Nats::start().await;
        let client = async_nats::connect(nats.url()).await.expect("connect");
        let vessels = vessel_worker::start(&vessel_worker::Config::new(nats.url())).await.expect("vessel-worker");
        let consignments = consignment_worker::start(&consignment_worker::Config::new(nats.url()))
            .await
            .expect("consignment-worker");
        let workers = [testkit::serve(vessels), testkit::serve(consignments)];
        let mut echo = client.subscribe(ECHO).await.expect("subscribe");
        let responder = client.clone();
        tokio::spawn(async move {
            let reply = Bytes::from_static(br#"{"vessel":{"id":"vessel001","capacity":500,"max_weight":200000,"name":"Boaty McBoatface","available":true,"owner_id":""}}"#);
            while let Some(request) = echo.next().await {
                responder.publish(request.reply.expect("reply subject"), reply.clone()).await.expect("reply");
            }
        });
        client.flush().await.expect("flush");
        (nats, client, workers)
    });

    let mut group = c.benchmark_group("request_reply");
    for (name, subject, payload) in [
        ("raw_nats", ECHO, SPEC),
        ("vessel.find_available", vessel::FIND_AVAILABLE, SPEC),
        ("consignment.create", consignment::CREATE, SEED),
    ] {
        let payload = Bytes::from_static(payload.as_bytes());
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let (client, payload) = (client.clone(), payload.clone());
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let reply = client.request(subject, payload.clone()).await.expect("reply");
                        assert!(reply.headers.is_none(), "{name} answered with an error");
                        black_box(reply);
                    }
                    let elapsed = start.elapsed();
                    let mut measured = MEASURED.lock().unwrap();
                    let total = measured.entry(name).or_default();
                    *total = (total.0 + elapsed, total.1 + iters);
                    elapsed
                }
            });
        });
    }
    group.finish();

    runtime.block_on(async {
        for worker in workers {
            worker.stop().await.expect("worker stops cleanly");
        }
        // The container is removed on drop, which needs the runtime.
        drop(nats);
    });
    report();
}

#[expect(clippy::cast_precision_loss, reason = "iteration counts stay far below 2^52")]
fn report() {
    let measured = MEASURED.lock().unwrap();
    let mean = |name| measured.get(name).map(|(time, iters)| time.as_secs_f64() / *iters as f64);
    let Some(raw) = mean("raw_nats") else { return };
    println!("\nmean request-reply latency, as a ratio to raw NATS in this run:");
    for name in measured.keys() {
        let value = mean(name).expect("measured");
        println!("  {name:<24} {:>9.1} µs  {:>5.2}x raw", value * 1e6, value / raw);
    }
}

criterion_group!(benches, request_reply);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
