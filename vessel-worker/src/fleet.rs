//! Vessels and the booking arithmetic: pure domain logic, no I/O.
//!
//! A vessel fits a load when it is available and its *remaining* capacity and
//! weight (capacity less what is booked) take it. Booking a consignment counts its
//! load on the vessel and leaves a [`Hold`] beside the count, naming the consignment
//! and the booking attempt. The hold is what makes a repeated booking count once:
//! until the booking is recorded and the hold [settled](VesselRecord::settle), any
//! attempt for the same consignment finds it instead of counting again. Holds exist
//! only while bookings are in flight, so the record's size never grows with the
//! number of consignments on the vessel.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use shared::model::{Load, NewVessel, Vessel};

/// Why the fleet cannot do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    #[error("no vessel available")]
    NoVesselAvailable,
    #[error("vessel {0} exists already")]
    Duplicate(String),
    #[error("invalid vessel: {0}")]
    Invalid(&'static str),
}

/// A booking in flight: counted in the vessel's `booked`, not yet settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub load: Load,
    /// The booking attempt that placed it.
    pub attempt: String,
}

/// Where a consignment is booked: the record that makes a booking final.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    pub vessel_id: String,
    pub load: Load,
    /// The attempt whose hold carries the count; any other hold for the same
    /// consignment is a duplicate and is given back.
    pub attempt: String,
}

/// A vessel as stored: the vessel and the holds of its bookings in flight, by consignment id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VesselRecord {
    #[serde(flatten)]
    pub vessel: Vessel,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub holds: BTreeMap<String, Hold>,
}

impl VesselRecord {
    /// A vessel with nothing booked, if it is valid.
    pub fn new(vessel: NewVessel) -> Result<Self, FleetError> {
        validate(&vessel)?;
        Ok(Self { vessel: vessel.into_vessel(), holds: BTreeMap::new() })
    }

    /// Whether it can take `load` on top of what is booked.
    pub fn fits(&self, load: Load) -> bool {
        let remaining = self.vessel.remaining();
        self.vessel.available && remaining.containers >= load.containers && remaining.weight >= load.weight
    }

    /// Books `load` for `consignment` in `attempt`: counts it and holds it. Returns
    /// false, changing nothing, when it does not fit.
    pub fn hold(&mut self, consignment: &str, load: Load, attempt: &str) -> bool {
        if !self.fits(load) {
            return false;
        }
        self.vessel.booked.containers += load.containers;
        self.vessel.booked.weight += load.weight;
        self.holds.insert(consignment.to_owned(), Hold { load, attempt: attempt.to_owned() });
        true
    }

    /// Settles the hold of `consignment` against its recorded `booking`: the hold
    /// the booking names keeps its count and is dropped as a marker; any other is a
    /// duplicate, and its load is given back. Returns whether anything changed.
    pub fn settle(&mut self, consignment: &str, booking: &Booking) -> bool {
        let Some(hold) = self.holds.remove(consignment) else {
            return false;
        };
        if booking.vessel_id != self.vessel.id || booking.attempt != hold.attempt {
            // A hold's load is in `booked`, so this never goes below zero; saturating
            // keeps a damaged record from panicking the vessel writer.
            self.vessel.booked.containers = self.vessel.booked.containers.saturating_sub(hold.load.containers);
            self.vessel.booked.weight = self.vessel.booked.weight.saturating_sub(hold.load.weight);
        }
        true
    }
}

/// The fleet a vessel-worker seeds when none is stored and no fleet file is given.
///
/// # Panics
/// Never: the built-in fleet is valid, as a unit test checks.
pub fn default_fleet() -> Vec<VesselRecord> {
    let vessel = |id: &str, name: &str, capacity, max_weight| NewVessel {
        id: id.to_owned(),
        capacity,
        max_weight,
        name: name.to_owned(),
        available: true,
        owner_id: String::new(),
    };
    new_fleet(vec![
        vessel("vessel001", "Boaty McBoatface", 500, 200_000),
        vessel("vessel002", "Seawise Giant", 2_000, 560_000),
    ])
    .expect("the default fleet is valid")
}

/// A fleet of `vessels`, each valid and with a distinct id.
pub fn new_fleet(vessels: Vec<NewVessel>) -> Result<Vec<VesselRecord>, FleetError> {
    let mut fleet: Vec<VesselRecord> = Vec::with_capacity(vessels.len());
    for vessel in vessels {
        if fleet.iter().any(|known| known.vessel.id == vessel.id) {
            return Err(FleetError::Duplicate(vessel.id));
        }
        fleet.push(VesselRecord::new(vessel)?);
    }
    Ok(fleet)
}

/// The first vessel of `fleet`, in id order, that fits `load`; `record` finds the
/// vessel in an entry.
pub fn first_fit<T>(fleet: &[T], record: impl Fn(&T) -> &VesselRecord, load: Load) -> Option<&T> {
    fleet.iter().filter(|entry| record(entry).fits(load)).min_by(|a, b| record(a).vessel.id.cmp(&record(b).vessel.id))
}

/// The vessel of `fleet` holding space for `consignment`, and the attempt that placed the hold.
pub fn find_hold<'a, T>(
    fleet: &'a [T],
    record: impl Fn(&T) -> &VesselRecord,
    consignment: &str,
) -> Option<(&'a T, String)> {
    fleet.iter().find_map(|entry| record(entry).holds.get(consignment).map(|hold| (entry, hold.attempt.clone())))
}

fn validate(vessel: &NewVessel) -> Result<(), FleetError> {
    if vessel.id.trim().is_empty() {
        return Err(FleetError::Invalid("id must not be empty"));
    }
    // Ids are keys in the vessels bucket: NATS subject tokens.
    if !shared::store::is_key(&vessel.id) {
        return Err(FleetError::Invalid("id may hold only letters, digits, '-' and '_', at most 128 of them"));
    }
    if vessel.name.trim().is_empty() {
        return Err(FleetError::Invalid("name must not be empty"));
    }
    if vessel.name.chars().any(char::is_control) || vessel.owner_id.chars().any(char::is_control) {
        return Err(FleetError::Invalid("name and owner_id must not hold control characters"));
    }
    if vessel.capacity == 0 {
        return Err(FleetError::Invalid("capacity must be greater than zero"));
    }
    if vessel.max_weight == 0 {
        return Err(FleetError::Invalid("max_weight must be greater than zero"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(containers: u32, weight: u64) -> Load {
        Load { containers, weight }
    }

    fn record(id: &str, capacity: u32, max_weight: u64, available: bool) -> VesselRecord {
        VesselRecord::new(NewVessel {
            id: id.into(),
            capacity,
            max_weight,
            name: id.into(),
            available,
            owner_id: String::new(),
        })
        .unwrap()
    }

    fn booking(vessel_id: &str, attempt: &str) -> Booking {
        Booking { vessel_id: vessel_id.into(), load: load(3, 30), attempt: attempt.into() }
    }

    #[test]
    fn seed_consignment_gets_boaty_mcboatface() {
        let fleet = default_fleet();
        let found = first_fit(&fleet, |r| r, load(3, 55_000)).unwrap();
        assert_eq!((found.vessel.id.as_str(), found.vessel.name.as_str()), ("vessel001", "Boaty McBoatface"));
    }

    #[test]
    fn exact_fit_is_a_fit_and_one_more_is_not() {
        let vessel = record("a", 3, 100, true);
        assert!(vessel.fits(load(3, 100)));
        assert!(!vessel.fits(load(4, 100)));
        assert!(!vessel.fits(load(3, 101)));
    }

    #[test]
    fn first_fitting_available_vessel_in_id_order_wins() {
        let fleet = [
            record("d", 20, 2_000, true),
            record("b", 10, 1_000, false),
            record("c", 10, 1_000, true),
            record("a", 1, 10, true),
        ];
        assert_eq!(first_fit(&fleet, |r| r, load(5, 500)).unwrap().vessel.id, "c");
        assert!(first_fit(&fleet, |r| r, load(50, 1)).is_none());
    }

    #[test]
    fn holding_counts_the_load_against_what_remains() {
        let mut vessel = record("a", 5, 100, true);
        assert!(vessel.hold("c1", load(3, 60), "t1"));
        assert_eq!(vessel.vessel.remaining(), load(2, 40));
        assert!(!vessel.hold("c2", load(3, 10), "t2"), "only 2 containers remain");
        assert!(vessel.hold("c2", load(2, 40), "t2"));
        assert!(!vessel.fits(load(0, 1)), "full");
        assert_eq!(vessel.holds.len(), 2);
        let fleet = [record("b", 1, 1, true), vessel];
        let (found, attempt) = find_hold(&fleet, |r| r, "c2").unwrap();
        assert_eq!((found.vessel.id.as_str(), attempt.as_str()), ("a", "t2"));
        assert!(find_hold(&fleet, |r| r, "c3").is_none());
    }

    #[test]
    fn settling_the_recorded_hold_keeps_its_count_and_drops_the_marker() {
        let mut vessel = record("a", 5, 100, true);
        vessel.hold("c1", load(3, 30), "t1");
        assert!(vessel.settle("c1", &booking("a", "t1")));
        assert!(vessel.holds.is_empty());
        assert_eq!(vessel.vessel.booked, load(3, 30));
        assert!(!vessel.settle("c1", &booking("a", "t1")), "settling twice changes nothing");
    }

    #[test]
    fn settling_a_duplicate_hold_gives_its_load_back() {
        let mut vessel = record("a", 5, 100, true);
        vessel.hold("c1", load(3, 30), "t2");
        assert!(vessel.settle("c1", &booking("a", "t1")), "another attempt's hold was recorded");
        assert_eq!(vessel.vessel.booked, load(0, 0));
        vessel.hold("c1", load(3, 30), "t1");
        assert!(vessel.settle("c1", &booking("b", "t1")), "recorded on another vessel");
        assert_eq!(vessel.vessel.booked, load(0, 0));
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let vessel = |id: &str| NewVessel {
            id: id.into(),
            capacity: 1,
            max_weight: 1,
            name: "n".into(),
            available: true,
            owner_id: String::new(),
        };
        assert_eq!(new_fleet(vec![vessel("a"), vessel("a")]), Err(FleetError::Duplicate("a".into())));
    }

    #[test]
    fn vessels_that_carry_nothing_or_have_bad_ids_are_refused() {
        let invalid = |capacity, max_weight, id: &str, name: &str| {
            VesselRecord::new(NewVessel {
                id: id.into(),
                capacity,
                max_weight,
                name: name.into(),
                available: true,
                owner_id: String::new(),
            })
            .unwrap_err()
        };
        assert!(matches!(invalid(0, 1, "a", "n"), FleetError::Invalid(_)));
        assert!(matches!(invalid(1, 0, "a", "n"), FleetError::Invalid(_)));
        assert!(matches!(invalid(1, 1, " ", "n"), FleetError::Invalid(_)));
        assert!(matches!(invalid(1, 1, "dup\nid", "n"), FleetError::Invalid(_)));
        assert!(matches!(invalid(1, 1, "a.b", "n"), FleetError::Invalid(_)));
        assert!(matches!(invalid(1, 1, "a", "bad\u{7}name"), FleetError::Invalid(_)));
    }
}
