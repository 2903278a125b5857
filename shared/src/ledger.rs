//! The booking ledger: what the event stream says is booked on each vessel, and
//! which create each idempotency key stands for. Pure domain logic, no I/O: both
//! workers fold the `consignment.created.<vessel_id>` events into one, in stream
//! order, and so agree on every booking.
//!
//! The rules (see also [`crate::store`], "Sequence rules"):
//!
//! * An entry counts its consignment's load on the vessel its event names.
//! * An entry whose idempotency key is already held by an earlier entry, within
//!   the idempotency window (measured by the server's timestamps, so every ledger
//!   measures alike), is **void**: it counts nothing. This only happens when two
//!   instances took the same key at once and booked it onto different vessels; the
//!   first in stream order is the create, and both requesters are answered with it.
//! * Each vessel's last event sequence is kept: it is what the next append onto
//!   that vessel must name (`Nats-Expected-Last-Subject-Sequence`).

use std::{
    collections::{HashMap, VecDeque},
    time::Duration,
};

use serde::{Deserialize, de::IgnoredAny};
use uuid::Uuid;

use crate::model::{Idempotency, Load};

/// What is booked on one vessel, and the sequence of its last booking event (0: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VesselBookings {
    pub booked: Load,
    pub last_sequence: u64,
}

/// The create an idempotency key stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRecord {
    pub consignment: Uuid,
    pub fingerprint: Uuid,
    /// When its event was stored, in milliseconds since the Unix epoch.
    pub time_ms: u64,
}

/// The part of a [`CreatedEntry`](crate::model::CreatedEntry) a ledger reads: the
/// rest of the consignment is skipped unread.
#[derive(Debug, Clone, Deserialize)]
pub struct EntryView {
    pub consignment: ConsignmentView,
    #[serde(default)]
    pub idempotency: Option<Idempotency>,
}

impl From<&crate::model::CreatedEntry> for EntryView {
    fn from(entry: &crate::model::CreatedEntry) -> Self {
        let consignment = ConsignmentView {
            id: entry.consignment.id.clone(),
            weight: entry.consignment.weight,
            containers: vec![IgnoredAny; entry.consignment.containers.len()],
        };
        Self { consignment, idempotency: entry.idempotency.clone() }
    }
}

/// The id and load of a consignment in an event.
#[derive(Debug, Clone, Deserialize)]
pub struct ConsignmentView {
    pub id: String,
    pub weight: u64,
    containers: Vec<IgnoredAny>,
}

impl ConsignmentView {
    pub fn load(&self) -> Load {
        Load { containers: u32::try_from(self.containers.len()).unwrap_or(u32::MAX), weight: self.weight }
    }
}

/// The entries of a `consignment.created.<vessel_id>` event, as a ledger reads them.
#[derive(Debug, Clone, Deserialize)]
pub struct EventView {
    pub consignments: Vec<EntryView>,
}

/// Bookings per vessel and idempotency keys, folded from the event stream.
#[derive(Debug, Clone)]
pub struct Ledger {
    position: u64,
    window_ms: u64,
    vessels: HashMap<String, VesselBookings>,
    keys: HashMap<Uuid, KeyRecord>,
    /// Keys in the order they were taken, to forget them once out of the window.
    taken: VecDeque<(u64, Uuid)>,
}

impl Ledger {
    /// An empty ledger that remembers idempotency keys for `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            position: 0,
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            vessels: HashMap::new(),
            keys: HashMap::new(),
            taken: VecDeque::new(),
        }
    }

    /// The sequence of the last event taken in.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Takes in a created event at `sequence` on `vessel_id` that cannot be read
    /// (only the admin could have written one): it books nothing, but it is the
    /// vessel's last event, which the next append must name.
    pub fn touch(&mut self, sequence: u64, vessel_id: &str) {
        self.apply(sequence, 0, vessel_id, &[]);
    }

    /// Takes in the event at `sequence`, stored at `time_ms`, booking `entries`
    /// onto `vessel_id`. Returns, for each entry, whether it counts (false: void, a
    /// repeat of an idempotency key taken by an earlier entry). An event at or
    /// before the position is taken in already and changes nothing (all false).
    pub fn apply(&mut self, sequence: u64, time_ms: u64, vessel_id: &str, entries: &[EntryView]) -> Vec<bool> {
        if sequence <= self.position {
            return vec![false; entries.len()];
        }
        self.position = sequence;
        self.forget_before(time_ms);
        let mut counted = Vec::with_capacity(entries.len());
        let mut load = Load::default();
        for entry in entries {
            let counts = match &entry.idempotency {
                None => true,
                Some(Idempotency { key, fingerprint }) => {
                    if self.key(key, time_ms).is_some() {
                        false
                    } else {
                        let consignment = Uuid::parse_str(&entry.consignment.id).unwrap_or_default();
                        self.keys.insert(*key, KeyRecord { consignment, fingerprint: *fingerprint, time_ms });
                        self.taken.push_back((time_ms, *key));
                        true
                    }
                }
            };
            if counts {
                let add = entry.consignment.load();
                load.containers = load.containers.saturating_add(add.containers);
                load.weight = load.weight.saturating_add(add.weight);
            }
            counted.push(counts);
        }
        let vessel = self.vessels.entry(vessel_id.to_owned()).or_default();
        vessel.booked.containers = vessel.booked.containers.saturating_add(load.containers);
        vessel.booked.weight = vessel.booked.weight.saturating_add(load.weight);
        vessel.last_sequence = sequence;
        counted
    }

    /// What is booked on `vessel_id`, and its last booking event.
    pub fn vessel(&self, vessel_id: &str) -> VesselBookings {
        self.vessels.get(vessel_id).copied().unwrap_or_default()
    }

    /// The create `key` stands for, if it was taken within the window before `now_ms`.
    pub fn key(&self, key: &Uuid, now_ms: u64) -> Option<KeyRecord> {
        self.keys.get(key).copied().filter(|record| record.time_ms.saturating_add(self.window_ms) > now_ms)
    }

    /// How many idempotency keys are remembered.
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    /// Forgets the keys taken a whole window before `now_ms`.
    fn forget_before(&mut self, now_ms: u64) {
        while let Some(&(time_ms, key)) = self.taken.front() {
            if time_ms.saturating_add(self.window_ms) > now_ms {
                break;
            }
            self.taken.pop_front();
            if self.keys.get(&key).is_some_and(|record| record.time_ms == time_ms) {
                self.keys.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn entry(id: Uuid, containers: usize, weight: u64, key: Option<(u128, u128)>) -> EntryView {
        let json = serde_json::json!({
            "consignment": {"id": id.to_string(), "weight": weight, "containers": vec![serde_json::json!({}); containers]},
            "idempotency": key.map(|(key, fingerprint)| serde_json::json!({
                "key": Uuid::from_u128(key), "fingerprint": Uuid::from_u128(fingerprint)
            })),
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn entries_count_their_load_on_the_vessel_and_the_event_is_its_last_sequence() {
        let mut ledger = Ledger::new(HOUR);
        let counted =
            ledger.apply(3, 0, "v1", &[entry(Uuid::new_v4(), 3, 50, None), entry(Uuid::new_v4(), 1, 5, None)]);
        assert_eq!(counted, [true, true]);
        assert_eq!(
            ledger.vessel("v1"),
            VesselBookings { booked: Load { containers: 4, weight: 55 }, last_sequence: 3 }
        );
        assert_eq!(ledger.vessel("v2"), VesselBookings::default());
        assert_eq!(ledger.position(), 3);
    }

    #[test]
    fn an_event_taken_in_already_changes_nothing() {
        let mut ledger = Ledger::new(HOUR);
        let event = [entry(Uuid::new_v4(), 1, 1, None)];
        ledger.apply(1, 0, "v1", &event);
        assert_eq!(ledger.apply(1, 0, "v1", &event), [false]);
        assert_eq!(ledger.vessel("v1").booked.containers, 1);
    }

    #[test]
    fn a_repeated_key_is_void_on_any_vessel_within_the_window_and_counts_after_it() {
        let mut ledger = Ledger::new(Duration::from_secs(1));
        let first = Uuid::new_v4();
        assert_eq!(ledger.apply(1, 100, "v1", &[entry(first, 2, 10, Some((7, 1)))]), [true]);
        // The same key, racing on another instance onto another vessel: void.
        assert_eq!(ledger.apply(2, 200, "v2", &[entry(Uuid::new_v4(), 2, 10, Some((7, 1)))]), [false]);
        assert_eq!(ledger.vessel("v2").booked, Load::default());
        assert_eq!(ledger.vessel("v2").last_sequence, 2, "a void event still moves the subject's sequence");
        assert_eq!(ledger.key(&Uuid::from_u128(7), 500).map(|record| record.consignment), Some(first));
        // Out of the window, the key is forgotten and may be used again.
        assert_eq!(ledger.key(&Uuid::from_u128(7), 1100), None);
        assert_eq!(ledger.apply(3, 1100, "v1", &[entry(Uuid::new_v4(), 1, 1, Some((7, 2)))]), [true]);
        assert_eq!(ledger.keys(), 1);
    }

    #[test]
    fn one_event_may_hold_a_key_twice_and_counts_it_once() {
        let mut ledger = Ledger::new(HOUR);
        let counted = ledger.apply(
            1,
            0,
            "v1",
            &[entry(Uuid::new_v4(), 1, 1, Some((9, 1))), entry(Uuid::new_v4(), 1, 1, Some((9, 2)))],
        );
        assert_eq!(counted, [true, false]);
        assert_eq!(ledger.vessel("v1").booked.containers, 1);
    }

    #[test]
    fn rebuilding_from_the_same_events_gives_the_same_ledger() {
        let events: Vec<(u64, &str, Vec<EntryView>)> = (1..=50)
            .map(|sequence| {
                let vessel = if sequence % 3 == 0 { "v1" } else { "v2" };
                let key = (sequence % 7 == 0).then_some((u128::from(sequence % 14), 1));
                (sequence, vessel, vec![entry(Uuid::new_v4(), 1, sequence, key)])
            })
            .collect();
        let fold = || {
            let mut ledger = Ledger::new(HOUR);
            for (sequence, vessel, entries) in &events {
                ledger.apply(*sequence, *sequence, vessel, entries);
            }
            (ledger.vessel("v1"), ledger.vessel("v2"), ledger.keys())
        };
        assert_eq!(fold(), fold());
    }
}
