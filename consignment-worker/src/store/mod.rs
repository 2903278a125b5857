//! Where creates are written and consignments read back: the event stream.
//!
//! A create is one append: a `consignment.created.<vessel_id>` event holding the
//! consignments booked onto that vessel together (group commit), guarded by the
//! vessel subject's last sequence. Nothing else is written for it: bookings,
//! idempotency keys and the place of each consignment are derived from the
//! stream ([`crate::consignments`]); a consignment is read back from its event. The
//! layout and sequence rules of the stream are in [`shared::store`].

mod jetstream;
mod memory;

use std::future::Future;

use bytes::Bytes;
pub use jetstream::JetStreamLog;
pub use memory::MemoryLog;
pub use shared::store::{AppendError, StoreError, StoredMessage};

/// Appends created events and reads them back.
pub trait EventLog: Send + Sync + 'static {
    /// Appends `event` to `vessel_id`'s created events, provided its last is at
    /// sequence `expected` (0: none); returns the event's sequence once stored.
    /// Called in the write round's `publish` span, which it records into.
    fn append(
        &self,
        vessel_id: &str,
        expected: u64,
        event: Bytes,
    ) -> impl Future<Output = Result<u64, AppendError>> + Send;

    /// The sequence of the newest event in the stream.
    fn last_sequence(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Up to `batch` created events (of `vessel_id`'s, if given) from sequence
    /// `from` on, at most about `max_bytes` of them if given (at least one), as a
    /// replica that has the stream up to `until` at least has them.
    fn read(&self, read: Read<'_>) -> impl Future<Output = Result<Vec<StoredMessage>, StoreError>> + Send;
}

/// What [`EventLog::read`] reads.
#[derive(Debug, Clone, Copy)]
pub struct Read<'a> {
    pub from: u64,
    pub vessel_id: Option<&'a str>,
    pub batch: usize,
    pub max_bytes: Option<usize>,
    pub until: u64,
}
