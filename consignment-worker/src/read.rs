//! Reading consignments back: a get by id, and pages in the order they were stored.
//!
//! Both read the events that hold the consignments, and consult the projection for
//! which entries count (a void repeat of an idempotency key lists nowhere).
//!
//! * **get**: the projection knows where the consignment is; one direct get reads
//!   its event. An id the projection does not know is looked for again once it has
//!   caught up with the stream's last sequence as the server has it *now*: a get
//!   sent after a create's reply therefore finds it through any instance.
//! * **list**: pages of the stream's created events (of one vessel's, with the
//!   vessel filter: the server filters by subject), up to the stream's last
//!   sequence as the server has it when the page is asked for, once the projection
//!   has caught up with it ([`Projection::catch_up`]): a page asked for after a
//!   create's reply lists it, through any instance. A cursor is the place of the
//!   last consignment listed, so it stays valid as consignments are added.

use std::sync::Arc;

use shared::{
    model::{Consignment, ConsignmentsCreated},
    projection::{Behind, Projection},
    store::{MAX_BATCH, StoredMessage, ask_replicas},
};
use uuid::Uuid;

use crate::{
    consignments::{Consignments, Location},
    create::FRESHNESS,
    domain::ConsignmentFilter,
    store::{EventLog, Read, StoreError},
};

/// The most stored consignments one filtered page looks at before it answers with
/// what it found and a cursor to go on from.
const SCAN_LIMIT: usize = 10 * MAX_BATCH;

/// The consignment stored at `location`.
///
/// The event is asked for again when the replica that answered lacks it (it
/// answered with a later event, or none): each ask may go to another replica; if
/// none of them had it, [`FetchError::Lacking`] ("try again"), as a list would.
pub async fn fetch(log: &impl EventLog, location: Location) -> Result<Consignment, FetchError> {
    let read = Read { from: location.sequence, vessel_id: None, batch: 1, max_bytes: None, until: location.sequence };
    let held = |found: Vec<StoredMessage>| found.into_iter().find(|message| message.sequence == location.sequence);
    let message = ask_replicas(|| async { Ok(held(log.read(read).await?)) })
        .await?
        .ok_or(FetchError::Lacking(location.sequence))?;
    let event: ConsignmentsCreated = shared::store::decode("a created event", &message.payload)?;
    let consignment = event.consignments.into_iter().nth(location.entry as usize).map(|entry| entry.consignment);
    Ok(consignment
        .ok_or_else(|| StoreError::new(format!("read event {}", location.sequence), "it has no such entry"))?)
}

/// Why a stored consignment could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Every replica asked lacked its event (catching up, after a fault).
    #[error("the replicas that answered lack event {0}, which this instance has; try again")]
    Lacking(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which page of consignments to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery {
    /// Start after this place (none: from the start).
    pub after: Option<Location>,
    pub limit: usize,
    pub filter: ConsignmentFilter,
    /// The most bytes the consignments of the page may take, encoded.
    pub max_bytes: usize,
}

/// A page of consignments and the place to continue after, if more may follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub consignments: Vec<Consignment>,
    pub next: Option<Location>,
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("this instance is catching up with the event stream: {0}; try again")]
    Behind(#[from] Behind),
    /// Every replica asked lacked created events this instance has taken in (they
    /// are catching up, after a fault): a page would miss them.
    #[error("the replicas that answered lack created events from {from} to {until} that this instance has; try again")]
    Lacking { from: u64, until: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<FetchError> for ReadError {
    fn from(error: FetchError) -> Self {
        match error {
            FetchError::Lacking(sequence) => Self::Lacking { from: sequence, until: sequence },
            FetchError::Store(error) => Self::Store(error),
        }
    }
}

/// Reads consignments.
#[derive(Debug)]
pub struct Reader<L> {
    log: Arc<L>,
    view: Arc<Projection<Consignments>>,
}

impl<L: EventLog> Reader<L> {
    pub fn new(log: Arc<L>, view: Arc<Projection<Consignments>>) -> Self {
        Self { log, view }
    }

    /// The consignment `id`, if stored.
    #[tracing::instrument(level = "debug", skip(self), err(level = "debug"))]
    pub async fn get(&self, id: &str) -> Result<Option<Consignment>, ReadError> {
        let Ok(id) = Uuid::parse_str(id) else { return Ok(None) };
        let mut location = self.view.read(|view| view.location(&id));
        if location.is_none() {
            let last = self.log.last_sequence().await?;
            self.view.wait_for(last, FRESHNESS).await?;
            location = self.view.read(|view| view.location(&id));
        }
        match location {
            Some(location) => Ok(Some(fetch(self.log.as_ref(), location).await?)),
            None => Ok(None),
        }
    }

    /// Reads `read`, asked again while the replica answering lacks created events
    /// that the projection has taken in (it answered with a hole, or ended short of
    /// `until` saying nothing more matches): each ask may go to another replica.
    /// Returns what it read, which may stop short of `until` only where the answer
    /// says more follow (the batch's limits), and never skips an event.
    async fn read_whole(&self, read: Read<'_>) -> Result<Vec<StoredMessage>, ReadError> {
        let whole = |events: Vec<StoredMessage>| {
            // Cut by the batch's limits, an answer covers the events up to its
            // last; else it must cover them all, up to `until`.
            let to =
                events.last().filter(|last| last.pending > 0).map_or(read.until, |last| last.sequence.min(read.until));
            let returned: Vec<u64> =
                events.iter().map(|message| message.sequence).filter(|&sequence| sequence <= to).collect();
            let whole = self.view.read(|view| view.created_events(read.vessel_id, read.from, to) == returned);
            whole.then_some(events)
        };
        ask_replicas(|| async { Ok(whole(self.log.read(read).await?)) })
            .await?
            .ok_or(ReadError::Lacking { from: read.from, until: read.until })
    }

    /// A page of consignments, oldest first, of what the stream held when asked.
    #[tracing::instrument(level = "debug", skip(self), err(level = "debug"))]
    pub async fn page(&self, query: &PageQuery) -> Result<Page, ReadError> {
        self.view.catch_up(self.log.last_sequence(), FRESHNESS).await?;
        let until = self.view.position();
        let mut page = Page { consignments: Vec::new(), next: None };
        let mut bytes = 0;
        let mut scanned = 0;
        let mut from = query.after.map_or(1, |after| after.sequence);
        loop {
            let read = Read {
                from,
                vessel_id: query.filter.vessel_id.as_deref(),
                batch: MAX_BATCH,
                max_bytes: Some(query.max_bytes),
                until,
            };
            let events = self.read_whole(read).await?;
            let Some(last) = events.last() else { return Ok(page) };
            let (last_sequence, more) = (last.sequence, last.pending > 0);
            for message in events {
                if message.sequence > until {
                    return Ok(page);
                }
                let event: ConsignmentsCreated = shared::store::decode("a created event", &message.payload)?;
                for (entry, created) in event.consignments.into_iter().enumerate() {
                    let location =
                        Location { sequence: message.sequence, entry: u32::try_from(entry).unwrap_or(u32::MAX) };
                    if query.after.is_some_and(|after| location <= after) {
                        continue;
                    }
                    scanned += 1;
                    let consignment = created.consignment;
                    if self.view.read(|view| view.counts(&consignment.id, location))
                        && query.filter.matches(&consignment)
                    {
                        // As the reply encodes it, and a comma; the caller leaves room
                        // in max_bytes for the reply's envelope.
                        // At least one, so that paging always moves on.
                        let size = shared::codec::encode(&consignment).len() + 1;
                        if bytes + size > query.max_bytes && !page.consignments.is_empty() {
                            return Ok(page);
                        }
                        bytes += size;
                        page.consignments.push(consignment);
                    }
                    page.next = Some(location);
                    if page.consignments.len() == query.limit {
                        return Ok(page);
                    }
                }
            }
            if !more || last_sequence >= until || scanned >= SCAN_LIMIT {
                if !more || last_sequence >= until {
                    page.next = None;
                }
                return Ok(page);
            }
            from = last_sequence + 1;
        }
    }
}
