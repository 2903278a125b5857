//! Where the fleet is written: `vessel.added.<id>` events in the event stream.
//!
//! The vessel-worker appends one event per vessel, guarded by
//! `Nats-Expected-Last-Subject-Sequence: 0` so that an id is added once, however
//! many instances seed or create it at once. It writes nothing else: what is booked
//! on a vessel is derived from the consignment-worker's `consignment.created.<id>`
//! events ([`crate::fleet::Fleet`]). The layout and sequence rules of the stream are
//! in [`shared::store`].

mod jetstream;
mod memory;

use std::future::Future;

pub use jetstream::JetStreamLog;
pub use memory::MemoryLog;
use shared::model::NewVessel;
pub use shared::store::StoreError;

/// Appends vessels to the fleet.
pub trait FleetLog: Send + Sync + 'static {
    /// Adds `vessel` unless a vessel with its id was added before; returns the
    /// sequence of its event, or `None` if the id exists.
    fn add_vessel(&self, vessel: &NewVessel) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// The sequence of the newest event in the stream.
    fn last_sequence(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
}
