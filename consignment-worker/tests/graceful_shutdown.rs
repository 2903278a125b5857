//! The consignment-worker binary, stopped by a real SIGTERM.
#![cfg(unix)]

use std::{future::Future, process::ExitStatus, process::Stdio, time::Duration};

use futures::StreamExt as _;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use shared::{
    client::{RequestError, request},
    model::CreatedConsignment,
    subjects::{consignment, vessel},
};
use testkit::Nats;
use tokio::{
    io::{AsyncBufReadExt as _, BufReader, Lines},
    process::{Child, ChildStderr, Command},
};

const SEED: &str = include_str!("../../consignment.json");
const IN_FLIGHT: usize = 20;
/// A guard against hanging forever if the worker misbehaves; never a synchronisation point.
const GUARD: Duration = Duration::from_secs(60);

/// Waits for `step`, failing the test with its name if it takes longer than [`GUARD`].
async fn within<T>(step: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, future).await.unwrap_or_else(|_| panic!("{step}: still waiting after {GUARD:?}"))
}

/// The worker binary, run as a child process whose log the test reads.
struct Worker {
    child: Child,
    log: Lines<BufReader<ChildStderr>>,
}

impl Worker {
    /// Starts the worker with SIGTERM blocked in the signal mask it inherits if
    /// `sigterm_blocked` (as some supervisors and CI runners start their children)
    /// and unblocked otherwise, whatever this test process was given; waits until it serves.
    async fn start(nats: &Nats, sigterm_blocked: bool) -> Self {
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

        let mut child = spawned.expect("spawn consignment-worker");
        let log = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut worker = Self { child, log };
        within("worker ready", worker.wait_for_log("service ready")).await;
        worker
    }

    /// The next line of the worker's log, echoed (shown if the test fails); `None` once it exits.
    async fn next_log_line(&mut self) -> Option<String> {
        let line = self.log.next_line().await.expect("read worker log")?;
        eprintln!("worker: {line}");
        Some(line)
    }

    /// Reads the worker's log until a line contains `needle`.
    async fn wait_for_log(&mut self, needle: &str) {
        while let Some(line) = self.next_log_line().await {
            if line.contains(needle) {
                return;
            }
        }
        panic!("worker exited before logging {needle:?}");
    }

    async fn terminate(&mut self) {
        let pid = self.child.id().expect("worker still running").to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().await.unwrap().success());
        within("worker logs the shutdown", self.wait_for_log("shutting down")).await;
    }

    /// Waits for the worker to exit, echoing the rest of its log.
    async fn exit_status(mut self) -> ExitStatus {
        within("worker exits", async {
            while self.next_log_line().await.is_some() {}
            self.child.wait().await.expect("wait for worker")
        })
        .await
    }
}

#[tokio::test]
async fn sigterm_with_requests_in_flight_loses_none() {
    let nats = Nats::start().await;
    let client = async_nats::connect(nats.url()).await.unwrap();

    // This test stands in for the vessel service, holding every lookup until told otherwise,
    // so that the creates are provably in flight when the signal arrives.
    let mut lookups = client.queue_subscribe(vessel::FIND_AVAILABLE, vessel::QUEUE_GROUP.into()).await.unwrap();
    client.flush().await.unwrap();
    let mut worker = Worker::start(&nats, false).await;

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

    worker.terminate().await;

    let vessel = r#"{"vessel":{"id":"vessel001","capacity":500,"max_weight":200000,"name":"Boaty McBoatface","available":true,"owner_id":""}}"#;
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
    let mut worker = Worker::start(&nats, true).await;

    worker.terminate().await;

    let status = worker.exit_status().await;
    assert!(status.success(), "worker exits 0 after SIGTERM, got {status}");
}
