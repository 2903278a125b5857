//! Where consignments, creates in flight, idempotency keys and events are kept.
//!
//! # Key layout
//!
//! | bucket / stream                                           | key / subject         | value            | written |
//! |-----------------------------------------------------------|-----------------------|------------------|---------|
//! | [`CONSIGNMENTS_BUCKET`](shared::store::CONSIGNMENTS_BUCKET) | consignment id      | [`Consignment`]  | create only: a consignment never changes |
//! | [`CREATES_BUCKET`](shared::store::CREATES_BUCKET)         | consignment id        | [`PendingCreate`] | create, then removed when the create is done |
//! | [`IDEMPOTENCY_BUCKET`](shared::store::IDEMPOTENCY_BUCKET) | name-based UUID of the `Nats-Msg-Id` | [`KeyClaim`] | create only; expires after the idempotency window |
//! | [`EVENTS_STREAM`](shared::store::EVENTS_STREAM)           | `consignment.created` | [`Consignment`]  | published with `Nats-Msg-Id` = consignment id |
//!
//! # Revision rules
//!
//! * Every record is created only if its key is absent, and the loser of a race
//!   reads the winner's record: two instances doing the same create end with one
//!   consignment, one claim, one create in flight.
//! * A finished create's record is purged with a marker that expires after a few
//!   seconds (per-message TTL), so the creates bucket holds only creates in flight
//!   and the recovery scan costs what is in flight, not what was ever created.
//! * A consignment's revision is its place in the consignments stream: pages of
//!   `consignment.list` follow it, so a page cursor stays valid as consignments are added.

pub mod jetstream;

use std::future::Future;

pub use jetstream::JetStreamStore;
use serde::{Deserialize, Serialize};
use shared::model::{Consignment, NewConsignment};
pub use shared::store::StoreError;

use crate::domain::ConsignmentFilter;

/// What an idempotency key stands for: the consignment it created, and a
/// fingerprint of the request, so a key reused for another consignment is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyClaim {
    pub consignment_id: String,
    pub fingerprint: String,
}

/// A create in flight: enough to finish it after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCreate {
    pub request: NewConsignment,
    /// When it began, in milliseconds since the Unix epoch.
    pub started_ms: u64,
}

/// A create in flight as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCreate {
    pub consignment_id: String,
    pub create: PendingCreate,
}

/// Which page of consignments to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery {
    /// Start after this revision (0: from the start).
    pub after: u64,
    pub limit: usize,
    pub filter: ConsignmentFilter,
    /// The most bytes the consignments of the page may take, encoded.
    pub max_bytes: usize,
}

/// A page of consignments and the revision to continue after, if more may follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub consignments: Vec<Consignment>,
    pub next: Option<u64>,
}

/// Stores consignments and everything a create needs to be exactly-once.
pub trait ConsignmentStore: Clone + Send + Sync + 'static {
    /// Claims idempotency key `key` with `claim` unless it is claimed; returns the claim that holds.
    fn claim_key(&self, key: &str, claim: &KeyClaim) -> impl Future<Output = Result<KeyClaim, StoreError>> + Send;

    /// The consignment `id`, if stored.
    fn consignment(&self, id: &str) -> impl Future<Output = Result<Option<Consignment>, StoreError>> + Send;

    /// Stores `consignment` unless its id is stored; returns the one that is.
    fn store_consignment(
        &self,
        consignment: &Consignment,
    ) -> impl Future<Output = Result<Consignment, StoreError>> + Send;

    /// Records the create of `id` as in flight, unless it is; returns whether this call recorded it.
    fn begin_create(&self, id: &str, create: &PendingCreate) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes the record of the create of `id`: it is done, or abandoned.
    fn finish_create(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every create in flight.
    fn creates_in_flight(&self) -> impl Future<Output = Result<Vec<StoredCreate>, StoreError>> + Send;

    /// Publishes `consignment.created` for `consignment` into the events stream,
    /// once per consignment id within the stream's duplicate window.
    fn announce(&self, consignment: &Consignment) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A page of consignments, oldest first.
    fn page(&self, query: &PageQuery) -> impl Future<Output = Result<Page, StoreError>> + Send;
}
