//! How stale a read through another instance can be: while the `create` scenario
//! runs, a probe sends a create of its own every [`PROBE_EVERY`] and a follower of
//! the event stream, of the kind each worker keeps its projections with (an ordered
//! push consumer, [`shared::store::follow`]), notes when each probe's event reaches
//! it. The lag of one probe is from its reply to its event at the follower (zero
//! when the event came first): how long after a create's reply a `consignment.list`,
//! `find_available` or `vessel.list` answered by an instance other than the
//! writer's may still not count it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt as _;
use hdrhistogram::Histogram;
use serde::Serialize;
use shared::{
    model::{ConsignmentsCreated, CreatedConsignment, NewConsignment},
    store::EVENTS_STREAM,
    subjects::consignment,
};
use tokio::{sync::Notify, time::Instant};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::report::Latency;
use crate::client::Services;

/// How often the probe creates.
pub(super) const PROBE_EVERY: Duration = Duration::from_millis(20);
/// How long the probe waits, once stopped, for the follower to see its last creates.
const SETTLE: Duration = Duration::from_secs(5);

/// When each probe was answered and when its event reached the follower, by consignment id.
#[derive(Debug, Default)]
struct Seen {
    replied: HashMap<String, Instant>,
    followed: HashMap<String, Instant>,
}

/// A probe running beside the `create` scenario.
pub(super) struct Probe {
    seen: Arc<Mutex<Seen>>,
    /// Rings when the follower has taken in an event.
    followed: Arc<Notify>,
    stop: CancellationToken,
    _follower: DropGuard,
}

/// The lag of the probes, as the report shows it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Lag {
    /// Probes answered and seen by the follower.
    pub probes: u64,
    /// Probes answered whose event the follower had not seen [`SETTLE`] after the probe stopped.
    pub unseen: u64,
    /// From a probe's reply to its event at the follower, in microseconds.
    pub after_reply_us: Latency,
}

impl Probe {
    /// Starts following the event stream from its end, then creating `new` every [`PROBE_EVERY`].
    pub(super) async fn start(services: &Services, new: &NewConsignment) -> anyhow::Result<Self> {
        let js = async_nats::jetstream::new(services.nats().clone());
        let stream = js.get_stream(EVENTS_STREAM).await?;
        let from = shared::store::last_sequence(&stream).await? + 1;
        let mut events = Box::pin(shared::store::follow(services.nats(), &stream, from).await?);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let followed = Arc::new(Notify::new());
        let following = CancellationToken::new();
        tokio::spawn({
            let (seen, followed, stopped) = (Arc::clone(&seen), Arc::clone(&followed), following.clone());
            async move {
                while let Some(Ok(event)) = stopped.run_until_cancelled(events.next()).await.flatten() {
                    let at = Instant::now();
                    let Ok(created) = serde_json::from_slice::<ConsignmentsCreated>(&event.payload) else { continue };
                    let mut seen = seen.lock().expect("never poisoned");
                    for entry in created.consignments {
                        seen.followed.insert(entry.consignment.id, at);
                    }
                    drop(seen);
                    followed.notify_waiters();
                }
            }
        });
        let stop = CancellationToken::new();
        tokio::spawn({
            let (services, seen, stopped) = (services.clone(), Arc::clone(&seen), stop.clone());
            let payload = shared::codec::encode(new);
            async move {
                let mut ticks = tokio::time::interval(PROBE_EVERY);
                while stopped.run_until_cancelled(ticks.tick()).await.is_some() {
                    let created = services.request::<CreatedConsignment>(consignment::CREATE, payload.clone().into());
                    if let Ok(created) = created.await {
                        seen.lock().expect("never poisoned").replied.insert(created.consignment.id, Instant::now());
                    }
                }
            }
        });
        Ok(Self { seen, followed, stop, _follower: following.drop_guard() })
    }

    /// Stops the probe, waits (up to [`SETTLE`]) for the follower to see every probe
    /// answered, and sums up the lags.
    pub(super) async fn finish(self) -> Lag {
        self.stop.cancel();
        let all_seen = async {
            loop {
                let waiting = self.followed.notified();
                {
                    let seen = self.seen.lock().expect("never poisoned");
                    if seen.replied.keys().all(|id| seen.followed.contains_key(id)) {
                        return;
                    }
                }
                waiting.await;
            }
        };
        let _ = tokio::time::timeout(SETTLE, all_seen).await;
        let seen = self.seen.lock().expect("never poisoned");
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        let mut unseen = 0;
        for (id, replied) in &seen.replied {
            match seen.followed.get(id) {
                Some(followed) => {
                    let lag =
                        u64::try_from(followed.saturating_duration_since(*replied).as_micros()).unwrap_or(u64::MAX);
                    histogram.saturating_record(lag.max(1));
                }
                None => unseen += 1,
            }
        }
        Lag { probes: histogram.len(), unseen, after_reply_us: Latency::of(&histogram) }
    }
}
