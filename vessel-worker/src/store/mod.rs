//! Where the fleet and the bookings are kept.
//!
//! # Key layout
//!
//! | bucket                                              | key            | value             | written            |
//! |-----------------------------------------------------|----------------|-------------------|--------------------|
//! | [`VESSELS_BUCKET`](shared::store::VESSELS_BUCKET)   | vessel id      | [`VesselRecord`]  | create, then compare-and-set |
//! | [`BOOKINGS_BUCKET`](shared::store::BOOKINGS_BUCKET) | consignment id | [`Booking`]       | create only        |
//!
//! # Revision rules
//!
//! * A vessel is created only if its key is absent ([`VesselStore::create_vessel`]),
//!   so seeding never overwrites a vessel whose bookings exist, and two instances
//!   cannot both create one id.
//! * A vessel changes only by compare-and-set against the revision it was read at
//!   ([`VesselStore::update_vessel`]): a booking decision is always made on the
//!   vessel's current state, or not at all.
//! * A booking is created once and never changed: the first attempt to record it
//!   wins, later ones read the winner.

mod jetstream;

use std::future::Future;

pub use jetstream::JetStreamStore;
pub use shared::store::StoreError;

use crate::fleet::{Booking, VesselRecord};

/// A stored value and the revision it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub revision: u64,
}

/// Stores vessels and bookings.
pub trait VesselStore: Send + Sync + 'static {
    /// Every vessel, in id order.
    fn vessels(&self) -> impl Future<Output = Result<Vec<Versioned<VesselRecord>>, StoreError>> + Send;

    /// One vessel.
    fn vessel(&self, id: &str) -> impl Future<Output = Result<Option<Versioned<VesselRecord>>, StoreError>> + Send;

    /// Stores `record` unless a vessel with its id exists; returns whether it did.
    fn create_vessel(&self, record: &VesselRecord) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Replaces the vessel read at `revision` with `record`; `false` if it changed since.
    fn update_vessel(
        &self,
        record: &VesselRecord,
        revision: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The booking of `consignment`, if recorded.
    fn booking(&self, consignment: &str) -> impl Future<Output = Result<Option<Booking>, StoreError>> + Send;

    /// Records `booking` for `consignment` unless one is recorded; returns the one that is.
    fn record_booking(
        &self,
        consignment: &str,
        booking: &Booking,
    ) -> impl Future<Output = Result<Booking, StoreError>> + Send;
}
