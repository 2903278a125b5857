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
//!                  wait until the projection has taken the event in ─▶ reply
//! ```
//!
//! * **One write per create, or less**: the creates queued for a vessel while its
//!   last append was in flight go out together in the next (group commit). Nothing
//!   else is written; nothing is read from JetStream on the way.
//! * **No overbooking**: every append names the last event of its vessel that its
//!   decision saw (`Nats-Expected-Last-Subject-Sequence`), so of two instances
//!   deciding on the same view of a vessel one wins and the other decides again.
//! * **Idempotency**: a key taken within the window is answered from the ledger. Two
//!   creates of one key on one instance are one write (the second waits for the
//!   first); on two instances at once, both may be written, and the first in stream
//!   order is the create: the other entry is void ([`shared::ledger`]) and its
//!   requester is answered with the first, exactly as a repeat would be.
//! * **Crash safety**: before the append nothing is stored; after it the create is
//!   complete, its event included. A crash in between loses the request, never half
//!   a create, so there is nothing to recover.
//! * **Read your writes**: the reply waits until this instance's projection has the
//!   event, so a get through this instance finds it; another instance catches up
//!   with the stream before it answers a get for an id it does not know.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use shared::{
    client::RequestError,
    model::{Consignment, ConsignmentsCreated, CreatedEntry, Idempotency, Load, Vessel},
    projection::{Behind, Projection},
};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::{
    consignments::Consignments,
    domain::{ValidConsignment, entry, idempotency_key},
    read,
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
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the writer of vessel {0} stopped")]
    Stopped(String),
}

/// What a vessel's writer did with a create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    /// Its event (or, for a repeated key, the key's) is stored and taken in.
    Stored,
    /// The vessel had no room for it after all, as the stream stood at `seen`.
    NoRoom { seen: u64 },
}

/// A create waiting for its vessel's writer.
#[derive(Debug)]
struct Queued {
    entry: CreatedEntry,
    load: Load,
    vessel: Vessel,
    done: oneshot::Sender<Result<Written, CreateError>>,
}

/// Runs creates.
#[derive(Debug)]
pub struct Creator<L, F> {
    log: Arc<L>,
    vessels: F,
    view: Arc<Projection<Consignments>>,
    writers: Mutex<HashMap<String, mpsc::UnboundedSender<Queued>>>,
}

impl<L: EventLog, F: VesselFinder> Creator<L, F> {
    /// Creates into `log`, finding vessels with `vessels`, deciding on `view`.
    pub fn new(log: Arc<L>, vessels: F, view: Arc<Projection<Consignments>>) -> Self {
        Self { log, vessels, view, writers: Mutex::new(HashMap::new()) }
    }

    /// Creates `valid` (once per `key`, if given) and returns the stored consignment.
    #[tracing::instrument(skip_all, fields(key = key.is_some()), err(level = "debug"))]
    pub async fn create(&self, valid: &ValidConsignment, key: Option<&str>) -> Result<Consignment, CreateError> {
        let idempotency = key.map(|key| Idempotency { key: idempotency_key(key), fingerprint: valid.fingerprint() });
        if let Some(idempotency) = &idempotency
            && let Some(stored) = self.repeat(idempotency).await?
        {
            tracing::debug!(consignment = %stored.id, "repeated create answered from the ledger");
            return Ok(stored);
        }
        let id = Uuid::new_v4();
        let mut seen = None;
        for _ in 0..MAX_FINDS {
            let vessel = self.vessels.find(&valid.specification(seen)).await.map_err(CreateError::Vessel)?;
            let vessel_id = vessel.id.clone();
            let consignment = valid.book(id, &vessel_id);
            let queued = entry(consignment.clone(), idempotency.clone());
            match self.write(vessel, queued, valid.load()).await? {
                Written::Stored if self.view.read(|view| view.location(&id)).is_some() => {
                    tracing::info!(consignment = %consignment.id, vessel = %vessel_id, "consignment created");
                    return Ok(consignment);
                }
                // Not stored under its own id: its key was taken by another create first.
                Written::Stored => {
                    let idempotency = idempotency.as_ref().ok_or(CreateError::Stopped(vessel_id))?;
                    let first = self.repeat(idempotency).await?;
                    return first.ok_or_else(|| {
                        StoreError::new("read a repeated create", "its key is not in the ledger").into()
                    });
                }
                Written::NoRoom { seen: at } => seen = Some(at),
            }
        }
        Err(CreateError::Contended(format!("any of {MAX_FINDS} offered")))
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

    /// Hands `entry` to its vessel's writer and waits for the outcome.
    async fn write(&self, vessel: Vessel, entry: CreatedEntry, load: Load) -> Result<Written, CreateError> {
        let vessel_id = vessel.id.clone();
        let (done, outcome) = oneshot::channel();
        let mut queued = Queued { entry, load, vessel, done };
        // A writer whose task ended (it never does while the creator lives) is replaced.
        for _ in 0..2 {
            let writer = self.writer(&vessel_id);
            match writer.send(queued) {
                Ok(()) => return outcome.await.map_err(|_| CreateError::Stopped(vessel_id))?,
                Err(mpsc::error::SendError(back)) => {
                    queued = back;
                    self.writers.lock().expect("the writers map is never poisoned").remove(&vessel_id);
                }
            }
        }
        Err(CreateError::Stopped(vessel_id))
    }

    /// The writer of `vessel_id`, started on first use.
    fn writer(&self, vessel_id: &str) -> mpsc::UnboundedSender<Queued> {
        let mut writers = self.writers.lock().expect("the writers map is never poisoned");
        writers
            .entry(vessel_id.to_owned())
            .or_insert_with(|| {
                let (send, queue) = mpsc::unbounded_channel();
                let writer = Writer {
                    vessel_id: vessel_id.to_owned(),
                    log: Arc::clone(&self.log),
                    view: Arc::clone(&self.view),
                };
                tokio::spawn(writer.run(queue));
                send
            })
            .clone()
    }
}

/// Appends the creates queued for one vessel, a batch at a time.
struct Writer<L> {
    vessel_id: String,
    log: Arc<L>,
    view: Arc<Projection<Consignments>>,
}

impl<L: EventLog> Writer<L> {
    async fn run(self, mut queue: mpsc::UnboundedReceiver<Queued>) {
        let mut batch = Vec::new();
        while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let mut pending = std::mem::take(&mut batch);
            for _ in 0..MAX_ROUNDS {
                pending = self.write(pending).await;
                if pending.is_empty() {
                    break;
                }
            }
            for queued in pending {
                drop(queued.done.send(Err(CreateError::Contended(self.vessel_id.clone()))));
            }
        }
    }

    /// One round: fits `pending` to the vessel as the projection has it, appends
    /// what fits as one event, and answers; returns the creates to fit again after
    /// losing a race to another instance.
    #[tracing::instrument(skip_all, fields(vessel = %self.vessel_id, creates = pending.len()))]
    async fn write(&self, pending: Vec<Queued>) -> Vec<Queued> {
        let (fates, expected, position) = self.view.read(|view| {
            let bookings = view.vessel(&self.vessel_id);
            let vessel = pending.first().map(|queued| Vessel { booked: bookings.booked, ..queued.vessel.clone() });
            let room = vessel.map(|vessel| vessel.remaining()).unwrap_or_default();
            let now = now_ms();
            let creates = pending.iter().map(|queued| (queued.load, queued.entry.idempotency.as_ref()));
            (plan(room, creates, |key| view.key(key, now).is_some()), bookings.last_sequence, self.view_position())
        });
        let entries: Vec<&CreatedEntry> = pending
            .iter()
            .zip(&fates)
            .filter(|(_, fate)| **fate == Fate::Append)
            .map(|(queued, _)| &queued.entry)
            .collect();
        if entries.is_empty() {
            answer(pending, &fates, position);
            return Vec::new();
        }
        let event = ConsignmentsCreated { consignments: entries.into_iter().cloned().collect() };
        match self.log.append(&self.vessel_id, expected, shared::store::encode(&event)).await {
            Ok(sequence) => match self.view.wait_for(sequence, FRESHNESS).await {
                Ok(()) => {
                    answer(pending, &fates, sequence);
                    Vec::new()
                }
                Err(behind) => {
                    fail(pending, || CreateError::Behind(behind));
                    Vec::new()
                }
            },
            Err(AppendError::Conflict(_)) => {
                // Another instance appended to the vessel first: decide again once its
                // event is taken in (or after a while, on the view there is then).
                let vessel_id = &self.vessel_id;
                self.view.wait_until(|view| view.vessel(vessel_id).last_sequence != expected, FRESHNESS).await;
                pending
            }
            Err(AppendError::Store(error)) => {
                tracing::error!(%error, vessel = %self.vessel_id, "appending creates failed");
                let error = error.to_string();
                fail(pending, || StoreError::new("append creates", error.clone()).into());
                Vec::new()
            }
        }
    }

    fn view_position(&self) -> u64 {
        self.view.position()
    }
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
/// appended, the stream as seen at `sequence`).
fn answer(pending: Vec<Queued>, fates: &[Fate], sequence: u64) {
    for (queued, fate) in pending.into_iter().zip(fates) {
        let written = match fate {
            Fate::Append | Fate::Repeat => Written::Stored,
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
