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

use std::{sync::Arc, time::Duration};

use shared::model::{Load, Vessel};
use tokio::sync::Mutex;

use crate::{
    fleet::{Booking, FleetError, find_hold, first_fit},
    store::{StoreError, Versioned, VesselStore},
};

/// Compare-and-set rounds before a booking gives up as too contended.
const MAX_ROUNDS: u32 = 64;
/// The longest pause between two rounds; each pause is random up to a bound that
/// grows with the round, so that instances racing for one vessel drift apart.
const MAX_BACKOFF: Duration = Duration::from_millis(20);

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
}

/// Finds and books vessels.
#[derive(Debug)]
pub struct Booker<S> {
    store: S,
    /// One vessel write at a time from this process: instances still race each other
    /// (compare-and-set settles that), but requests of one instance do not.
    writes: Mutex<()>,
}

type Entry = Versioned<crate::fleet::VesselRecord>;

fn record(entry: &Entry) -> &crate::fleet::VesselRecord {
    &entry.value
}

impl<S: VesselStore> Booker<S> {
    pub fn new(store: S) -> Self {
        Self { store, writes: Mutex::new(()) }
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
    pub async fn book(self: &Arc<Self>, consignment: &str, load: Load) -> Result<Vessel, BookingError> {
        if let Some(booking) = self.store.booking(consignment).await? {
            return self.settle(&booking.vessel_id, consignment, &booking).await;
        }
        let attempt = uuid::Uuid::new_v4().to_string();
        let (held_on, attempt) = self.hold(consignment, load, attempt).await?;
        let proposed = Booking { vessel_id: held_on.id.clone(), load, attempt };
        let booking = self.store.record_booking(consignment, &proposed).await?;
        if booking == proposed {
            // The recorded hold is this one: its count stands, and only its marker is
            // left to clear, which needs no waiting for (a crash leaves it to the sweep).
            let (booker, consignment) = (Arc::clone(self), consignment.to_owned());
            tokio::spawn(async move {
                if let Err(error) = booker.settle(&booking.vessel_id, &consignment, &booking).await {
                    tracing::debug!(%error, %consignment, "hold left to the sweep");
                }
            });
            return Ok(held_on);
        }
        // Another attempt's booking was recorded: give this hold back before answering.
        self.settle(&held_on.id, consignment, &booking).await?;
        self.settle(&booking.vessel_id, consignment, &booking).await
    }

    /// Step 2: the vessel holding space for `consignment` (as it is with the hold),
    /// and the attempt whose hold it is.
    async fn hold(&self, consignment: &str, load: Load, attempt: String) -> Result<(Vessel, String), BookingError> {
        let _writing = self.writes.lock().await;
        let mut contended = String::new();
        for round in 0..MAX_ROUNDS {
            back_off(round).await;
            let fleet = self.store.vessels().await?;
            if let Some((entry, attempt)) = find_hold(&fleet, record, consignment) {
                return Ok((entry.value.vessel.clone(), attempt));
            }
            let Some(Versioned { value, revision }) = first_fit(&fleet, record, load) else {
                return Err(FleetError::NoVesselAvailable.into());
            };
            let mut held = value.clone();
            held.hold(consignment, load, &attempt);
            if self.store.update_vessel(&held, *revision).await? {
                return Ok((held.vessel, attempt));
            }
            contended.clone_from(&held.vessel.id);
        }
        Err(BookingError::Contended(contended))
    }

    /// Step 4 on `vessel_id`: settles its hold for `consignment` against `booking`; returns the vessel.
    async fn settle(&self, vessel_id: &str, consignment: &str, booking: &Booking) -> Result<Vessel, BookingError> {
        let _writing = self.writes.lock().await;
        for round in 0..MAX_ROUNDS {
            back_off(round).await;
            let Some(Versioned { mut value, revision }) = self.store.vessel(vessel_id).await? else {
                return Err(BookingError::VesselMissing {
                    consignment: consignment.to_owned(),
                    vessel: vessel_id.to_owned(),
                });
            };
            if !value.settle(consignment, booking) || self.store.update_vessel(&value, revision).await? {
                return Ok(value.vessel);
            }
        }
        Err(BookingError::Contended(vessel_id.to_owned()))
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
