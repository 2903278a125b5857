//! `GET /v1/events`: the `consignment.created.<vessel_id>` events as Server-Sent
//! Events, live, and from any point of the stream on with `Last-Event-ID`.
//!
//! # One consumer for every connection
//!
//! [`Feed::start`] follows [`FEED_STREAM`] (the mirror of the event stream kept for
//! clients) through **one** ordered push consumer, from the newest event on, and
//! hands each event to every open connection through a [`broadcast`] channel: a
//! connection costs a channel receiver, not a JetStream consumer, so 10,000 of them
//! cost the server what one does.
//!
//! # Each event once, in order, from `Last-Event-ID`
//!
//! An SSE event's `id` is the event's stream sequence. A connection
//! ([`Feed::subscribe`]) first subscribes to the channel, then, when the client
//! resumed with `Last-Event-ID: n`, reads the events after `n` back from the stream
//! with direct gets (ADR-31: no consumer), batch after batch until none is left,
//! asking a replica that has at least the newest event handed out before it
//! subscribed. Every event is therefore either read back (stored before the
//! subscription) or received (handed out after it): no gap. Then it sends what it
//! received, skipping each event whose sequence is not above the last it sent: no
//! duplicate, and stream order throughout.
//!
//! A connection too slow to keep up (more than [`CHANNEL_CAPACITY`] events behind,
//! [`broadcast::error::RecvError::Lagged`]) is not dropped: it reads what it missed
//! back from the stream, the same way, and goes on. A read back that fails ends the
//! response; the client resumes from the last `id` it saw.
//!
//! An event's `data` is [`FeedEvent`] as JSON: the vessel and the consignments one
//! durable append booked onto it, as stored (a repeat of an idempotency key that two
//! instances wrote at once, void for every list, is shown as stored).

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_nats::{
    Client,
    jetstream::{self, consumer::DeliverPolicy},
};
use axum::response::sse::Event;
use futures::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use shared::{
    model::{Consignment, ConsignmentsCreated},
    store::{BatchRequest, FEED_STREAM, StoreError, direct_batch},
    subjects::consignment,
};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// The SSE event name of a `consignment.created` event.
pub const EVENT_NAME: &str = "consignment.created";
/// Events the channel keeps for connections behind; one further behind reads
/// the rest back from the stream.
pub const CHANNEL_CAPACITY: usize = 1024;
/// Events read back from the stream in one direct get.
pub const REPLAY_BATCH: usize = 256;
/// How often an idle connection gets a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The pause before following the stream again after it failed (NATS down, the
/// stream not there yet).
const FOLLOW_RETRY: Duration = Duration::from_secs(1);

/// The `data` of an event: the consignments one append booked onto a vessel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeedEvent {
    /// The event's stream sequence, also its SSE `id`.
    pub sequence: u64,
    pub vessel_id: String,
    pub consignments: Vec<Consignment>,
}

/// An event, ready to send: its sequence and its `data`, encoded once for all.
#[derive(Debug)]
struct Encoded {
    sequence: u64,
    data: String,
}

impl Encoded {
    /// The stored message as an event; `None` (logged) if it is not a created event.
    fn decode(sequence: u64, subject: &str, payload: &[u8]) -> Option<Arc<Self>> {
        let vessel_id = consignment::created_vessel(subject)?;
        match serde_json::from_slice::<ConsignmentsCreated>(payload) {
            Ok(created) => {
                let event = FeedEvent {
                    sequence,
                    vessel_id: vessel_id.to_owned(),
                    consignments: created.consignments.into_iter().map(|entry| entry.consignment).collect(),
                };
                let data = serde_json::to_string(&event).ok()?;
                Some(Arc::new(Self { sequence, data }))
            }
            Err(error) => {
                tracing::warn!(sequence, subject, %error, "an event that is not a consignment.created event: skipped");
                None
            }
        }
    }

    fn to_sse(&self) -> Event {
        Event::default().id(self.sequence.to_string()).event(EVENT_NAME).data(&self.data)
    }
}

/// The events, followed once and shared by every connection.
#[derive(Debug, Clone)]
pub struct Feed {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    sender: broadcast::Sender<Arc<Encoded>>,
    /// The sequence of the newest event handed out, or of the stream's last message
    /// when following began.
    newest: AtomicU64,
    /// Whether following has begun: connections wait for it.
    started: tokio::sync::watch::Sender<bool>,
    /// How long a read back may wait for its reply.
    read_timeout: Duration,
    /// Cancelled when the gateway stops: following ends, and so does every response.
    stop: CancellationToken,
}

impl Feed {
    /// Starts following the events over `client`, on a task that keeps at it (from
    /// where it was) until `stop` is cancelled, which also ends every response;
    /// reads back wait up to `read_timeout`.
    pub fn start(client: Client, read_timeout: Duration, stop: CancellationToken) -> Self {
        let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
        let started = tokio::sync::watch::Sender::new(false);
        let feed =
            Self { inner: Arc::new(Inner { client, sender, newest: AtomicU64::new(0), started, read_timeout, stop }) };
        let follower = feed.clone();
        let stop = feed.inner.stop.clone();
        tokio::spawn(async move { stop.run_until_cancelled(follower.follow()).await });
        feed
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.inner.sender.receiver_count()
    }

    /// Follows [`FEED_STREAM`] for good: from the message after the stream's last
    /// at first (connections may subscribe from then on), from the one after the
    /// last handed out after a failure.
    async fn follow(self) {
        let js = jetstream::new(self.inner.client.clone());
        loop {
            if let Err(error) = self.follow_once(&js).await {
                tracing::warn!(%error, "following the events failed; following again");
            }
            tokio::time::sleep(FOLLOW_RETRY).await;
        }
    }

    async fn follow_once(&self, js: &jetstream::Context) -> Result<(), StoreError> {
        fn failed(error: impl Into<async_nats::Error>) -> StoreError {
            StoreError::new(format!("follow {FEED_STREAM}"), error)
        }
        let stream = js.get_stream(FEED_STREAM).await.map_err(failed)?;
        if !*self.inner.started.borrow() {
            let last = stream.get_info().await.map_err(failed)?.state.last_sequence;
            self.inner.newest.store(last, Ordering::Release);
        }
        let newest = self.inner.newest.load(Ordering::Acquire);
        let consumer = stream
            .create_consumer(jetstream::consumer::push::OrderedConfig {
                deliver_subject: self.inner.client.new_inbox(),
                filter_subject: consignment::CREATED_EVENTS.to_owned(),
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: newest + 1 },
                ..Default::default()
            })
            .await
            .map_err(failed)?;
        // Every event after `newest` reaches the channel from now on.
        self.inner.started.send_replace(true);
        let mut messages = consumer.messages().await.map_err(failed)?;
        tracing::info!(stream = FEED_STREAM, after = newest, "following the events for /v1/events");
        while let Some(message) = messages.next().await {
            let message = message.map_err(failed)?;
            let info = message.info().map_err(failed)?;
            let sequence = info.stream_sequence;
            if let Some(event) = Encoded::decode(sequence, &message.subject, &message.payload) {
                // No receiver is no error: nobody is connected.
                let _ = self.inner.sender.send(event);
            }
            // After the send: a connection that reads `newest` as this event's
            // sequence either got it from the channel or subscribed after it.
            self.inner.newest.store(sequence, Ordering::Release);
        }
        Err(failed("the consumer ended"))
    }

    /// The events for one connection: those after `last_event_id` read back from
    /// the stream, then live ones; from now on without it. Waits up to the read
    /// timeout for following to have begun; `None` if it has not.
    pub async fn subscribe(&self, last_event_id: Option<u64>) -> Option<impl Stream<Item = Event> + Send + use<>> {
        let mut started = self.inner.started.subscribe();
        tokio::time::timeout(self.inner.read_timeout, started.wait_for(|started| *started)).await.ok()?.ok()?;
        let receiver = self.inner.sender.subscribe();
        let newest = self.inner.newest.load(Ordering::Acquire);
        let connection = Connection {
            inner: Arc::clone(&self.inner),
            receiver,
            last: last_event_id.unwrap_or(newest),
            replay_until: last_event_id.map(|_| newest),
            pending: VecDeque::new(),
        };
        Some(futures::stream::unfold(connection, |mut connection| async move {
            let stop = connection.inner.stop.clone();
            let event = stop.run_until_cancelled(connection.next()).await??;
            Some((event.to_sse(), connection))
        }))
    }
}

/// One connection's place in the events.
struct Connection {
    inner: Arc<Inner>,
    receiver: broadcast::Receiver<Arc<Encoded>>,
    /// The sequence of the last event sent (or to start after).
    last: u64,
    /// While reading back: the newest event handed out when it began, which the
    /// replica read from must hold.
    replay_until: Option<u64>,
    /// Events read or received, not sent yet.
    pending: VecDeque<Arc<Encoded>>,
}

impl Connection {
    /// The next event to send; `None` ends the response.
    async fn next(&mut self) -> Option<Arc<Encoded>> {
        loop {
            while let Some(event) = self.pending.pop_front() {
                if event.sequence > self.last {
                    self.last = event.sequence;
                    return Some(event);
                }
            }
            if let Some(min_last_seq) = self.replay_until {
                match self.read_back(min_last_seq).await {
                    Ok(true) => {}
                    Ok(false) => self.replay_until = None,
                    Err(error) => {
                        tracing::warn!(%error, last = self.last, "reading events back failed: the response ends");
                        return None;
                    }
                }
                continue;
            }
            match self.receiver.recv().await {
                Ok(event) => self.pending.push_back(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, last = self.last, "a connection fell behind: reading back from the stream");
                    self.replay_until = Some(self.inner.newest.load(Ordering::Acquire));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Reads the next batch after [`Self::last`] back into `pending`; `false` once none is left.
    async fn read_back(&mut self, min_last_seq: u64) -> Result<bool, StoreError> {
        let request = BatchRequest {
            from: self.last + 1,
            subject: consignment::CREATED_EVENTS.to_owned(),
            batch: REPLAY_BATCH,
            max_bytes: None,
            min_last_seq: (min_last_seq > 0).then_some(min_last_seq),
        };
        let messages = direct_batch(&self.inner.client, FEED_STREAM, &request, self.inner.read_timeout).await?;
        let Some(newest) = messages.last().map(|message| message.sequence) else { return Ok(false) };
        self.pending.extend(
            messages.iter().filter_map(|message| Encoded::decode(message.sequence, &message.subject, &message.payload)),
        );
        // Skipped (undecodable) events still move the place on.
        if self.pending.is_empty() {
            self.last = newest;
        }
        Ok(true)
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("last", &self.last).finish_non_exhaustive()
    }
}
