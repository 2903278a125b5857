//! Shutdown of the vessel-worker binary (the service runtime both workers share):
//!
//! * SIGTERM in the middle of a steady, open-loop stream of requests, many times
//!   over: a request the server delivered to the stopping worker is answered by it;
//!   one that arrives after its unsubscribe gets "no responders" at once, or goes to
//!   another instance. Nothing waits out its timeout.
//! * SIGTERM with the NATS server gone (stopped, or frozen as by SIGSTOP): the worker
//!   still exits 0, within its grace period.
#![cfg(unix)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_nats::Client;
use shared::{
    client::{RequestError, request},
    model::VesselReply,
    subjects::vessel,
};
use testkit::{GUARD, Nats, Process};
use tokio::{sync::watch, task::JoinHandle};

/// One request every this often: 400 a second, on schedule whatever the replies do.
const PACE: Duration = Duration::from_micros(2_500);
/// How long each request may wait for its reply; none should.
const TIMEOUT: Duration = Duration::from_secs(3);
/// "No responders" must come at least this soon.
const PROMPT: Duration = Duration::from_secs(1);
/// Replies a round waits for before the signal, so that it falls in a steady stream.
const REPLIES_BEFORE_SIGNAL: usize = 40;
/// Requests a round still sends once the worker has exited.
const SENT_AFTER_EXIT: usize = 40;
/// A cheap request whose answer never changes: no booking, no state.
const FIND: &str = r#"{"capacity":1,"max_weight":1}"#;
/// The shutdown grace period the unreachable-NATS tests give the worker.
const GRACE: Duration = Duration::from_secs(2);

async fn start_worker(nats: &Nats, name: &str, extra: &[(&str, &str)]) -> Process {
    let mut env = vec![("NATS_URL", nats.url()), ("RUST_LOG", "info")];
    env.extend_from_slice(extra);
    Process::start(name, env!("CARGO_BIN_EXE_vessel-worker"), &env, "service ready").await
}

/// How one request ended.
#[derive(Debug)]
enum Outcome {
    Replied,
    NoResponders(Duration),
    Failed(String),
}

/// Requests sent on a fixed schedule (open loop) until stopped, each on a task of its own.
struct Load {
    sent: watch::Receiver<usize>,
    replied: watch::Receiver<usize>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Vec<JoinHandle<Outcome>>>,
}

impl Load {
    fn start(client: &Client) -> Self {
        let (sent_tx, sent) = watch::channel(0);
        let (replied_tx, replied) = watch::channel(0);
        let replied_tx = Arc::new(replied_tx);
        let (stop, mut stopped) = watch::channel(false);
        let client = client.clone();
        let task = tokio::spawn(async move {
            let mut requests = Vec::new();
            let mut ticks = tokio::time::interval(PACE);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    _ = ticks.tick() => {}
                }
                let (client, replied) = (client.clone(), Arc::clone(&replied_tx));
                requests.push(tokio::spawn(async move {
                    let started = Instant::now();
                    match request::<VesselReply>(&client, vessel::FIND_AVAILABLE, FIND.into(), TIMEOUT).await {
                        Ok(_) => {
                            replied.send_modify(|n| *n += 1);
                            Outcome::Replied
                        }
                        Err(RequestError::NoResponders { .. }) => Outcome::NoResponders(started.elapsed()),
                        Err(error) => Outcome::Failed(format!("{error} after {:?}", started.elapsed())),
                    }
                }));
                sent_tx.send_replace(requests.len());
            }
            requests
        });
        Self { sent, replied, stop, task }
    }

    async fn replies(&mut self, at_least: usize) {
        let replied = self.replied.wait_for(|&n| n >= at_least);
        tokio::time::timeout(GUARD, replied).await.expect("replies keep coming").expect("load running");
    }

    /// Sends `more` requests after those sent so far, then stops; returns how each ended.
    async fn stop_after(mut self, more: usize) -> Vec<Outcome> {
        let target = *self.sent.borrow() + more;
        let sent = self.sent.wait_for(|&n| n >= target);
        tokio::time::timeout(GUARD, sent).await.expect("the load keeps sending").expect("load running");
        self.stop.send_replace(true);
        let mut outcomes = Vec::new();
        for request in self.task.await.expect("load task") {
            outcomes.push(request.await.expect("request task"));
        }
        outcomes
    }
}

/// What the rounds saw, added up.
#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    replied: usize,
    no_responders: usize,
    /// No responders, but later than [`PROMPT`].
    slow_no_responders: usize,
    /// Timed out or failed otherwise: lost.
    lost: Vec<String>,
    rounds_with_loss: usize,
}

impl Tally {
    fn add(&mut self, round: usize, outcomes: &[Outcome]) {
        let lost_before = self.lost.len();
        for outcome in outcomes {
            self.sent += 1;
            match outcome {
                Outcome::Replied => self.replied += 1,
                Outcome::NoResponders(after) => {
                    self.no_responders += 1;
                    if *after > PROMPT {
                        self.slow_no_responders += 1;
                    }
                }
                Outcome::Failed(error) => self.lost.push(format!("round {round}: {error}")),
            }
        }
        let lost = self.lost.len() - lost_before;
        self.rounds_with_loss += usize::from(lost > 0);
        eprintln!("round {round}: {} requests, {lost} lost", outcomes.len());
    }
}

/// `signals` times: starts a worker, waits until requests flow to it, SIGTERMs it in
/// the middle of the stream, checks it exits 0, lets the stream run on a little.
async fn sigterm_rounds(nats: &Nats, client: &Client, signals: usize) -> Tally {
    let mut tally = Tally::default();
    for round in 1..=signals {
        let worker = start_worker(nats, "stopping-worker", &[]).await;
        let mut load = Load::start(client);
        load.replies(REPLIES_BEFORE_SIGNAL).await;
        assert!(worker.terminate().await, "round {round}: the worker exits 0 on SIGTERM");
        let outcomes = load.stop_after(SENT_AFTER_EXIT).await;
        tally.add(round, &outcomes);
    }
    eprintln!(
        "{signals} SIGTERMs: {} requests, {} replied, {} no responders ({} slow), {} lost in {} rounds",
        tally.sent,
        tally.replied,
        tally.no_responders,
        tally.slow_no_responders,
        tally.lost.len(),
        tally.rounds_with_loss
    );
    tally
}

/// 25 SIGTERMs in a steady stream of 400 requests a second: each request is answered
/// or told at once that nobody listens; none is lost between the two.
#[tokio::test]
async fn sigterm_in_a_steady_stream_loses_no_request() {
    let nats = Nats::start().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let tally = sigterm_rounds(&nats, &client, 25).await;
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
    let tally = sigterm_rounds(&nats, &client, 10).await;
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
