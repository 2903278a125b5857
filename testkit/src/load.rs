//! A steady, open-loop stream of requests to a worker, and SIGTERMs in the middle of
//! it: what the shutdown tests of both workers stand on (README, "Shutdown").

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_nats::{Client, RequestErrorKind};
use tokio::{sync::watch, task::JoinHandle};

use crate::{GUARD, Process};

/// One request every this often: 400 a second, on schedule whatever the replies do.
pub const PACE: Duration = Duration::from_micros(2_500);
/// How long each request may wait for its reply; none should.
pub const TIMEOUT: Duration = Duration::from_secs(3);
/// "No responders" must come at least this soon.
pub const PROMPT: Duration = Duration::from_secs(1);
/// Replies a round waits for before the signal, so that it falls in a steady stream.
pub const REPLIES_BEFORE_SIGNAL: usize = 40;
/// Requests a round still sends once the worker has exited.
pub const SENT_AFTER_EXIT: usize = 40;

/// How one request ended.
#[derive(Debug)]
pub enum Outcome {
    /// Any reply, an error reply included: the request was served.
    Replied,
    /// NATS said nobody listens, after this long.
    NoResponders(Duration),
    /// Timed out, or failed otherwise: lost.
    Failed(String),
}

/// Requests to one subject sent on a fixed schedule ([`PACE`], open loop) until
/// stopped, each on a task of its own.
#[derive(Debug)]
pub struct Load {
    sent: watch::Receiver<usize>,
    replied: watch::Receiver<usize>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Vec<JoinHandle<Outcome>>>,
}

impl Load {
    /// Starts sending `payload` to `subject` through `client`.
    pub fn start(client: &Client, subject: &'static str, payload: &'static str) -> Self {
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
                    let request = async_nats::Request::new().payload(payload.into()).timeout(Some(TIMEOUT));
                    match client.send_request(subject, request).await {
                        Ok(_) => {
                            replied.send_modify(|n| *n += 1);
                            Outcome::Replied
                        }
                        Err(error) if error.kind() == RequestErrorKind::NoResponders => {
                            Outcome::NoResponders(started.elapsed())
                        }
                        Err(error) => Outcome::Failed(format!("{error} after {:?}", started.elapsed())),
                    }
                }));
                sent_tx.send_replace(requests.len());
            }
            requests
        });
        Self { sent, replied, stop, task }
    }

    /// Waits until `at_least` requests have been answered.
    ///
    /// # Panics
    /// If that takes longer than [`GUARD`].
    pub async fn replies(&mut self, at_least: usize) {
        let replied = self.replied.wait_for(|&n| n >= at_least);
        tokio::time::timeout(GUARD, replied).await.expect("replies keep coming").expect("load running");
    }

    /// Sends `more` requests after those sent so far, then stops; returns how each ended.
    ///
    /// # Panics
    /// If sending them takes longer than [`GUARD`].
    pub async fn stop_after(mut self, more: usize) -> Vec<Outcome> {
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

/// What the rounds of [`sigterm_rounds`] saw, added up.
#[derive(Debug, Default)]
pub struct Tally {
    pub sent: usize,
    pub replied: usize,
    pub no_responders: usize,
    /// No responders, but later than [`PROMPT`].
    pub slow_no_responders: usize,
    /// Timed out or failed otherwise, each with its round.
    pub lost: Vec<String>,
    pub rounds_with_loss: usize,
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

/// `signals` times: starts a worker (`start`), sends `payload` to `subject` in a
/// steady stream until the worker has answered [`REPLIES_BEFORE_SIGNAL`], SIGTERMs
/// it in the middle of the stream, checks it exits 0, and sends
/// [`SENT_AFTER_EXIT`] more requests after its exit.
///
/// # Panics
/// If a worker does not exit 0, or a step takes longer than [`GUARD`].
pub async fn sigterm_rounds<F: AsyncFnMut() -> Process>(
    client: &Client,
    signals: usize,
    subject: &'static str,
    payload: &'static str,
    mut start: F,
) -> Tally {
    let mut tally = Tally::default();
    for round in 1..=signals {
        let worker = start().await;
        let mut load = Load::start(client, subject, payload);
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
