//! Periodic work beside a service, such as settling what a crashed instance left.

use std::{future::Future, time::Duration};

use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Instrument as _;

/// Runs `work` every `interval` (the first time after one interval) on a task of
/// its own, until the returned guard is dropped. Keep the guard in the handler it
/// belongs to, so that the work stops with the service.
pub fn every<F, Fut>(name: &'static str, interval: Duration, mut work: F) -> DropGuard
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stopped.cancelled() => break,
                _ = ticks.tick() => {}
            }
            tokio::select! {
                () = stopped.cancelled() => break,
                () = work().instrument(tracing::info_span!("background", otel.name = name)) => {}
            }
        }
        tracing::debug!(task = name, "background task stopped");
    });
    stop.drop_guard()
}
