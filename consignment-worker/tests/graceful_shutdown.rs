//! The consignment-worker binary, stopped by a real SIGTERM.
#![cfg(unix)]

use std::{future::Future, process::Stdio};

use futures::StreamExt as _;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use shared::{
    client::{RequestError, request},
    model::CreatedConsignment,
    subjects::{consignment, vessel},
};
use testkit::{GUARD, Nats, Process};
use tokio::process::Command;

use testkit::SEED_CONSIGNMENT as SEED;
const IN_FLIGHT: usize = 20;
/// Waits for `step`, failing the test with its name if it takes longer than [`GUARD`].
async fn within<T>(step: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, future).await.unwrap_or_else(|_| panic!("{step}: still waiting after {GUARD:?}"))
}

/// Starts the worker binary with SIGTERM blocked in the signal mask it inherits if
/// `sigterm_blocked` (as some supervisors and CI runners start their children) and
/// unblocked otherwise, whatever this test process was given; waits until it serves.
async fn start_worker(nats: &Nats, sigterm_blocked: bool) -> Process {
    let mut command = Command::new(env!("CARGO_BIN_EXE_consignment-worker"));
    command
        .env("NATS_URL", nats.url())
        .env("RUST_LOG", "info")
        // The tests hold vessel lookups on purpose; a slow machine must not turn them into timeouts.
        .env("VESSEL_TIMEOUT_MS", GUARD.as_millis().to_string())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // The child inherits the mask of the thread that spawns it: this one.
    let mut sigterm = SigSet::empty();
    sigterm.add(Signal::SIGTERM);
    let how = if sigterm_blocked { SigmaskHow::SIG_BLOCK } else { SigmaskHow::SIG_UNBLOCK };
    let mask = sigterm.thread_swap_mask(how).expect("set this thread's signal mask");
    let spawned = command.spawn();
    mask.thread_set_mask().expect("restore this thread's signal mask");
    Process::adopt("worker", spawned.expect("spawn consignment-worker"), "service ready").await
}

/// Sends SIGTERM and waits until the worker logs that it is shutting down.
async fn terminate(worker: &mut Process) {
    worker.send_sigterm().await;
    worker.wait_for_log("shutting down").await;
}

#[tokio::test]
async fn sigterm_with_requests_in_flight_loses_none() {
    let nats = Nats::start().await;
    let client = async_nats::connect(nats.url()).await.unwrap();

    // This test stands in for the vessel service, holding every lookup until told otherwise,
    // so that the creates are provably in flight when the signal arrives.
    let mut lookups = client.queue_subscribe(vessel::FIND_AVAILABLE, vessel::QUEUE_GROUP.into()).await.unwrap();
    shared::nats::round_trip(&client).await.unwrap();
    let mut worker = start_worker(&nats, false).await;

    let creates: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                request::<CreatedConsignment>(&client, consignment::CREATE, SEED.into(), GUARD).await
            })
        })
        .collect();
    let held: Vec<_> = within("every create asks for a vessel", lookups.by_ref().take(IN_FLIGHT).collect()).await;
    assert_eq!(held.len(), IN_FLIGHT);

    terminate(&mut worker).await;

    // Room for every create: the worker checks the room itself before it appends.
    let vessel = r#"{"vessel":{"id":"vessel001","capacity":500,"max_weight":20000000,"name":"Boaty McBoatface","available":true,"owner_id":""}}"#;
    for lookup in held {
        client.publish(lookup.reply.unwrap(), vessel.into()).await.unwrap();
    }
    for create in creates {
        let reply = create.await.unwrap().expect("every in-flight create is answered");
        assert_eq!(reply.consignment.vessel_id, "vessel001");
    }

    let status = worker.exit_status().await;
    assert!(status.success(), "worker exits 0 after SIGTERM, got {status}");
    let after = request::<CreatedConsignment>(&client, consignment::CREATE, SEED.into(), GUARD).await;
    assert!(matches!(after, Err(RequestError::NoResponders { .. })), "stopped worker takes nothing: {after:?}");
}

/// A worker that inherits a blocked SIGTERM would otherwise never see it: the signal
/// stays pending and `docker stop`, `kill` or a CI runner waits forever.
#[tokio::test]
async fn sigterm_reaches_a_worker_started_with_it_blocked() {
    let nats = Nats::start().await;
    let mut worker = start_worker(&nats, true).await;

    terminate(&mut worker).await;

    let status = worker.exit_status().await;
    assert!(status.success(), "worker exits 0 after SIGTERM, got {status}");
}

/// 20 SIGTERMs in a steady stream of 400 `consignment.get` a second (an unknown id:
/// a 404 from the store, nothing changed): every request is answered by the stopping
/// worker or told at once that nobody listens; none waits out its timeout.
#[tokio::test]
async fn sigterm_in_a_steady_stream_loses_no_request() {
    let nats = Nats::start().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let unknown = r#"{"id":"no-such-consignment"}"#;
    let tally = testkit::load::sigterm_rounds(&client, 20, consignment::GET, unknown, async || {
        start_worker(&nats, false).await
    })
    .await;
    assert!(tally.lost.is_empty(), "{} requests lost: {:#?}", tally.lost.len(), tally.lost);
    assert_eq!(tally.slow_no_responders, 0, "\"no responders\" took longer than {:?}", testkit::load::PROMPT);
    assert!(tally.no_responders > 0, "the rounds reached past the worker's exit");
}
