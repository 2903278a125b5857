//! The consignment-worker's projection of the event stream: the booking [`Ledger`]
//! (what each vessel carries, each vessel's last event, the idempotency keys) and
//! where each consignment is stored. Pure domain logic, no I/O.
//!
//! The consignments themselves stay in the stream: the projection keeps only
//! their place (event sequence, entry), so its memory grows by a few dozen bytes per
//! consignment, and a get reads the one event holding it.

use std::{collections::HashMap, time::Duration};

use shared::{
    ledger::{EventView, KeyRecord, Ledger, VesselBookings},
    projection::Fold,
    store::Event,
    subjects::consignment,
};
use uuid::Uuid;

/// Where a consignment is stored: the event, and its entry in that event; in
/// stream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub sequence: u64,
    pub entry: u32,
}

/// Bookings, idempotency keys, where every consignment is, and which events hold
/// consignments.
#[derive(Debug)]
pub struct Consignments {
    ledger: Ledger,
    places: HashMap<Uuid, Location>,
    /// The sequences of the created events, in stream order: of every vessel, and
    /// by vessel. What a read of the stream must return (see [`Self::created_events`]).
    events: Vec<u64>,
    events_by_vessel: HashMap<String, Vec<u64>>,
}

impl Consignments {
    /// Nothing yet, remembering idempotency keys for `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            ledger: Ledger::new(window),
            places: HashMap::new(),
            events: Vec::new(),
            events_by_vessel: HashMap::new(),
        }
    }

    /// The sequences of the created events (onto `vessel_id`, if given) from `from`
    /// to `to`, in order: what a read of that part of the stream returns from a
    /// replica that holds it all.
    pub fn created_events(&self, vessel_id: Option<&str>, from: u64, to: u64) -> &[u64] {
        let events = match vessel_id {
            Some(vessel_id) => self.events_by_vessel.get(vessel_id).map_or(&[][..], Vec::as_slice),
            None => &self.events,
        };
        let start = events.partition_point(|&sequence| sequence < from);
        let end = events.partition_point(|&sequence| sequence <= to).max(start);
        &events[start..end]
    }

    /// Notes the created event at `sequence` onto `vessel_id` (in stream order).
    fn note_event(&mut self, sequence: u64, vessel_id: &str) {
        if self.events.last().is_some_and(|&last| last >= sequence) {
            return;
        }
        self.events.push(sequence);
        self.events_by_vessel.entry(vessel_id.to_owned()).or_default().push(sequence);
    }

    /// Takes in the created event at `sequence`, stored at `time_ms`, onto `vessel_id`.
    pub fn take_in(&mut self, sequence: u64, time_ms: u64, vessel_id: &str, event: &EventView) {
        let counted = self.ledger.apply(sequence, time_ms, vessel_id, &event.consignments);
        for (entry, (view, counts)) in event.consignments.iter().zip(counted).enumerate() {
            let Ok(id) = Uuid::parse_str(&view.consignment.id) else { continue };
            if counts {
                let entry = u32::try_from(entry).unwrap_or(u32::MAX);
                self.places.entry(id).or_insert(Location { sequence, entry });
            }
        }
    }

    /// Where consignment `id` is stored, if it is (a void entry is not).
    pub fn location(&self, id: &Uuid) -> Option<Location> {
        self.places.get(id).copied()
    }

    /// Whether the entry at `location` is the stored consignment `id`: false for a
    /// void entry, which lists nowhere.
    pub fn counts(&self, id: &str, location: Location) -> bool {
        Uuid::parse_str(id).is_ok_and(|id| self.location(&id) == Some(location))
    }

    /// What is booked on `vessel_id`, and its last event.
    pub fn vessel(&self, vessel_id: &str) -> VesselBookings {
        self.ledger.vessel(vessel_id)
    }

    /// The create `key` stands for, if it was taken within the window before `now_ms`.
    pub fn key(&self, key: &Uuid, now_ms: u64) -> Option<KeyRecord> {
        self.ledger.key(key, now_ms)
    }

    /// How many consignments are stored.
    pub fn len(&self) -> usize {
        self.places.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.places.is_empty()
    }
}

impl Fold for Consignments {
    fn apply(&mut self, event: &Event) {
        // Vessels added are the vessel-worker's; only their sequence is passed over.
        if let Some(vessel_id) = consignment::created_vessel(&event.subject) {
            self.note_event(event.sequence, vessel_id);
            match shared::projection::decode::<EventView>(event) {
                Some(created) => self.take_in(event.sequence, event.time_ms, vessel_id, &created),
                None => self.ledger.touch(event.sequence, vessel_id),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(entries: &[(Uuid, Option<u128>)]) -> EventView {
        let consignments: Vec<serde_json::Value> = entries
            .iter()
            .map(|(id, key)| {
                serde_json::json!({
                    "consignment": {"id": id.to_string(), "weight": 10, "containers": [{}]},
                    "idempotency": key.map(|key| serde_json::json!({"key": Uuid::from_u128(key), "fingerprint": Uuid::nil()})),
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({ "consignments": consignments })).unwrap()
    }

    #[test]
    fn every_counted_consignment_is_found_where_it_is_stored() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut consignments = Consignments::new(Duration::from_secs(60));
        consignments.take_in(4, 0, "v1", &event(&[(a, None), (b, Some(1))]));
        assert_eq!(consignments.location(&b), Some(Location { sequence: 4, entry: 1 }));
        assert!(consignments.counts(&a.to_string(), Location { sequence: 4, entry: 0 }));
        assert_eq!(consignments.vessel("v1").booked.containers, 2);
        assert_eq!(consignments.key(&Uuid::from_u128(1), 0).unwrap().consignment, b);
    }

    #[test]
    fn a_void_repeat_of_a_key_is_stored_nowhere_and_books_nothing() {
        let (first, repeat) = (Uuid::new_v4(), Uuid::new_v4());
        let mut consignments = Consignments::new(Duration::from_secs(60));
        consignments.take_in(1, 0, "v1", &event(&[(first, Some(5))]));
        consignments.take_in(2, 10, "v2", &event(&[(repeat, Some(5))]));
        assert_eq!(consignments.location(&repeat), None);
        assert!(!consignments.counts(&repeat.to_string(), Location { sequence: 2, entry: 0 }));
        assert_eq!(consignments.vessel("v2").booked.containers, 0);
        assert_eq!(consignments.vessel("v2").last_sequence, 2);
        assert_eq!(consignments.len(), 1);
    }

    #[test]
    fn the_created_events_a_read_must_return_are_known_by_vessel_and_in_all() {
        let mut consignments = Consignments::new(Duration::from_secs(60));
        for (sequence, vessel) in [(2, "v1"), (3, "v2"), (5, "v1"), (5, "v1"), (8, "v2")] {
            let created = |entry: u8| {
                Event {
                sequence,
                subject: consignment::created_event(vessel),
                time_ms: 0,
                payload: serde_json::to_vec(&serde_json::json!({"consignments": [{"consignment": {"id": Uuid::from_u128(u128::from(entry)), "weight": 1, "containers": []}}]})).unwrap().into(),
            }
            };
            consignments.apply(&created(u8::try_from(sequence).unwrap()));
        }
        assert_eq!(consignments.created_events(None, 1, 8), [2, 3, 5, 8], "each event once");
        assert_eq!(consignments.created_events(None, 3, 7), [3, 5]);
        assert_eq!(consignments.created_events(Some("v1"), 1, 8), [2, 5]);
        assert_eq!(consignments.created_events(Some("v2"), 4, 8), [8]);
        assert_eq!(consignments.created_events(Some("v3"), 1, 8), [] as [u64; 0]);
        assert_eq!(consignments.created_events(None, 9, 4), [] as [u64; 0]);
    }
}
