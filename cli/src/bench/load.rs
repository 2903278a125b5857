//! Driving load: a closed loop (N requests always in flight) or an open loop
//! (R requests a second on a fixed schedule), recording what came back.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use tokio::{sync::Semaphore, task::JoinSet, time::Instant};

use super::target::{Failure, Target};
use crate::client::Services;

/// The largest latency the histogram tells apart, in microseconds; longer ones count as this.
const HIGHEST_MICROS: u64 = 3_600_000_000;
/// The resolution of tokio's timer.
const TIMER_TICK: Duration = Duration::from_millis(1);
/// Open loop: requests in flight at most, so a stalled service cannot exhaust memory.
/// When they are all taken the schedule waits, and the wait counts in every latency.
pub const OPEN_LOOP_MAX_IN_FLIGHT: usize = 10_000;

/// How requests are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// This many requests in flight at all times: each client sends again as soon as answered.
    Closed { clients: u32 },
    /// This many requests a second, on schedule whatever the replies do.
    Open { rate: u32 },
}

/// When a scenario runs.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub warmup: Duration,
    pub duration: Duration,
}

/// What came back from the requests sent while measuring.
#[derive(Debug)]
pub struct Samples {
    /// Latency of the successful replies, in microseconds.
    pub latency: Histogram<u64>,
    /// Failed requests by kind.
    pub errors: BTreeMap<String, u64>,
}

impl Samples {
    fn new() -> Self {
        let latency = Histogram::new_with_bounds(1, HIGHEST_MICROS, 3).expect("valid histogram bounds");
        Self { latency, errors: BTreeMap::new() }
    }

    fn record(&mut self, result: Result<(), Failure>, latency: Duration) {
        match result {
            Ok(()) => {
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                self.latency.saturating_record(micros.max(1));
            }
            Err(error) => *self.errors.entry(error.kind()).or_default() += 1,
        }
    }

    fn merge(&mut self, other: Self) {
        self.latency.add(other.latency).expect("histograms share their bounds");
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
    }
}

/// Sends `target` under `load` for the warm-up and the measured window, then
/// returns the samples of the requests sent in the measured window.
///
/// It ends by itself: no request is sent after the window, and each one waits at
/// most the services' timeout for its reply.
pub(super) async fn drive(
    services: &Services,
    target: &Target,
    load: Load,
    window: Window,
    progress: &ProgressBar,
) -> Samples {
    let start = Instant::now();
    let measure_from = start + window.warmup;
    let end = measure_from + window.duration;
    let done = Arc::new(AtomicU64::new(0));
    let ticker = tokio::spawn(tick(progress.clone(), start, measure_from, Arc::clone(&done)));
    let samples = match load {
        Load::Closed { clients } => closed(services, target, clients, measure_from, end, &done).await,
        Load::Open { rate } => open(services, target, rate, start, measure_from, end, &done).await,
    };
    ticker.abort();
    samples
}

async fn closed(
    services: &Services,
    target: &Target,
    clients: u32,
    measure_from: Instant,
    end: Instant,
    done: &Arc<AtomicU64>,
) -> Samples {
    let mut tasks = JoinSet::new();
    for _ in 0..clients {
        let (services, target, done) = (services.clone(), target.for_client(), Arc::clone(done));
        tasks.spawn(async move {
            let mut samples = Samples::new();
            loop {
                let sent = Instant::now();
                if sent >= end {
                    return samples;
                }
                let result = target.call(&services).await;
                if sent >= measure_from {
                    samples.record(result, sent.elapsed());
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let mut samples = Samples::new();
    while let Some(client) = tasks.join_next().await {
        samples.merge(client.expect("bench client panicked"));
    }
    samples
}

async fn open(
    services: &Services,
    target: &Target,
    rate: u32,
    start: Instant,
    measure_from: Instant,
    end: Instant,
    done: &Arc<AtomicU64>,
) -> Samples {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let collector = tokio::spawn(async move {
        let mut samples = Samples::new();
        while let Some((result, latency)) = rx.recv().await {
            samples.record(result, latency);
        }
        samples
    });
    let in_flight = Arc::new(Semaphore::new(OPEN_LOOP_MAX_IN_FLIGHT));
    let interval = 1.0 / f64::from(rate);
    for n in 0_u32.. {
        // Each request's send time is fixed in advance and latency counts from it, so a
        // stall that delays sending shows in the figures instead of hiding (no
        // coordinated omission).
        let scheduled = start + Duration::from_secs_f64(f64::from(n) * interval);
        if scheduled >= end {
            break;
        }
        // Tokio's timer ticks every millisecond, so waking exactly at `scheduled` would
        // add up to a millisecond of lag to every figure: wake up to one tick early instead
        // (a deadline already past would still wait for the next tick, so none then).
        if scheduled > Instant::now() + TIMER_TICK {
            tokio::time::sleep_until(scheduled - TIMER_TICK).await;
        }
        let permit = Arc::clone(&in_flight).acquire_owned().await.expect("semaphore stays open");
        // Latency counts from the scheduled time when the request went out late (the
        // lag is part of what a user would wait), from its real send time when early.
        let origin = scheduled.min(Instant::now());
        let (services, target, done, tx) = (services.clone(), target.clone(), Arc::clone(done), tx.clone());
        tokio::spawn(async move {
            let result = target.call(&services).await;
            if scheduled >= measure_from {
                // The collector outlives every sender.
                let _ = tx.send((result, origin.elapsed()));
            }
            done.fetch_add(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    drop(tx);
    collector.await.expect("bench collector panicked")
}

/// Moves the progress bar along the clock and says how many replies came so far.
async fn tick(progress: ProgressBar, start: Instant, measure_from: Instant, done: Arc<AtomicU64>) {
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    loop {
        interval.tick().await;
        let now = Instant::now();
        let phase = if now < measure_from { "warm-up" } else { "measuring" };
        progress.set_position(u64::try_from(now.duration_since(start).as_millis()).unwrap_or(u64::MAX));
        progress.set_message(format!("{phase}, {} requests", done.load(Ordering::Relaxed)));
    }
}
