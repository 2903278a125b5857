//! Projections: state folded from the event stream and kept in memory, so that
//! requests read it without a JetStream round trip.
//!
//! A projection is rebuilt at start by reading the stream from its first message
//! ([`follow`] returns once it has caught up with the stream's last sequence as it
//! was then), and is kept current after that by an ordered consumer. It is never
//! the source of truth: losing it loses nothing, and every decision taken on it is
//! guarded by the server (see [`crate::store`], "Sequence rules").
//!
//! Each projection knows the sequence it has taken in up to, and a request that
//! must see a given event (its own write, or one it was told of) waits for that
//! sequence with [`Projection::wait_for`]: that is how a create's reply, a get
//! right after it and a find after a lost race read their own writes. A list
//! first catches up with the stream's last sequence ([`Projection::catch_up`]),
//! so it shows every write acknowledged before it, through any instance.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use futures::StreamExt as _;
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Instrument as _;

use crate::store::{Event, StoreError};

/// State folded from events, one at a time, in stream order.
pub trait Fold: Send + Sync + 'static {
    /// Takes in `event`. Events arrive in stream order, each once; one that cannot be
    /// read is the fold's to pass over (and log), never to stop on.
    fn apply(&mut self, event: &Event);

    /// Called after each run of events taken in together, before anyone reads:
    /// the place for work worth doing once per run rather than once per event.
    fn settle(&mut self) {}
}

/// The payload of `event` as a `T`, or `None`, logged, for an event that cannot be
/// read (only the admin could have written it): a fold passes it over (for a
/// created event, with [`Ledger::touch`](crate::ledger::Ledger::touch)).
pub fn decode<T: serde::de::DeserializeOwned>(event: &Event) -> Option<T> {
    serde_json::from_slice(&event.payload)
        .map_err(|error| {
            tracing::error!(sequence = event.sequence, subject = %event.subject, %error, "an event that cannot be read is passed over");
        })
        .ok()
}

/// A projection did not reach a sequence in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the projection is at sequence {at}, behind {wanted}")]
pub struct Behind {
    pub at: u64,
    pub wanted: u64,
}

/// State of type `T`, and the stream sequence it has taken in up to.
#[derive(Debug)]
pub struct Projection<T> {
    state: RwLock<T>,
    position: watch::Sender<u64>,
    /// Told when a waiter saw no event taken in for [`STALLED_AFTER`]: the follower
    /// then follows again at once rather than wait for its consumer's heartbeats
    /// (async-nats gives ordered consumers 10 s) to say the consumer is gone, as it
    /// is when the node serving it is lost.
    stalled: tokio::sync::Notify,
}

/// How long a waiter waits with no event taken in before it tells the follower.
const STALLED_AFTER: Duration = Duration::from_millis(300);
/// How long [`Projection::catch_up`] waits for the stream's last sequence.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(1);

impl<T: Fold> Projection<T> {
    /// A projection starting from `state`, which has taken in nothing.
    pub fn new(state: T) -> Arc<Self> {
        Arc::new(Self {
            state: RwLock::new(state),
            position: watch::Sender::new(0),
            stalled: tokio::sync::Notify::new(),
        })
    }

    /// Reads the state.
    ///
    /// # Panics
    /// If a fold panicked while holding the state (a bug): the state may be half-changed.
    pub fn read<R>(&self, read: impl FnOnce(&T) -> R) -> R {
        read(&self.state.read().expect("a projection's fold never panics"))
    }

    /// Takes in `events` (in stream order) and tells the waiters.
    ///
    /// # Panics
    /// As [`Projection::read`].
    pub fn apply(&self, events: &[Event]) {
        let Some(last) = events.last() else { return };
        {
            let mut state = self.state.write().expect("a projection's fold never panics");
            for event in events {
                state.apply(event);
            }
            state.settle();
        }
        self.position.send_if_modified(|position| {
            let moved = last.sequence > *position;
            *position = (*position).max(last.sequence);
            moved
        });
    }

    /// The sequence taken in up to.
    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    /// Waits until the projection has taken in `sequence`, at most `timeout`. A wait
    /// that sees nothing taken in for a while tells the follower, which follows again.
    pub async fn wait_for(&self, sequence: u64, timeout: Duration) -> Result<(), Behind> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut position = self.position.subscribe();
        loop {
            let at = *position.borrow_and_update();
            if at >= sequence {
                return Ok(());
            }
            let step = (tokio::time::Instant::now() + STALLED_AFTER).min(deadline);
            match tokio::time::timeout_at(step, position.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Behind { at, wanted: sequence }),
                Err(_) if step < deadline => self.stalled.notify_one(),
                Err(_) => return Err(Behind { at: self.position(), wanted: sequence }),
            }
        }
    }
}

impl<T: Fold> Projection<T> {
    /// Waits until the projection has taken in the stream up to `last`, the stream's
    /// last sequence as the server gives it when asked, at most `timeout`: a read
    /// after that shows every write acknowledged before it was asked for. A server
    /// that gives no sequence within [`ASK_TIMEOUT`] (the stream has no leader: a
    /// cluster that lost its majority, where writes fail too) leaves the projection
    /// as it stands, logged: the read is answered, possibly without the last writes.
    pub async fn catch_up<E: std::fmt::Display>(
        &self,
        last: impl Future<Output = Result<u64, E>>,
        timeout: Duration,
    ) -> Result<(), Behind> {
        let error = match tokio::time::timeout(ASK_TIMEOUT, last).await {
            Ok(Ok(last)) => return self.wait_for(last, timeout).await,
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {ASK_TIMEOUT:?}"),
        };
        tracing::warn!(%error, at = self.position(), "the stream's last sequence is unknown: read as it stands");
        Ok(())
    }

    /// Waits until `ready` holds of the state (checked now and after each run of
    /// events taken in), at most `timeout`; returns whether it does.
    pub async fn wait_until(&self, ready: impl Fn(&T) -> bool, timeout: Duration) -> bool {
        let mut position = self.position.subscribe();
        let holds = position.wait_for(|_| self.read(&ready));
        matches!(tokio::time::timeout(timeout, holds).await, Ok(Ok(_)))
    }
}

/// How long a follower waits before following again after its consumer failed.
const REFOLLOW_AFTER: Duration = Duration::from_millis(250);
/// The most events taken in under one write of the state.
const MAX_APPLY: usize = 256;

/// How long a projection may take to catch up with the stream at start.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(300);
/// The least time between two follows started because a waiter saw a stall.
const REFOLLOW_GAP: Duration = Duration::from_secs(1);

/// Keeps `projection` current with the event stream: reads the stream's last
/// sequence, follows the stream from the projection's position on, and returns once
/// the projection has caught up with that last sequence. It goes on following on a
/// task of its own until the returned guard is dropped.
pub async fn follow<T: Fold>(
    client: &async_nats::Client,
    stream: async_nats::jetstream::stream::Stream,
    projection: Arc<Projection<T>>,
) -> Result<DropGuard, StoreError> {
    let started = std::time::Instant::now();
    let caught_up_at =
        crate::store::until_answered("read the event stream's state", || crate::store::last_sequence(&stream)).await?;
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let client = client.clone();
    let follower = Arc::clone(&projection);
    tokio::spawn(async move {
        loop {
            let from = follower.position() + 1;
            let span = tracing::info_span!("follow", otel.name = "follow the event stream", from);
            match crate::store::follow(&client, &stream, from).instrument(span).await {
                Ok(events) => {
                    let followed_at = tokio::time::Instant::now();
                    let taken = take_in(&follower, events);
                    let stalled = async {
                        tokio::time::sleep_until(followed_at + REFOLLOW_GAP).await;
                        follower.stalled.notified().await;
                    };
                    tokio::select! {
                        () = stopped.cancelled() => return,
                        error = taken => {
                            tracing::warn!(%error, position = follower.position(), "following the event stream stopped; following again");
                            crate::meter::recovery("refollow");
                        }
                        () = stalled => {
                            tracing::info!(position = follower.position(), "no event taken in while one is awaited; following again");
                            crate::meter::recovery("refollow");
                            continue;
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot follow the event stream; trying again"),
            }
            tokio::select! {
                () = stopped.cancelled() => return,
                () = tokio::time::sleep(REFOLLOW_AFTER) => {}
            }
        }
    });
    let guard = stop.drop_guard();
    projection
        .wait_for(caught_up_at, CATCH_UP_TIMEOUT)
        .instrument(tracing::info_span!(
            "catch up",
            otel.name = "catch up with the event stream",
            events = caught_up_at
        ))
        .await
        .map_err(|behind| StoreError::new("catch up with the event stream", behind))?;
    tracing::info!(events = caught_up_at, took = ?started.elapsed(), "projection caught up with the event stream");
    Ok(guard)
}

/// Takes events in until the consumer fails, or skips an event; returns why.
///
/// Nothing is ever deleted from the event stream, so its sequences have no holes:
/// an event that does not follow the last one taken in means the server delivering
/// them lacks the events between (a replica that lost them, as a fault test saw
/// nats-server do after a partition). Taking it in would fold a history with holes,
/// so the follower stops there and follows again from the first event missing.
async fn take_in<T: Fold>(
    projection: &Projection<T>,
    events: impl futures::Stream<Item = Result<Event, StoreError>>,
) -> StoreError {
    let mut events = std::pin::pin!(events.ready_chunks(MAX_APPLY));
    while let Some(chunk) = events.next().await {
        let mut taken: Vec<Event> = Vec::with_capacity(chunk.len());
        let mut failed = None;
        for event in chunk {
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    failed = Some(error);
                    break;
                }
            };
            let last = taken.last().map_or_else(|| projection.position(), |last| last.sequence);
            match next_in_line(last, &event) {
                Ok(true) => taken.push(event),
                Ok(false) => {}
                Err(error) => {
                    failed = Some(error);
                    break;
                }
            }
        }
        projection.apply(&taken);
        if let Some(error) = failed {
            return error;
        }
    }
    StoreError::new("follow the event stream", "the consumer ended")
}

/// Whether `event` is the one after sequence `last` (true), one taken in already
/// (false), or comes after a hole (an error).
fn next_in_line(last: u64, event: &Event) -> Result<bool, StoreError> {
    match event.sequence {
        sequence if sequence <= last => Ok(false),
        sequence if sequence == last + 1 => Ok(true),
        sequence => Err(StoreError::new(
            "follow the event stream",
            format!("event {sequence} came after {last}: the server that delivered it lacks the events between"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    /// The sequences taken in, in order.
    #[derive(Debug, Default)]
    struct Sequences(Vec<u64>);

    impl Fold for Sequences {
        fn apply(&mut self, event: &Event) {
            self.0.push(event.sequence);
        }
    }

    fn events(sequences: &[u64]) -> impl futures::Stream<Item = Result<Event, StoreError>> {
        let events: Vec<_> = sequences.iter().map(|&sequence| Ok(event(sequence))).collect();
        futures::stream::iter(events)
    }

    #[tokio::test]
    async fn a_follower_takes_in_each_event_once_in_order_and_stops_at_a_hole() {
        let projection = Projection::new(Sequences::default());
        let stopped = take_in(&projection, events(&[1, 2, 2, 1, 3, 5, 6])).await;
        assert!(stopped.to_string().contains("event 5 came after 3"), "{stopped}");
        assert_eq!(projection.position(), 3);
        assert_eq!(projection.read(|taken| taken.0.clone()), [1, 2, 3]);

        // Followed again from the first event missing, it goes on.
        let stopped = take_in(&projection, events(&[4, 5, 6])).await;
        assert!(stopped.to_string().contains("the consumer ended"), "{stopped}");
        assert_eq!(projection.read(|taken| taken.0.clone()), [1, 2, 3, 4, 5, 6]);
    }

    fn event(sequence: u64) -> Event {
        Event { sequence, subject: "vessel.added.v".to_owned(), time_ms: 0, payload: Bytes::new() }
    }

    /// With the stream's last sequence known, a read waits for it (or says it is
    /// behind); with none to be had, it goes on from the projection as it stands.
    #[tokio::test(start_paused = true)]
    async fn catching_up_waits_for_the_last_sequence_when_the_server_gives_one() {
        let projection = Projection::new(Sequences::default());
        projection.apply(&[event(1)]);
        let timeout = Duration::from_secs(2);

        let behind = projection.catch_up(async { Ok::<_, StoreError>(2) }, timeout).await;
        assert_eq!(behind, Err(Behind { at: 1, wanted: 2 }));

        let take_in = async {
            tokio::task::yield_now().await;
            projection.apply(&[event(2)]);
        };
        let (caught_up, ()) = tokio::join!(projection.catch_up(async { Ok::<_, StoreError>(2) }, timeout), take_in);
        assert_eq!((caught_up, projection.position()), (Ok(()), 2));

        let unknown = async { Err::<u64, _>(StoreError::new("read the state", "no leader")) };
        assert_eq!(projection.catch_up(unknown, timeout).await, Ok(()));
        let started = tokio::time::Instant::now();
        assert_eq!(projection.catch_up(std::future::pending::<Result<u64, StoreError>>(), timeout).await, Ok(()));
        assert_eq!(started.elapsed(), ASK_TIMEOUT, "no answer: as it stands, after the ask's timeout");
    }
}
