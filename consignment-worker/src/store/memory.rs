//! [`EventLog`] in memory, for tests and fuzzing without NATS, in the manner of
//! wadm's `TestStore`: the same append rule as JetStream's (the subject's last
//! sequence must be the one expected), and followers fed each event as it is
//! appended, unless a test holds one back to play a lagging instance; reads can
//! be answered as by a replica that lacks the newest event.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use shared::{projection::Projection, store::Event, subjects::consignment};

use super::{AppendError, EventLog, Read, StoreError, StoredMessage};
use crate::consignments::Consignments;

/// The event stream in memory.
#[derive(Debug, Default)]
pub struct MemoryLog {
    state: Mutex<State>,
    /// Appends refused so far (another writer came first), for tests to wait on.
    refused: tokio::sync::watch::Sender<usize>,
    /// Events appended so far, likewise.
    appended: tokio::sync::watch::Sender<usize>,
}

#[derive(Debug, Default)]
struct State {
    events: Vec<Event>,
    last: HashMap<String, u64>,
    followers: Vec<Follower>,
    /// Reads still to answer as a replica lacking the newest event would.
    short_reads: usize,
}

#[derive(Debug)]
struct Follower {
    projection: Arc<Projection<Consignments>>,
    /// Events delivered so far.
    delivered: usize,
    held: bool,
}

impl MemoryLog {
    /// Feeds `projection` every event, those appended so far first; returns its
    /// number, for [`MemoryLog::hold`].
    pub fn follow(&self, projection: Arc<Projection<Consignments>>) -> usize {
        let mut state = self.lock();
        state.followers.push(Follower { projection, delivered: 0, held: false });
        state.deliver();
        state.followers.len() - 1
    }

    /// Holds back (or, with `held` false, catches up and resumes) follower `follower`.
    pub fn hold(&self, follower: usize, held: bool) {
        let mut state = self.lock();
        state.followers[follower].held = held;
        state.deliver();
    }

    /// Answers the next `reads` reads as a replica that lacks the newest event
    /// would: without it, and saying nothing more matches.
    pub fn answer_short(&self, reads: usize) {
        self.lock().short_reads = reads;
    }

    /// Appends `event` on `subject` as any writer would, guarded like
    /// [`EventLog::append`]: for events other than creates.
    pub fn append_event(&self, subject: &str, expected: u64, payload: Bytes) -> Result<u64, AppendError> {
        let mut state = self.lock();
        let last = state.last.get(subject).copied().unwrap_or(0);
        if last != expected {
            self.refused.send_modify(|refused| *refused += 1);
            return Err(AppendError::Conflict(subject.to_owned()));
        }
        let sequence = u64::try_from(state.events.len()).unwrap_or(u64::MAX) + 1;
        let time_ms = crate::create::now_ms();
        state.events.push(Event { sequence, subject: subject.to_owned(), time_ms, payload });
        state.last.insert(subject.to_owned(), sequence);
        state.deliver();
        self.appended.send_replace(state.events.len());
        Ok(sequence)
    }

    /// Waits until `count` appends have been refused in all.
    pub async fn refused(&self, count: usize) {
        let mut refused = self.refused.subscribe();
        drop(refused.wait_for(|refused| *refused >= count).await);
    }

    /// Waits until `count` events have been appended in all.
    pub async fn appended(&self, count: usize) {
        let mut appended = self.appended.subscribe();
        drop(appended.wait_for(|appended| *appended >= count).await);
    }

    /// Every event appended, in order.
    pub fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("never poisoned")
    }
}

impl State {
    fn deliver(&mut self) {
        for follower in self.followers.iter_mut().filter(|follower| !follower.held) {
            follower.projection.apply(&self.events[follower.delivered..]);
            follower.delivered = self.events.len();
        }
    }
}

impl EventLog for MemoryLog {
    async fn append(&self, vessel_id: &str, expected: u64, event: Bytes) -> Result<u64, AppendError> {
        self.append_event(&consignment::created_event(vessel_id), expected, event)
    }

    async fn last_sequence(&self) -> Result<u64, StoreError> {
        Ok(u64::try_from(self.lock().events.len()).unwrap_or(u64::MAX))
    }

    async fn read(&self, read: Read<'_>) -> Result<Vec<StoredMessage>, StoreError> {
        let Read { from, vessel_id, batch, .. } = read;
        let wanted = |subject: &str| match vessel_id {
            Some(vessel_id) => subject == consignment::created_event(vessel_id),
            None => consignment::created_vessel(subject).is_some(),
        };
        let mut state = self.lock();
        let held = state.events.len() - usize::from(state.short_reads > 0 && !state.events.is_empty());
        state.short_reads = state.short_reads.saturating_sub(1);
        let matching: Vec<&Event> =
            state.events[..held].iter().filter(|event| event.sequence >= from && wanted(&event.subject)).collect();
        let total = matching.len();
        Ok(matching
            .into_iter()
            .take(batch)
            .enumerate()
            .map(|(n, event)| StoredMessage {
                subject: event.subject.clone(),
                sequence: event.sequence,
                payload: event.payload.clone(),
                pending: u64::try_from(total - n - 1).unwrap_or(0),
            })
            .collect())
    }
}
