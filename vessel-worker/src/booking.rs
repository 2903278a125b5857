//! Finding and booking vessels over a [`VesselStore`].
//!
//! Booking `load` for consignment `C`, whatever instance does it and however often:
//!
//! 1. If `C`'s booking is recorded, the booking is done: settle its hold if a crash
//!    left it (step 4) and answer with its vessel.
//! 2. Hold space: if a vessel holds space for `C` already (an earlier attempt), use
//!    that hold; otherwise count `load` on the first vessel, in id order, with room,
//!    by compare-and-set on its current revision, re-reading on a conflict.
//! 3. Record the booking (`C` → vessel and attempt), create-if-absent: the first
//!    attempt to record wins, and every attempt continues with the winner.
//! 4. Settle: the recorded hold keeps its count and loses its marker (after the
//!    reply: the count is final already); a duplicate attempt's hold gives its load
//!    back (before the reply).
//!
//! A crash between steps leaves a hold that the next attempt for `C` (the
//! consignment-worker retries unfinished creates) or the [`Booker::sweep`] finishes.
//! No step depends on how many consignments a vessel carries.
//!
//! # Group commit
//!
//! Vessel changes (steps 2 and 4) go through one writer task per instance. It takes
//! every change queued, reads the fleet once, applies them in order and writes each
//! vessel they touched with one compare-and-set; a change on a vessel whose write
//! lost a race (another instance wrote it) is applied again on a fresh read. So the
//! bookings of one busy vessel cost one write per batch, not one per booking, and
//! every decision is still made on the vessel's current revision.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use shared::model::{Load, Vessel};
use tokio::sync::{mpsc, oneshot};

use crate::{
    fleet::{Booking, FleetError, VesselRecord, find_hold, first_fit},
    store::{StoreError, Versioned, VesselStore},
};

/// Rounds of reading and writing a change may take before it gives up as too contended.
const MAX_ROUNDS: u32 = 64;
/// The longest pause between two rounds; each pause is random up to a bound that
/// grows with the round, so that instances racing for one vessel drift apart.
const MAX_BACKOFF: Duration = Duration::from_millis(20);
/// The most changes one batch applies.
const MAX_BATCH: usize = 512;

/// Waits a random while before round `round` (none before the first).
async fn back_off(round: u32) {
    if round > 0 {
        let bound = (Duration::from_micros(250) * round).min(MAX_BACKOFF);
        tokio::time::sleep(bound.mul_f64(fastrand::f64())).await;
    }
}

/// Why a booking or lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error("vessel {0} is booked too busily to change; try again")]
    Contended(String),
    #[error("booking {consignment} names vessel {vessel}, which is not stored")]
    VesselMissing { consignment: String, vessel: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the vessel writer stopped")]
    Stopped,
}

/// Finds and books vessels.
#[derive(Debug)]
pub struct Booker<S> {
    store: Arc<S>,
    changes: mpsc::UnboundedSender<Change>,
}

type Entry = Versioned<VesselRecord>;

fn record(entry: &Entry) -> &VesselRecord {
    &entry.value
}

impl<S: VesselStore> Booker<S> {
    /// Books over `store`, starting this instance's vessel writer (on the current
    /// tokio runtime; it stops when the booker is dropped).
    pub fn new(store: S) -> Self {
        let store = Arc::new(store);
        let (changes, queued) = mpsc::unbounded_channel();
        tokio::spawn(write_vessels(Arc::clone(&store), queued));
        Self { store, changes }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// The first vessel with room for `load`, as stored now; books nothing.
    pub async fn find(&self, load: Load) -> Result<Vessel, BookingError> {
        let fleet = self.store.vessels().await?;
        let found = first_fit(&fleet, record, load).ok_or(FleetError::NoVesselAvailable)?;
        Ok(found.value.vessel.clone())
    }

    /// Books `load` for `consignment` and returns the vessel it is on; a repeat returns the same vessel.
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn book(&self, consignment: &str, load: Load) -> Result<Vessel, BookingError> {
        if let Some(booking) = self.store.booking(consignment).await? {
            return self.settle(&booking.vessel_id, consignment, &booking).await;
        }
        let attempt = uuid::Uuid::new_v4().to_string();
        let (held_on, attempt) =
            self.change(|done| Change::Hold { consignment: consignment.to_owned(), load, attempt, done }).await?;
        let proposed = Booking { vessel_id: held_on.id.clone(), load, attempt };
        let booking = self.store.record_booking(consignment, &proposed).await?;
        if booking == proposed {
            // The recorded hold is this one: its count stands, and only its marker is
            // left to clear, which needs no waiting for (a crash leaves it to the sweep).
            let (done, _) = oneshot::channel();
            let settle = Change::Settle {
                vessel_id: booking.vessel_id.clone(),
                consignment: consignment.to_owned(),
                booking,
                done,
            };
            let _ = self.changes.send(settle);
            return Ok(held_on);
        }
        // Another attempt's booking was recorded: give this hold back before answering.
        self.settle(&held_on.id, consignment, &booking).await?;
        self.settle(&booking.vessel_id, consignment, &booking).await
    }

    /// Step 4 on `vessel_id`: settles its hold for `consignment` against `booking`; returns the vessel.
    async fn settle(&self, vessel_id: &str, consignment: &str, booking: &Booking) -> Result<Vessel, BookingError> {
        self.change(|done| Change::Settle {
            vessel_id: vessel_id.to_owned(),
            consignment: consignment.to_owned(),
            booking: booking.clone(),
            done,
        })
        .await
    }

    /// Queues a change for the vessel writer and waits for its outcome.
    async fn change<T>(&self, change: impl FnOnce(Done<T>) -> Change) -> Result<T, BookingError> {
        let (done, outcome) = oneshot::channel();
        self.changes.send(change(done)).map_err(|_| BookingError::Stopped)?;
        outcome.await.map_err(|_| BookingError::Stopped)?
    }

    /// Settles every hold whose booking is recorded: what a crash between steps 3
    /// and 4 left behind. Holds without a booking belong to creates still in flight,
    /// which finish them. Returns how many were settled.
    #[tracing::instrument(skip(self), err)]
    pub async fn sweep(&self) -> Result<usize, BookingError> {
        let mut settled = 0;
        for entry in self.store.vessels().await? {
            for consignment in entry.value.holds.keys() {
                if let Some(booking) = self.store.booking(consignment).await? {
                    self.settle(&entry.value.vessel.id, consignment, &booking).await?;
                    settled += 1;
                }
            }
        }
        Ok(settled)
    }
}

type Done<T> = oneshot::Sender<Result<T, BookingError>>;

/// A change to the fleet, and where its outcome goes.
#[derive(Debug)]
enum Change {
    /// Step 2: the vessel holding space for the consignment, with the attempt whose hold it is.
    Hold { consignment: String, load: Load, attempt: String, done: Done<(Vessel, String)> },
    /// Step 4: the vessel, its hold for the consignment settled.
    Settle { vessel_id: String, consignment: String, booking: Booking, done: Done<Vessel> },
}

/// What applying a change to a read of the fleet came to.
enum Applied {
    /// Final: nothing to write for it.
    Done(Result<Answer, BookingError>),
    /// Final once the vessel at this index of the fleet is written.
    Written(usize, Answer),
    /// No vessel has room in the fleet as this batch changed it: final once every
    /// vessel the batch touched is written, since a lost write may give room back.
    NoRoom,
}

/// An answer, by the index of its vessel in the fleet: the vessel is read when the
/// answer is sent, after the batch's writes.
enum Answer {
    Held(usize, String),
    Settled(usize),
}

impl Change {
    /// Applies the change to `fleet`, noting the vessels it changed in `touched`.
    fn apply(&self, fleet: &mut [Entry], touched: &mut BTreeSet<usize>) -> Applied {
        let index_of = |fleet: &[Entry], entry: &Entry| fleet.iter().position(|e| std::ptr::eq(e, entry));
        // An answer read off a vessel changed in this batch holds only once it is written.
        let answer = |index: usize, answer: Answer, touched: &BTreeSet<usize>| {
            if touched.contains(&index) { Applied::Written(index, answer) } else { Applied::Done(Ok(answer)) }
        };
        match self {
            Self::Hold { consignment, load, attempt, .. } => {
                if let Some((entry, attempt)) = find_hold(fleet, record, consignment) {
                    let index = index_of(fleet, entry).expect("an entry of the fleet");
                    return answer(index, Answer::Held(index, attempt), touched);
                }
                let Some(entry) = first_fit(fleet, record, *load) else {
                    return if touched.is_empty() {
                        Applied::Done(Err(FleetError::NoVesselAvailable.into()))
                    } else {
                        Applied::NoRoom
                    };
                };
                let index = index_of(fleet, entry).expect("an entry of the fleet");
                fleet[index].value.hold(consignment, *load, attempt);
                touched.insert(index);
                Applied::Written(index, Answer::Held(index, attempt.clone()))
            }
            Self::Settle { vessel_id, consignment, booking, .. } => {
                let Some(index) = fleet.iter().position(|entry| &entry.value.vessel.id == vessel_id) else {
                    let missing =
                        BookingError::VesselMissing { consignment: consignment.clone(), vessel: vessel_id.clone() };
                    return Applied::Done(Err(missing));
                };
                if fleet[index].value.settle(consignment, booking) {
                    touched.insert(index);
                }
                answer(index, Answer::Settled(index), touched)
            }
        }
    }

    /// Sends the outcome, reading the answer's vessel off `fleet`.
    fn finish(self, fleet: &[Entry], outcome: Result<Answer, BookingError>) {
        let vessel = |index: usize| fleet[index].value.vessel.clone();
        // A caller that stopped waiting (or never did, for a marker) is no error.
        match self {
            Self::Hold { done, .. } => drop(done.send(outcome.map(|answer| match answer {
                Answer::Held(index, attempt) => (vessel(index), attempt),
                Answer::Settled(index) => (vessel(index), String::new()),
            }))),
            Self::Settle { done, .. } => drop(done.send(outcome.map(|answer| match answer {
                Answer::Held(index, _) | Answer::Settled(index) => vessel(index),
            }))),
        }
    }

    fn vessel_id(&self) -> String {
        match self {
            Self::Hold { consignment, .. } => format!("holding {consignment}"),
            Self::Settle { vessel_id, .. } => vessel_id.clone(),
        }
    }
}

/// The vessel writer: applies queued changes in batches until the booker is dropped.
async fn write_vessels<S: VesselStore>(store: Arc<S>, mut queued: mpsc::UnboundedReceiver<Change>) {
    let mut batch = Vec::new();
    while queued.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut pending = std::mem::take(&mut batch);
        for round in 0..MAX_ROUNDS {
            if pending.is_empty() {
                break;
            }
            back_off(round).await;
            pending = write_batch(store.as_ref(), pending).await;
        }
        for change in pending {
            let contended = BookingError::Contended(change.vessel_id());
            change.finish(&[], Err(contended));
        }
    }
}

/// One round: reads the fleet, applies `changes`, writes what they touched, and
/// returns the changes whose vessel lost a race, to be applied again.
async fn write_batch<S: VesselStore>(store: &S, changes: Vec<Change>) -> Vec<Change> {
    let mut fleet = match store.vessels().await {
        Ok(fleet) => fleet,
        Err(error) => {
            for change in changes {
                change.finish(&[], Err(StoreError::new("read the fleet", error.to_string()).into()));
            }
            return Vec::new();
        }
    };
    let mut touched = BTreeSet::new();
    let applied: Vec<(Change, Applied)> = changes
        .into_iter()
        .map(|change| {
            let applied = change.apply(&mut fleet, &mut touched);
            (change, applied)
        })
        .collect();

    // Written: true; lost a race: false; failed: the error.
    let mut written = std::collections::BTreeMap::new();
    for index in touched {
        let Versioned { value, revision } = &fleet[index];
        written.insert(index, store.update_vessel(value, *revision).await.map_err(|error| error.to_string()));
    }
    let all_written = written.values().all(|written| matches!(written, Ok(true)));
    let mut again = Vec::new();
    for (change, applied) in applied {
        match applied {
            Applied::Done(outcome) => change.finish(&fleet, outcome),
            Applied::NoRoom if all_written => change.finish(&fleet, Err(FleetError::NoVesselAvailable.into())),
            Applied::NoRoom => again.push(change),
            Applied::Written(index, answer) => match &written[&index] {
                Ok(true) => change.finish(&fleet, Ok(answer)),
                Ok(false) => again.push(change),
                Err(error) => change.finish(&fleet, Err(StoreError::new("write a vessel", error.clone()).into())),
            },
        }
    }
    again
}
