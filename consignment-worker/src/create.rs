//! Creating a consignment: one durable append, decided in memory, guarded by the server.
//!
//! ```text
//!  request ─▶ validate ─▶ key taken? ──yes──▶ reply the key's consignment (409: another body)
//!             (400)           │ no
//!                             ▼
//!                  find a vessel with room ◀───────────────── no room after all: ask again, of a
//!                  (vessel.find_available)                     fleet that has seen what this worker saw
//!                             │ 404, 503, 504: reply the error; nothing is stored
//!                             ▼
//!                  the vessel's writer: takes every create queued for the vessel, fits them
//!                  against what the ledger says is booked, and appends them as ONE event,
//!                  naming the vessel's last event ── conflict (another instance appended
//!                             │                      first): wait for the projection to take
//!                             │                      that event in, fit again
//!                             ▼ stored (fsynced with sync_interval: always)
//!                  reply; at once if the projection had every earlier event and no create of
//!                  the batch repeats a key, else once the projection has taken the event in
//! ```
//!
//! * **One write per create, or less**: the creates queued for a vessel while its
//!   last append was in flight go out together in the next (group commit). Nothing
//!   else is written; a new create reads nothing from JetStream on the way (a
//!   repeated key reads its stored consignment back).
//! * **No overbooking**: every append names the last event of its vessel that its
//!   decision saw (`Nats-Expected-Last-Subject-Sequence`), so of two instances
//!   deciding on the same view of a vessel one wins and the other decides again.
//! * **Idempotency**: a key taken within the window is answered from the ledger. Two
//!   creates of one key that meet in one vessel's batch are one write (the second
//!   waits for the first); otherwise (two instances, or two vessels offered) both
//!   may be written, and the first in stream order is the create: the other entry
//!   is void ([`shared::ledger`]) and its requester is answered with the first,
//!   exactly as a repeat would be.
//! * **Crash safety**: before the append nothing is stored; after it the create is
//!   complete, its event included. A crash in between loses the request, never half
//!   a create, so there is nothing to recover.
//! * **Read your writes**: a get for an id its projection does not know catches up
//!   with the stream's last sequence first ([`crate::read`]), so a get after the
//!   reply finds the consignment through this instance or any other. The writer
//!   itself waits for its projection to take each event in before its next round.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use shared::{
    client::RequestError,
    model::{Consignment, CreatedEntry, Idempotency, Load, Vessel},
    projection::{Behind, Projection},
    store::EVENTS_STREAM,
    subjects::consignment,
};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::{
    consignments::Consignments,
    domain::{ValidConsignment, idempotency_key},
    read::{self, FetchError},
    store::{AppendError, EventLog, StoreError},
    vessels::VesselFinder,
};

/// How long a create waits for the projection to take in an event it must see.
pub const FRESHNESS: Duration = Duration::from_secs(2);
/// The most creates one event holds.
const MAX_BATCH: usize = 256;
/// Appends a batch may lose to other instances before it gives up as too contended.
const MAX_ROUNDS: u32 = 32;
/// Vessels a create may be offered before it gives up as too contended.
const MAX_FINDS: u32 = 16;

/// Why a create failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("this Nats-Msg-Id was used for a different consignment; use a new key for a new consignment")]
    KeyReused,
    /// The vessel service's answer: no vessel fits, none is running, it timed out.
    #[error(transparent)]
    Vessel(RequestError),
    #[error("vessel {0} is booked too busily to take more now; try again")]
    Contended(String),
    #[error(
        "the create was stored, but this instance has not read it back in time: {0}; repeat it with the same Nats-Msg-Id"
    )]
    Behind(#[from] Behind),
    /// A repeat's consignment is stored, in event `0`, but no replica asked
    /// returned that event ([`FetchError::Lacking`]).
    #[error("this Nats-Msg-Id's consignment is stored, but the replicas that answered lack its event {0}; try again")]
    Unread(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the writer of vessel {0} stopped")]
    Stopped(String),
    #[error("the consignment takes {0} bytes stored, more than an event may hold")]
    TooLarge(usize),
}

impl From<FetchError> for CreateError {
    fn from(error: FetchError) -> Self {
        match error {
            FetchError::Lacking(sequence) => Self::Unread(sequence),
            FetchError::Store(error) => Self::Store(error),
        }
    }
}

/// What a vessel's writer did with a create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    /// Stored: its own entry if `counted`; otherwise its key was taken by an earlier
    /// entry, which the projection has.
    Stored { counted: bool },
    /// The vessel had no room for it after all, as the stream stood at `seen`.
    NoRoom { seen: u64 },
}

/// A create waiting for its vessel's writer.
#[derive(Debug)]
struct Queued {
    id: Uuid,
    idempotency: Option<Idempotency>,
    /// Its entry as the event carries it (JSON), encoded on the requester's task.
    encoded: Vec<u8>,
    load: Load,
    vessel: Vessel,
    done: oneshot::Sender<Result<Written, CreateError>>,
    /// The requester's trace: the round that appends it continues it.
    trace: shared::telemetry::TraceContext,
}

/// Room left in an event for its envelope.
const ENVELOPE_BYTES: usize = 1024;

/// Runs creates.
#[derive(Debug)]
pub struct Creator<L, F> {
    log: Arc<L>,
    vessels: F,
    view: Arc<Projection<Consignments>>,
    writers: Mutex<HashMap<String, mpsc::UnboundedSender<Queued>>>,
    /// The most bytes one event may take: the server's `max_payload`, less room.
    max_event_bytes: usize,
}

impl<L: EventLog, F: VesselFinder> Creator<L, F> {
    /// Creates into `log`, finding vessels with `vessels`, deciding on `view`; no
    /// event it appends is larger than `max_payload`.
    pub fn new(log: Arc<L>, vessels: F, view: Arc<Projection<Consignments>>, max_payload: usize) -> Self {
        let max_event_bytes = max_payload.saturating_sub(ENVELOPE_BYTES);
        Self { log, vessels, view, writers: Mutex::new(HashMap::new()), max_event_bytes }
    }

    /// Creates `valid` (once per `key`, if given) and returns the stored consignment.
    #[tracing::instrument(level = "debug", skip_all, fields(key = key.is_some()), err(level = "debug"))]
    pub async fn create(&self, valid: &ValidConsignment, key: Option<&str>) -> Result<Consignment, CreateError> {
        let idempotency = key.map(|key| Idempotency { key: idempotency_key(key), fingerprint: valid.fingerprint() });
        if let Some(idempotency) = &idempotency
            && let Some(stored) = self.repeat(idempotency).await?
        {
            tracing::debug!(consignment = %stored.id, "repeated create answered from the ledger");
            return Ok(stored);
        }
        let id = ValidConsignment::new_id();
        let mut seen = None;
        for _ in 0..MAX_FINDS {
            let vessel = self.vessels.find(&valid.specification(seen)).await.map_err(CreateError::Vessel)?;
            let vessel_id = vessel.id.clone();
            let consignment = valid.book(id, &vessel_id);
            let encoded = CreatedEntry::encode(&consignment, idempotency.as_ref());
            if encoded.len() > self.max_event_bytes {
                return Err(CreateError::TooLarge(encoded.len()));
            }
            let queued = |done| Queued {
                id,
                idempotency: idempotency.clone(),
                encoded,
                load: valid.load(),
                vessel,
                done,
                trace: shared::telemetry::current(),
            };
            match self.write(&vessel_id, queued).await? {
                Written::Stored { counted: true } => {
                    tracing::info!(consignment = %consignment.id, vessel = %vessel_id, "consignment created");
                    return Ok(consignment);
                }
                // Not stored under its own id: its key was taken by another create first,
                // whose entry the projection has; unless the window closed on that one
                // meanwhile: then this is a create like any other, and goes round again.
                Written::Stored { counted: false } => {
                    if let Some(idempotency) = &idempotency
                        && let Some(first) = self.repeat(idempotency).await?
                    {
                        return Ok(first);
                    }
                }
                Written::NoRoom { seen: at } => seen = Some(at),
            }
        }
        Err(CreateError::Contended(format!("any of the {MAX_FINDS} vessels offered")))
    }

    /// The consignment `idempotency`'s key was taken for within the window, if any;
    /// [`CreateError::KeyReused`] if that was another request.
    async fn repeat(&self, idempotency: &Idempotency) -> Result<Option<Consignment>, CreateError> {
        let taken = self.view.read(|view| {
            view.key(&idempotency.key, now_ms()).map(|record| (record, view.location(&record.consignment)))
        });
        let Some((record, location)) = taken else { return Ok(None) };
        if record.fingerprint != idempotency.fingerprint {
            return Err(CreateError::KeyReused);
        }
        let location =
            location.ok_or_else(|| StoreError::new("read a repeated create", "its consignment has no place"))?;
        Ok(Some(read::fetch(self.log.as_ref(), location).await?))
    }

    /// Hands a create to `vessel_id`'s writer and waits for the outcome.
    async fn write(
        &self,
        vessel_id: &str,
        queued: impl FnOnce(oneshot::Sender<Result<Written, CreateError>>) -> Queued,
    ) -> Result<Written, CreateError> {
        let (done, outcome) = oneshot::channel();
        let mut queued = queued(done);
        // A writer whose task ended (it never does while the creator lives) is replaced.
        for _ in 0..2 {
            match self.writer(vessel_id).send(queued) {
                Ok(()) => return outcome.await.map_err(|_| CreateError::Stopped(vessel_id.to_owned()))?,
                Err(mpsc::error::SendError(back)) => {
                    queued = back;
                    self.writers.lock().expect("the writers map is never poisoned").remove(vessel_id);
                }
            }
        }
        Err(CreateError::Stopped(vessel_id.to_owned()))
    }

    /// The writer of `vessel_id`, started on first use.
    fn writer(&self, vessel_id: &str) -> mpsc::UnboundedSender<Queued> {
        let mut writers = self.writers.lock().expect("the writers map is never poisoned");
        if let Some(writer) = writers.get(vessel_id) {
            return writer.clone();
        }
        let (send, queue) = mpsc::unbounded_channel();
        let writer = Writer {
            vessel_id: vessel_id.to_owned(),
            log: Arc::clone(&self.log),
            view: Arc::clone(&self.view),
            max_event_bytes: self.max_event_bytes,
        };
        tokio::spawn(writer.run(queue));
        writers.insert(vessel_id.to_owned(), send.clone());
        send
    }
}

/// Appends the creates queued for one vessel, a batch at a time.
struct Writer<L> {
    vessel_id: String,
    log: Arc<L>,
    view: Arc<Projection<Consignments>>,
    max_event_bytes: usize,
}

impl<L: EventLog> Writer<L> {
    async fn run(self, mut queue: mpsc::UnboundedReceiver<Queued>) {
        let mut pending: Vec<Queued> = Vec::new();
        let mut rounds = 0;
        loop {
            if pending.is_empty() {
                rounds = 0;
                if queue.recv_many(&mut pending, MAX_BATCH).await == 0 {
                    return;
                }
            } else {
                // Left over from the last round (past the byte limit, or a lost race),
                // and whatever queued meanwhile.
                while pending.len() < MAX_BATCH
                    && let Ok(queued) = queue.try_recv()
                {
                    pending.push(queued);
                }
            }
            rounds += 1;
            if rounds > MAX_ROUNDS {
                fail(std::mem::take(&mut pending), || CreateError::Contended(self.vessel_id.clone()));
                continue;
            }
            // As many as one event holds, in order; the rest wait for the next round.
            let mut bytes = 0;
            let fit = pending
                .iter()
                .position(|queued| {
                    bytes += queued.encoded.len() + 1;
                    bytes > self.max_event_bytes
                })
                .unwrap_or(pending.len())
                .max(1);
            let later = pending.split_off(fit);
            pending = self.write(pending).await;
            pending.extend(later);
        }
    }

    /// One round: fits `pending` to the vessel as the projection has it, appends
    /// what fits as one event, and answers; returns the creates to fit again after
    /// losing a race to another instance.
    ///
    /// In the append's `publish` span, which continues the trace of the round's
    /// first create and links to the others': one span per round, not per create
    /// ([`shared::store::append_in_current_span`]). The event's trace context
    /// follows from it.
    async fn write(&self, pending: Vec<Queued>) -> Vec<Queued> {
        let parent = pending.first().map(|queued| queued.trace.clone()).unwrap_or_default();
        let subject = consignment::created_event(&self.vessel_id);
        let span = parent.in_scope(|| shared::telemetry::jetstream_span("publish", EVENTS_STREAM, &subject));
        for queued in pending.iter().skip(1) {
            span.link(&queued.trace);
        }
        span.run(self.write_round(pending)).await
    }

    async fn write_round(&self, pending: Vec<Queued>) -> Vec<Queued> {
        let position = self.view.position();
        let (fates, expected) = self.view.read(|view| {
            let bookings = view.vessel(&self.vessel_id);
            let vessel = pending.first().map(|queued| Vessel { booked: bookings.booked, ..queued.vessel.clone() });
            let room = vessel.map(|vessel| vessel.remaining()).unwrap_or_default();
            let now = now_ms();
            let creates = pending.iter().map(|queued| (queued.load, queued.idempotency.as_ref()));
            (plan(room, creates, |key| view.key(key, now).is_some()), bookings.last_sequence)
        });
        let appended: Vec<&[u8]> = pending
            .iter()
            .zip(&fates)
            .filter(|(_, fate)| **fate == Fate::Append)
            .map(|(queued, _)| queued.encoded.as_slice())
            .collect();
        if appended.is_empty() {
            answer(pending, &fates, position, &[]);
            return Vec::new();
        }
        match self.log.append(&self.vessel_id, expected, event(&appended)).await {
            Ok(sequence) => {
                self.stored(pending, &fates, sequence).await;
                Vec::new()
            }
            Err(AppendError::Conflict(_)) => {
                // Another instance appended to the vessel first: decide again once its
                // event is taken in (or after a while, on the view there is then).
                shared::meter::jetstream_retry();
                let vessel_id = &self.vessel_id;
                self.view.wait_until(|view| view.vessel(vessel_id).last_sequence != expected, FRESHNESS).await;
                pending
            }
            Err(AppendError::Store(error)) => {
                // Each create's requester is answered with the error, and it is logged there.
                let (operation, error) = (format!("append creates to vessel {}", self.vessel_id), error.to_string());
                fail(pending, || StoreError::new(operation.clone(), error.clone()).into());
                Vec::new()
            }
        }
    }

    /// Answers the creates of a round whose event is stored at `sequence`, and
    /// returns once the projection has that event, so that the next round decides,
    /// and names the vessel's last event, with it.
    ///
    /// Whether an entry counts is known at once when the projection has every event
    /// before `sequence` and no create of the round repeats a key: an entry without
    /// a key always counts, one with a key unless an earlier event holds the key.
    /// Then the replies go out before the projection takes the event in (a get
    /// through this instance meanwhile catches up first, see [`crate::read`]);
    /// otherwise they wait for it.
    async fn stored(&self, pending: Vec<Queued>, fates: &[Fate], sequence: u64) {
        let at_once = !fates.contains(&Fate::Repeat) && self.view.position() + 1 >= sequence;
        if at_once {
            let now = now_ms();
            let counted: Vec<bool> = self.view.read(|view| {
                let first_of_its_key = |queued: &Queued| {
                    queued.idempotency.as_ref().is_none_or(|idempotency| {
                        view.key(&idempotency.key, now).is_none_or(|record| record.consignment == queued.id)
                    })
                };
                pending.iter().map(first_of_its_key).collect()
            });
            answer(pending, fates, sequence, &counted);
            if let Err(behind) = self.view.wait_for(sequence, FRESHNESS).await {
                tracing::warn!(%behind, vessel = %self.vessel_id, "the projection lags this vessel's appends");
            }
            return;
        }
        match self.view.wait_for(sequence, FRESHNESS).await {
            Ok(()) => {
                let counted: Vec<bool> =
                    self.view.read(|view| pending.iter().map(|queued| view.location(&queued.id).is_some()).collect());
                answer(pending, fates, sequence, &counted);
            }
            Err(behind) => fail(pending, || CreateError::Behind(behind)),
        }
    }
}

/// The event holding `entries`, each encoded already: `{"consignments":[…]}`.
fn event(entries: &[&[u8]]) -> bytes::Bytes {
    let mut event = Vec::with_capacity(entries.iter().map(|entry| entry.len() + 1).sum::<usize>() + 20);
    event.extend_from_slice(br#"{"consignments":["#);
    for (n, entry) in entries.iter().enumerate() {
        if n > 0 {
            event.push(b',');
        }
        event.extend_from_slice(entry);
    }
    event.extend_from_slice(b"]}");
    event.into()
}

/// What a vessel's writer does with a create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Goes into the event.
    Append,
    /// Its key is taken (in the ledger, or earlier in this batch): it is answered
    /// with the key's create once the event is taken in.
    Repeat,
    /// Does not fit in what is left.
    NoRoom,
}

/// Decides, in order, what becomes of each of `creates` (load, key) on a vessel
/// with `room` left, where `taken` tells a key the ledger holds. The booking
/// arithmetic of a batch: pure, no I/O.
pub fn plan<'a>(
    mut room: Load,
    creates: impl IntoIterator<Item = (Load, Option<&'a Idempotency>)>,
    taken: impl Fn(&Uuid) -> bool,
) -> Vec<Fate> {
    let mut keys = std::collections::HashSet::new();
    creates
        .into_iter()
        .map(|(load, idempotency)| {
            if let Some(Idempotency { key, .. }) = idempotency
                && (taken(key) || keys.contains(key))
            {
                return Fate::Repeat;
            }
            if load.containers > room.containers || load.weight > room.weight {
                return Fate::NoRoom;
            }
            room.containers -= load.containers;
            room.weight -= load.weight;
            if let Some(Idempotency { key, .. }) = idempotency {
                keys.insert(*key);
            }
            Fate::Append
        })
        .collect()
}

/// Answers each create of a round after the event at `sequence` (or, with none
/// appended, the stream as seen at `sequence`); `counted[n]` tells whether the
/// `n`th create's own entry is stored.
fn answer(pending: Vec<Queued>, fates: &[Fate], sequence: u64, counted: &[bool]) {
    for (n, (queued, fate)) in pending.into_iter().zip(fates).enumerate() {
        let written = match fate {
            Fate::Append | Fate::Repeat => Written::Stored { counted: counted.get(n).copied().unwrap_or(false) },
            Fate::NoRoom => Written::NoRoom { seen: sequence },
        };
        // A requester that stopped waiting is no error.
        drop(queued.done.send(Ok(written)));
    }
}

fn fail(pending: Vec<Queued>, error: impl Fn() -> CreateError) {
    for queued in pending {
        drop(queued.done.send(Err(error())));
    }
}

/// Milliseconds since the Unix epoch: the idempotency window is measured against
/// the server's timestamps of the events.
pub fn now_ms() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(containers: u32, weight: u64) -> Load {
        Load { containers, weight }
    }

    fn key(n: u128) -> Idempotency {
        Idempotency { key: Uuid::from_u128(n), fingerprint: Uuid::nil() }
    }

    #[test]
    fn a_batch_takes_what_fits_in_order_and_leaves_the_rest() {
        let fates = plan(load(5, 100), [(load(3, 50), None), (load(3, 10), None), (load(2, 50), None)], |_| false);
        assert_eq!(fates, [Fate::Append, Fate::NoRoom, Fate::Append]);
    }

    #[test]
    fn a_key_taken_in_the_ledger_or_earlier_in_the_batch_is_a_repeat_and_takes_no_room() {
        let (one, two) = (key(1), key(2));
        let fates = plan(
            load(2, 100),
            [(load(1, 1), Some(&one)), (load(1, 1), Some(&two)), (load(1, 1), Some(&two)), (load(1, 1), None)],
            |key| *key == Uuid::from_u128(1),
        );
        assert_eq!(fates, [Fate::Repeat, Fate::Append, Fate::Repeat, Fate::Append]);
    }

    #[test]
    fn a_key_whose_create_did_not_fit_is_not_held_by_it() {
        let one = key(1);
        let fates = plan(load(1, 100), [(load(2, 1), Some(&one)), (load(1, 1), Some(&one))], |_| false);
        assert_eq!(fates, [Fate::NoRoom, Fate::Append]);
    }
}

/// The create flow over the event log in memory: no NATS.
#[cfg(test)]
mod flow {
    use std::time::Duration;

    use shared::{
        ServiceError,
        model::{Container, NewConsignment, Specification},
        projection::Fold as _,
    };

    use super::*;
    use crate::{
        domain::ConsignmentFilter,
        read::{PageQuery, ReadError, Reader},
        store::MemoryLog,
    };

    /// The vessel service, answering as a projection of the same log would.
    struct Fleet {
        vessels: Vec<Vessel>,
        view: Arc<Projection<Consignments>>,
    }

    impl VesselFinder for Fleet {
        async fn find(&self, spec: &Specification) -> Result<Vessel, RequestError> {
            if let Some(sequence) = spec.sequence {
                let _ = self.view.wait_for(sequence, FRESHNESS).await;
            }
            let fits = |vessel: &&Vessel| {
                let booked = self.view.read(|view| view.vessel(&vessel.id).booked);
                let left = Vessel { booked, ..(*vessel).clone() }.remaining();
                left.containers >= spec.capacity && left.weight >= spec.max_weight
            };
            let found = self.vessels.iter().find(fits).cloned();
            found.ok_or_else(|| RequestError::Service(ServiceError::not_found("no vessel available")))
        }
    }

    /// A vessel-finder that never answers: a create waiting on it is before its append.
    struct Silent;

    impl VesselFinder for Silent {
        async fn find(&self, _: &Specification) -> Result<Vessel, RequestError> {
            std::future::pending().await
        }
    }

    fn vessel(id: &str, capacity: u32, max_weight: u64) -> Vessel {
        Vessel {
            id: id.into(),
            capacity,
            max_weight,
            name: id.into(),
            available: true,
            owner_id: String::new(),
            booked: Load::default(),
        }
    }

    /// The seed consignment (3 containers) of `weight`.
    fn seed(weight: u64) -> ValidConsignment {
        let container =
            Container { id: String::new(), customer_id: "c".into(), origin: "o".into(), user_id: "u".into() };
        let request = NewConsignment { description: "d".into(), weight, containers: vec![container; 3] };
        ValidConsignment::parse(request).unwrap()
    }

    /// A consignment-worker instance over `log`: its projection, its follower number, its creator.
    fn instance(
        log: &Arc<MemoryLog>,
        vessels: &[Vessel],
    ) -> (Creator<MemoryLog, Fleet>, Arc<Projection<Consignments>>, usize) {
        let view = Projection::new(Consignments::new(Duration::from_secs(3600)));
        let follower = log.follow(Arc::clone(&view));
        let fleet = Fleet { vessels: vessels.to_vec(), view: Arc::clone(&view) };
        (Creator::new(Arc::clone(log), fleet, Arc::clone(&view), 1024 * 1024), view, follower)
    }

    #[tokio::test]
    async fn a_repeated_key_gets_the_first_create_at_once_or_later_and_another_body_409() {
        let log = Arc::new(MemoryLog::default());
        let (creator, view, _) = instance(&log, &[vessel("v1", 100, 1_000_000)]);
        let valid = seed(10);
        let repeats = futures::future::join_all((0..10).map(|_| creator.create(&valid, Some("k")))).await;
        let first = repeats[0].as_ref().unwrap();
        assert!(repeats.iter().all(|repeat| repeat.as_ref().unwrap() == first), "identical replies");
        assert_eq!(&creator.create(&seed(10), Some("k")).await.unwrap(), first, "a later repeat");
        assert!(matches!(creator.create(&seed(11), Some("k")).await, Err(CreateError::KeyReused)));
        assert_eq!(view.read(Consignments::len), 1);
        assert_eq!(view.read(|view| view.vessel("v1").booked), Load { containers: 3, weight: 10 });
    }

    #[tokio::test(start_paused = true)]
    async fn two_instances_racing_for_the_last_room_book_it_once() {
        let log = Arc::new(MemoryLog::default());
        // Room for exactly one seed consignment.
        let fleet = [vessel("v1", 3, 100)];
        let (a, a_view, _) = instance(&log, &fleet);
        let (b, _, b_follower) = instance(&log, &fleet);
        // B lags: it will decide on a view without A's create.
        log.hold(b_follower, true);
        a.create(&seed(100), None).await.unwrap();
        let racing = tokio::spawn(async move { b.create(&seed(100), None).await });
        // B's append names v1's last event as it saw it (none): refused.
        log.refused(1).await;
        log.hold(b_follower, false);
        let lost = racing.await.unwrap();
        assert!(
            matches!(&lost, Err(CreateError::Vessel(RequestError::Service(error))) if error.code == shared::ErrorCode::NotFound),
            "the loser finds no room: {lost:?}"
        );
        assert_eq!(a_view.read(Consignments::len), 1);
        assert_eq!(a_view.read(|view| view.vessel("v1").booked), Load { containers: 3, weight: 100 });
    }

    #[tokio::test(start_paused = true)]
    async fn a_create_stopped_before_its_append_leaves_nothing_and_after_it_everything() {
        let log = Arc::new(MemoryLog::default());
        // Before: stopped while it waits for a vessel.
        let view = Projection::new(Consignments::new(Duration::from_secs(3600)));
        log.follow(Arc::clone(&view));
        let before = Creator::new(Arc::clone(&log), Silent, Arc::clone(&view), 1024 * 1024);
        assert!(tokio::time::timeout(Duration::from_secs(1), before.create(&seed(10), Some("k"))).await.is_err());
        assert!(log.events().is_empty(), "nothing stored before the append");

        // After: stopped once its event is appended, whatever its reply.
        let fleet = [vessel("v1", 100, 1_000_000)];
        let (creator, _, follower) = instance(&log, &fleet);
        log.hold(follower, true);
        let stopped = tokio::spawn(async move { creator.create(&seed(10), Some("k")).await });
        log.appended(1).await;
        stopped.abort();
        assert_eq!(log.events().len(), 1, "the append happened");

        // A new instance, rebuilt from the log, answers the repeat with it: once.
        let (restarted, view, _) = instance(&log, &fleet);
        let repeated = restarted.create(&seed(10), Some("k")).await.unwrap();
        assert_eq!(view.read(Consignments::len), 1);
        assert_eq!(log.events().len(), 1, "the repeat wrote nothing");
        assert_eq!(repeated.vessel_id, "v1");
    }

    /// The process crashes (its runtime, and every task on it, gone) after `steps`
    /// steps of a create (a step: the create runs until it waits, or the writer's
    /// task does), for every `steps` until the create completes: whatever the step,
    /// the log holds the create whole or not at all, and a restarted instance given
    /// the same key stores exactly one consignment.
    #[test]
    fn a_crash_between_any_two_steps_leaves_the_create_whole_or_absent() {
        let fleet = [vessel("v1", 100, 1_000_000)];
        let runtime = || tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        // How many events each crash left: both must be seen.
        let mut left = std::collections::BTreeSet::new();
        for steps in 1.. {
            let log = Arc::new(MemoryLog::default());
            let crashed = runtime();
            let completed = crashed.block_on(async {
                let (creator, _, _) = instance(&log, &fleet);
                let valid = seed(10);
                let mut create = std::pin::pin!(creator.create(&valid, Some("k")));
                for step in 0..steps {
                    if step % 2 == 1 {
                        // The writer's task takes its step.
                        tokio::task::yield_now().await;
                    } else if futures::poll!(create.as_mut()).is_ready() {
                        return true;
                    }
                }
                false
            });
            drop(crashed);
            if completed {
                break;
            }
            let events = log.events().len();
            assert!(events <= 1, "after {steps} steps: {events} events");
            left.insert(events);

            runtime().block_on(async {
                let (restarted, view, _) = instance(&log, &fleet);
                restarted.create(&seed(10), Some("k")).await.unwrap();
                assert_eq!(log.events().len(), 1, "after {steps} steps: one event");
                assert_eq!(view.read(Consignments::len), 1, "after {steps} steps: one consignment");
            });
        }
        assert_eq!(left, [0, 1].into(), "crashes before the append and after it");
    }

    /// The first page of every consignment, of up to 10.
    fn first_page() -> PageQuery {
        PageQuery { after: None, limit: 10, filter: ConsignmentFilter::default(), max_bytes: 1 << 20 }
    }

    /// A list or a get through an instance that has not taken in a create's event
    /// yet answers once it has, and never without the create.
    #[tokio::test(start_paused = true)]
    async fn a_read_through_a_lagging_instance_waits_for_what_the_stream_held() {
        let log = Arc::new(MemoryLog::default());
        let fleet = [vessel("v1", 100, 1_000_000)];
        let (a, _, _) = instance(&log, &fleet);
        let (_, lagging, follower) = instance(&log, &fleet);
        let b = Reader::new(Arc::clone(&log), lagging);
        log.hold(follower, true);
        let created = a.create(&seed(10), None).await.unwrap();
        let query = first_page();

        // Held back for longer than a read waits: "try again", not a stale answer.
        assert!(matches!(b.page(&query).await, Err(ReadError::Behind(_))));
        assert!(matches!(b.get(&created.id).await, Err(ReadError::Behind(_))));

        // Taken in while the list waits: the list has it.
        let release = async {
            tokio::task::yield_now().await;
            log.hold(follower, false);
        };
        let (page, ()) = tokio::join!(b.page(&query), release);
        assert_eq!(page.unwrap().consignments, std::slice::from_ref(&created));
        assert_eq!(b.get(&created.id).await.unwrap(), Some(created));
    }

    /// A list never ends short of what the projection has taken in: an answer
    /// from a replica that lacks the newest event (and says nothing more matches)
    /// is asked again, and if every ask is short the page is "try again" (503),
    /// never shorter.
    #[tokio::test(start_paused = true)]
    async fn a_list_asks_again_when_a_replica_lacks_the_newest_event() {
        let log = Arc::new(MemoryLog::default());
        let fleet = [vessel("v1", 100, 1_000_000)];
        let (creator, view, _) = instance(&log, &fleet);
        let reader = Reader::new(Arc::clone(&log), view);
        let first = creator.create(&seed(10), None).await.unwrap();
        let newest = creator.create(&seed(10), None).await.unwrap();
        let query = first_page();

        log.answer_short(3);
        assert_eq!(reader.page(&query).await.unwrap().consignments, [first, newest]);
        log.answer_short(usize::MAX);
        assert!(matches!(reader.page(&query).await, Err(ReadError::Lacking { from: 1, until: 2 })));
    }

    /// A get, like a list, asks again while the replica answering lacks the event
    /// that holds the consignment, and is "try again" (503) if every ask is short.
    #[tokio::test(start_paused = true)]
    async fn a_get_asks_again_when_a_replica_lacks_its_event() {
        let log = Arc::new(MemoryLog::default());
        let (creator, view, _) = instance(&log, &[vessel("v1", 100, 1_000_000)]);
        let reader = Reader::new(Arc::clone(&log), view);
        let newest = creator.create(&seed(10), None).await.unwrap();

        log.answer_short(3);
        assert_eq!(reader.get(&newest.id).await.unwrap().as_ref(), Some(&newest));
        log.answer_short(usize::MAX);
        assert!(matches!(reader.get(&newest.id).await, Err(ReadError::Lacking { from: 1, until: 1 })));
    }

    #[tokio::test]
    async fn a_projection_rebuilt_from_the_log_is_the_one_kept_live() {
        let log = Arc::new(MemoryLog::default());
        let fleet = [vessel("v1", 9, 1_000_000), vessel("v2", 300, 1_000_000)];
        let (creator, live, _) = instance(&log, &fleet);
        for n in 0..20 {
            let key = (n % 3 == 0).then(|| format!("k{}", n % 6));
            drop(creator.create(&seed(10 + n % 2), key.as_deref()).await);
        }
        let mut rebuilt = Consignments::new(Duration::from_secs(3600));
        for event in log.events() {
            rebuilt.apply(&event);
        }
        for id in ["v1", "v2"] {
            assert_eq!(rebuilt.vessel(id), live.read(|view| view.vessel(id)), "vessel {id}");
        }
        assert_eq!(rebuilt.len(), live.read(Consignments::len));
        assert_eq!(live.read(|view| view.vessel("v1").booked.containers), 9, "v1 filled first, in id order");
    }
}
