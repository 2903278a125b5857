//! Creating a consignment so that it survives a crash at any step, and happens once.
//!
//! ```text
//!  request ─▶ validate ─▶ claim key ─▶ begin ─▶ book vessel ─▶ store ─▶ announce ─▶ finish ─▶ reply
//!             (400)       (Nats-Msg-Id)  │        │ nothing booked: abandon (finish, reply the error)
//!                                        │        │ maybe booked: left in flight, reply the error
//!                                        └── in flight: recovery redoes book → finish ──┘
//! ```
//!
//! * **claim key**: with a `Nats-Msg-Id`, the key is claimed for a new consignment
//!   id (create-if-absent, kept for the idempotency window); a repeat gets the
//!   claimed id, and the stored consignment if the first create finished.
//! * **begin**: the request is recorded as in flight under the consignment id
//!   before anything is booked.
//! * **book**: `vessel.find_available` with the consignment id: the vessel-worker
//!   books the space once per id, however often asked.
//! * **store**: the consignment, create-if-absent: the create is acknowledged from here on.
//! * **announce**: `consignment.created` into the events stream, deduplicated by consignment id.
//! * **finish**: the in-flight record is removed (after the reply: the create is
//!   done once announced).
//!
//! Every step is idempotent, so a create interrupted anywhere is finished by
//! running the steps again: [`Creator::recover`] does that for every create in
//! flight for longer than `recover_after`, on every instance, so it needs no
//! leader. A create is abandoned only when nothing can be booked for it: the
//! vessel-worker found no booking, no hold and no room (404), or the request that
//! began it reached no vessel-worker at all (503 "no responders"). Anything else
//! (a timeout, a busy vessel, a lost connection, or no vessel-worker for a retry
//! or a recovery, when an earlier attempt may have booked) leaves it in flight.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shared::{ServiceError, model::Consignment};

use crate::{
    domain::{ValidConsignment, idempotency_key},
    store::{ConsignmentStore, KeyClaim, PendingCreate, StoreError},
    vessels::{Booked, BookingFailed, VesselClient},
};

/// Runs creates and finishes interrupted ones.
#[derive(Debug)]
pub struct Creator<S> {
    store: S,
    vessels: VesselClient,
    recover_after: Duration,
}

impl<S: ConsignmentStore> Creator<S> {
    /// Creates over `store`, booking with `vessels`; creates in flight for longer
    /// than `recover_after` are taken to be interrupted.
    pub fn new(store: S, vessels: VesselClient, recover_after: Duration) -> Self {
        Self { store, vessels, recover_after }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Creates `valid` (once per `key`, if given) and returns the stored consignment.
    #[tracing::instrument(skip_all, fields(key = key.is_some()))]
    pub async fn create(&self, valid: ValidConsignment, key: Option<&str>) -> Result<Consignment, ServiceError> {
        let id = match key {
            None => uuid::Uuid::new_v4().to_string(),
            Some(key) => {
                let fingerprint = valid.fingerprint();
                let proposed = KeyClaim { consignment_id: uuid::Uuid::new_v4().to_string(), fingerprint };
                let claim = self.store.claim_key(&idempotency_key(key), &proposed).await?;
                if claim.fingerprint != proposed.fingerprint {
                    return Err(ServiceError::conflict(
                        "this Nats-Msg-Id was used for a different consignment; use a new key for a new consignment",
                    ));
                }
                if let Some(done) = self.store.consignment(&claim.consignment_id).await? {
                    tracing::debug!(consignment = %done.id, "repeated create answered from the store");
                    return Ok(done);
                }
                claim.consignment_id
            }
        };
        let create = PendingCreate { request: valid.request().clone(), started_ms: now_ms() };
        let first_attempt = self.store.begin_create(&id, &create).await?;
        self.finish(id, valid, first_attempt).await
    }

    /// Book, store, announce and finish the create of `id`, recorded as in flight;
    /// `first_attempt` if this request recorded it, so that no other attempt can have booked.
    async fn finish(
        &self,
        id: String,
        valid: ValidConsignment,
        first_attempt: bool,
    ) -> Result<Consignment, ServiceError> {
        let vessel = match self.vessels.book(&valid.specification(&id)).await {
            Ok(vessel) => vessel,
            Err(BookingFailed { error, booked }) => {
                if booked == Booked::Nothing || (booked == Booked::NotByThisRequest && first_attempt) {
                    // Nothing is booked for it: abandon the create.
                    self.store.finish_create(&id).await?;
                    return Err(error);
                }
                // The booking may or may not have happened: recovery finishes it either way.
                return Err(ServiceError::new(
                    error.code,
                    format!(
                        "{}; the create will be finished in the background: repeat it with the same Nats-Msg-Id to learn the outcome",
                        error.message
                    ),
                ));
            }
        };
        let consignment = self.store.store_consignment(&valid.book(id, vessel.id)).await?;
        tracing::info!(consignment = %consignment.id, vessel = %consignment.vessel_id, "consignment created");
        self.store.announce(&consignment).await?;
        // Stored and announced: the create is done. Its in-flight record goes without
        // holding up the reply; should that fail, recovery removes it.
        let (store, id) = (self.store.clone(), consignment.id.clone());
        tokio::spawn(async move { drop(store.finish_create(&id).await) });
        Ok(consignment)
    }

    /// Finishes every create in flight for longer than `recover_after`: those whose
    /// worker died or lost its connection mid-way. Returns how many it finished.
    #[tracing::instrument(skip(self), err)]
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let mut finished = 0;
        for stale in self.store.creates_in_flight().await? {
            let age = now_ms().saturating_sub(stale.create.started_ms);
            if u128::from(age) < self.recover_after.as_millis() {
                continue;
            }
            let id = stale.consignment_id;
            let outcome = match self.store.consignment(&id).await? {
                // Stored: only the announcement may be missing.
                Some(consignment) => {
                    self.store.announce(&consignment).await?;
                    self.store.finish_create(&id).await?;
                    Ok(consignment)
                }
                None => match ValidConsignment::parse(stale.create.request) {
                    Ok(valid) => self.finish(id.clone(), valid, false).await,
                    Err(error) => {
                        self.store.finish_create(&id).await?;
                        Err(ServiceError::bad_request(error.to_string()))
                    }
                },
            };
            match outcome {
                Ok(consignment) => tracing::info!(consignment = %consignment.id, "interrupted create finished"),
                Err(error) => tracing::warn!(consignment = %id, %error, "interrupted create not finished"),
            }
            finished += 1;
        }
        Ok(finished)
    }
}

fn now_ms() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}
