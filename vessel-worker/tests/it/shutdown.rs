//! Shutdown of the vessel-worker binary (the service runtime both workers share):
//!
//! * SIGTERM in the middle of a steady, open-loop stream of requests, many times
//!   over: a request the server delivered to the stopping worker is answered by it;
//!   one that arrives after its unsubscribe gets "no responders" at once, or goes to
//!   another instance. Nothing waits out its timeout.
//! * SIGTERM with the NATS server gone (stopped, or frozen as by SIGSTOP): the worker
//!   still exits 0, within its grace period.
#![cfg(unix)]

use std::time::{Duration, Instant};

use shared::{client::request, model::VesselReply, subjects::vessel};
use testkit::{
    Nats, Process,
    load::{PROMPT, sigterm_rounds},
};

/// A cheap request whose answer never changes: no booking, no state.
const FIND: &str = r#"{"capacity":1,"max_weight":1}"#;
/// How long a request may wait for its reply.
const TIMEOUT: Duration = Duration::from_secs(3);
/// The shutdown grace period the unreachable-NATS tests give the worker.
const GRACE: Duration = Duration::from_secs(2);

async fn start_worker(nats: &Nats, name: &str, extra: &[(&str, &str)]) -> Process {
    let mut env = vec![("NATS_URL", nats.url()), ("RUST_LOG", "info")];
    env.extend_from_slice(extra);
    Process::start(name, env!("CARGO_BIN_EXE_vessel-worker"), &env, "service ready").await
}

/// 25 SIGTERMs in a steady stream of 400 requests a second: each request is answered
/// or told at once that nobody listens; none is lost between the two.
#[tokio::test]
async fn sigterm_in_a_steady_stream_loses_no_request() {
    let nats = Nats::start().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let tally = sigterm_rounds(&client, 25, vessel::FIND_AVAILABLE, FIND, async || {
        start_worker(&nats, "stopping-worker", &[]).await
    })
    .await;
    assert!(tally.lost.is_empty(), "{} requests lost: {:#?}", tally.lost.len(), tally.lost);
    assert_eq!(tally.slow_no_responders, 0, "\"no responders\" took longer than {PROMPT:?}");
    assert!(tally.no_responders > 0, "the rounds reached past the worker's exit");
}

/// With a second instance in the queue group, every request gets a reply, whichever
/// instance was stopping when it arrived.
#[tokio::test]
async fn sigterm_beside_a_second_instance_leaves_every_request_answered() {
    let nats = Nats::start().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let other = start_worker(&nats, "other-worker", &[]).await;
    let tally = sigterm_rounds(&client, 10, vessel::FIND_AVAILABLE, FIND, async || {
        start_worker(&nats, "stopping-worker", &[]).await
    })
    .await;
    assert!(tally.lost.is_empty(), "{} requests lost: {:#?}", tally.lost.len(), tally.lost);
    assert_eq!(tally.no_responders, 0, "a request found no responder while another instance ran");
    assert_eq!(tally.replied, tally.sent);
    assert!(other.terminate().await, "the other worker exits 0");
}

/// Sends SIGTERM to a worker whose server is `gone` and checks it exits 0 within its
/// grace period (and a second for the process to end).
async fn sigterm_without_nats(gone: impl AsyncFnOnce(&Nats), back: impl AsyncFnOnce(&Nats)) {
    let nats = Nats::start().await;
    let grace = GRACE.as_millis().to_string();
    let mut worker = start_worker(&nats, "worker", &[("SHUTDOWN_GRACE_MS", &grace)]).await;
    // The worker serves before its server goes.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let _: VesselReply = request(&client, vessel::FIND_AVAILABLE, FIND.into(), TIMEOUT).await.unwrap();
    gone(&nats).await;
    let signalled = Instant::now();
    worker.send_sigterm().await;
    worker.wait_for_log("shutting down").await;
    let status = worker.exit_status().await;
    let took = signalled.elapsed();
    // A frozen server is thawed for its container to be removed.
    back(&nats).await;
    assert!(status.success(), "worker exits 0 after SIGTERM without NATS, got {status}");
    assert!(took < GRACE + Duration::from_secs(1), "took {took:?}, grace {GRACE:?}");
}

#[tokio::test]
async fn sigterm_with_nats_stopped_exits_within_the_grace_period() {
    sigterm_without_nats(async |nats: &Nats| nats.stop().await, async |_: &Nats| {}).await;
}

#[tokio::test]
async fn sigterm_with_nats_frozen_exits_within_the_grace_period() {
    sigterm_without_nats(async |nats: &Nats| nats.pause().await, async |nats: &Nats| nats.unpause().await).await;
}
