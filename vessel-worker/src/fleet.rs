//! The fleet and the booking arithmetic: pure domain logic, no I/O.
//!
//! [`Fleet`] is the vessel-worker's projection of the event stream: every vessel
//! added (`vessel.added.<id>`) and, through the shared [`Ledger`], what the
//! `consignment.created.<id>` events have booked on each. A vessel fits a load
//! when it is available and its *remaining* capacity and weight (capacity less
//! what is booked) take it; a find answers with the first that fits, in id order.
//!
//! The first fit does not scan the fleet: vessels sit in id order at the leaves of
//! a tree whose every node keeps the most containers and the most weight any vessel
//! below it has left, so a search skips every subtree that cannot take the load;
//! about the logarithm of the fleet's size in steps, unless the room is split (some
//! vessels with containers to spare and no weight, others the reverse: a subtree
//! can then look as if it fits and hold no vessel that does).

use std::{collections::BTreeMap, fmt, time::Duration};

use shared::{
    ledger::{EventView, Ledger},
    model::{ListedVessel, Load, NewVessel, Vessel},
    projection::Fold,
    store::Event,
    subjects::{consignment, vessel},
};

/// Why the fleet cannot do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    /// No available vessel has room for the load: what was asked, and the most room left.
    #[error("{0}")]
    NoVesselAvailable(NoRoom),
    #[error("vessel {0} exists already")]
    Duplicate(String),
    #[error("invalid vessel: {0}")]
    Invalid(&'static str),
}

/// Why no vessel takes a load: the load asked for, and the most room the fleet has left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoRoom {
    /// The load asked for.
    pub asked: Load,
    /// The vessels with the most room left; `None` if no vessel is available.
    pub most: Option<MostRoom>,
    /// Whether every available vessel is full: none takes even 1 container of 1 kg
    /// (though some may have containers to spare and others weight). `false` if no
    /// vessel is available.
    pub full: bool,
}

/// The available vessel with the most containers left, and the one with the most
/// weight left (the first in id order of each; often the same vessel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MostRoom {
    pub containers: Room,
    pub weight: Room,
}

/// A vessel and what it can still take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub vessel_id: String,
    pub remaining: Load,
}

/// `n` containers, with the plural as it should be.
fn containers(n: u32) -> String {
    format!("{n} container{}", if n == 1 { "" } else { "s" })
}

/// For example:
///
/// ```text
/// no vessel available for 3 containers weighing 55000 kg: the most room left is on
/// vessel002: 2 containers and 40000 kg; add a vessel with `shippy vessel add`
/// ```
impl fmt::Display for NoRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Load { containers: asked, weight } = self.asked;
        write!(f, "no vessel available for {} weighing {weight} kg: ", containers(asked))?;
        match &self.most {
            None => f.write_str("no vessel is available")?,
            Some(_) if self.full => f.write_str("every available vessel is full")?,
            Some(MostRoom { containers: most, weight: heaviest }) if most.vessel_id == heaviest.vessel_id => {
                let Load { containers: left, weight } = most.remaining;
                write!(f, "the most room left is on {}: {} and {weight} kg", most.vessel_id, containers(left))?;
            }
            Some(MostRoom { containers: most, weight: heaviest }) => write!(
                f,
                "the most room left is {} on {} (with {} kg) and {} kg on {} (with {})",
                containers(most.remaining.containers),
                most.vessel_id,
                most.remaining.weight,
                heaviest.remaining.weight,
                heaviest.vessel_id,
                containers(heaviest.remaining.containers),
            )?,
        }
        f.write_str("; add a vessel with `shippy vessel add`")
    }
}

/// The fleet as the event stream has it so far.
#[derive(Debug)]
pub struct Fleet {
    vessels: BTreeMap<String, NewVessel>,
    ledger: Ledger,
    index: FitIndex,
}

impl Fleet {
    /// An empty fleet, remembering idempotency keys for `window` (see [`Ledger`]).
    pub fn new(window: Duration) -> Self {
        Self { vessels: BTreeMap::new(), ledger: Ledger::new(window), index: FitIndex::default() }
    }

    /// Adds `added`, unless a vessel with its id is known (the stream holds one
    /// event per vessel; a second is passed over).
    pub fn add(&mut self, added: NewVessel) {
        if !self.vessels.contains_key(&added.id) {
            self.vessels.insert(added.id.clone(), added);
            self.index.stale = true;
        }
    }

    /// Books the `entries` of a created event at `sequence` onto `vessel_id`.
    pub fn book(&mut self, sequence: u64, time_ms: u64, vessel_id: &str, event: &EventView) {
        self.ledger.apply(sequence, time_ms, vessel_id, &event.consignments);
        if let Some(vessel) = self.vessels.get(vessel_id) {
            let remaining = remaining(vessel, self.ledger.vessel(vessel_id).booked);
            self.index.set(vessel_id, remaining);
        }
    }

    /// The vessel `id` with what is booked on it.
    pub fn vessel(&self, id: &str) -> Option<Vessel> {
        self.vessels.get(id).map(|vessel| self.booked(vessel))
    }

    /// The first vessel, in id order, that fits `load`.
    ///
    /// # Panics
    /// If a vessel was added and the fleet not [settled](Fold::settle) since: the
    /// projection settles it before anyone reads.
    pub fn first_fit(&self, load: Load) -> Option<Vessel> {
        assert!(!self.index.stale, "a fleet is settled before it is read");
        let id = self.index.first_fit(load)?;
        self.vessel(id)
    }

    /// The first vessel, in id order, that fits `load`; if none does, why not:
    /// [`FleetError::NoVesselAvailable`] with the most room left in the fleet.
    pub fn find(&self, load: Load) -> Result<Vessel, FleetError> {
        self.first_fit(load).ok_or_else(|| {
            let most = self.most_room();
            let full = most.is_some() && self.first_fit(Load { containers: 1, weight: 1 }).is_none();
            FleetError::NoVesselAvailable(NoRoom { asked: load, most, full })
        })
    }

    /// The available vessels with the most containers and the most weight left, or
    /// `None` if no vessel is available: the root of the fit index holds both
    /// maxima, and a search finds the first vessel with both, else the first with each.
    ///
    /// # Panics
    /// If the fleet is not [settled](Fold::settle), as [`Fleet::first_fit`].
    pub fn most_room(&self) -> Option<MostRoom> {
        assert!(!self.index.stale, "a fleet is settled before it is read");
        let most = self.index.nodes.get(1).copied().flatten()?;
        let room = |load| {
            let id = self.index.first_fit(load)?;
            Some(Room { vessel_id: id.to_owned(), remaining: self.vessel(id)?.remaining() })
        };
        // One vessel with the most of both, if there is one; else the first with each.
        if let Some(both) = room(most) {
            return Some(MostRoom { containers: both.clone(), weight: both });
        }
        Some(MostRoom {
            containers: room(Load { containers: most.containers, weight: 0 })?,
            weight: room(Load { containers: 0, weight: most.weight })?,
        })
    }

    /// Up to `limit` vessels after id `after` (from the first without it), in id
    /// order, each with what is booked and what remains, and whether more follow.
    pub fn page(&self, after: Option<&str>, limit: usize) -> (Vec<ListedVessel>, bool) {
        use std::ops::Bound::{Excluded, Unbounded};
        let start = after.map_or(Unbounded, |after| Excluded(after.to_owned()));
        let mut vessels =
            self.vessels.range((start, Unbounded)).map(|(_, vessel)| ListedVessel::from(self.booked(vessel)));
        let page: Vec<ListedVessel> = vessels.by_ref().take(limit).collect();
        (page, vessels.next().is_some())
    }

    /// How many vessels the fleet has.
    pub fn len(&self) -> usize {
        self.vessels.len()
    }

    /// Whether the fleet has no vessel.
    pub fn is_empty(&self) -> bool {
        self.vessels.is_empty()
    }

    fn booked(&self, vessel: &NewVessel) -> Vessel {
        let mut booked = vessel.clone().into_vessel();
        booked.booked = self.ledger.vessel(&vessel.id).booked;
        booked
    }

    fn reindex(&mut self) {
        let remaining = self
            .vessels
            .values()
            .map(|vessel| (vessel.id.clone(), remaining(vessel, self.ledger.vessel(&vessel.id).booked)));
        self.index = FitIndex::build(remaining);
    }
}

impl Fold for Fleet {
    fn apply(&mut self, event: &Event) {
        if let Some(vessel_id) = consignment::created_vessel(&event.subject) {
            match shared::projection::decode::<EventView>(event) {
                Some(created) => self.book(event.sequence, event.time_ms, vessel_id, &created),
                None => self.ledger.touch(event.sequence, vessel_id),
            }
        } else if vessel::added_vessel(&event.subject).is_some()
            && let Some(added) = shared::projection::decode::<NewVessel>(event)
        {
            self.add(added);
        }
    }

    /// Rebuilds the fit index once after a run of events that added vessels.
    fn settle(&mut self) {
        if self.index.stale {
            self.reindex();
        }
    }
}

/// What `vessel` can still take with `booked` on it; `None` if it is not available.
fn remaining(vessel: &NewVessel, booked: Load) -> Option<Load> {
    vessel.available.then(|| Load {
        containers: vessel.capacity.saturating_sub(booked.containers),
        weight: vessel.max_weight.saturating_sub(booked.weight),
    })
}

/// A load fits in what remains.
fn fits(remaining: Option<Load>, load: Load) -> bool {
    remaining.is_some_and(|remaining| remaining.containers >= load.containers && remaining.weight >= load.weight)
}

/// Vessels in id order at the leaves of a complete binary tree; each node holds the
/// most containers and the most weight left on any vessel below it.
#[derive(Debug, Default)]
struct FitIndex {
    ids: Vec<String>,
    positions: std::collections::HashMap<String, usize>,
    /// Node `n`'s children are `2n` and `2n + 1`; leaves start at `leaves`.
    nodes: Vec<Option<Load>>,
    leaves: usize,
    /// A vessel was added since the tree was built.
    stale: bool,
}

impl FitIndex {
    fn build(remaining: impl Iterator<Item = (String, Option<Load>)>) -> Self {
        let (ids, loads): (Vec<String>, Vec<Option<Load>>) = remaining.unzip();
        let leaves = ids.len().next_power_of_two();
        let mut nodes = vec![None; 2 * leaves];
        nodes[leaves..leaves + loads.len()].copy_from_slice(&loads);
        for node in (1..leaves).rev() {
            nodes[node] = most(nodes[2 * node], nodes[2 * node + 1]);
        }
        let positions = ids.iter().enumerate().map(|(position, id)| (id.clone(), position)).collect();
        Self { ids, positions, nodes, leaves, stale: false }
    }

    fn set(&mut self, id: &str, remaining: Option<Load>) {
        if self.stale {
            return; // rebuilt before the next search
        }
        let Some(&position) = self.positions.get(id) else { return };
        let mut node = self.leaves + position;
        self.nodes[node] = remaining;
        while node > 1 {
            node /= 2;
            self.nodes[node] = most(self.nodes[2 * node], self.nodes[2 * node + 1]);
        }
    }

    fn first_fit(&self, load: Load) -> Option<&str> {
        self.search(1, load).map(|position| self.ids[position].as_str())
    }

    /// The leftmost leaf below `node` that fits `load`.
    fn search(&self, node: usize, load: Load) -> Option<usize> {
        if node >= self.nodes.len() || !fits(self.nodes[node], load) {
            return None;
        }
        if node >= self.leaves {
            let position = node - self.leaves;
            return (position < self.ids.len()).then_some(position);
        }
        self.search(2 * node, load).or_else(|| self.search(2 * node + 1, load))
    }
}

fn most(a: Option<Load>, b: Option<Load>) -> Option<Load> {
    match (a, b) {
        (Some(a), Some(b)) => Some(Load { containers: a.containers.max(b.containers), weight: a.weight.max(b.weight) }),
        (one, None) | (None, one) => one,
    }
}

/// The fleet a vessel-worker seeds when no fleet file is given.
///
/// # Panics
/// Never: the built-in fleet is valid, as a unit test checks.
pub fn default_fleet() -> Vec<NewVessel> {
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
pub fn new_fleet(vessels: Vec<NewVessel>) -> Result<Vec<NewVessel>, FleetError> {
    let mut ids = std::collections::HashSet::with_capacity(vessels.len());
    for vessel in &vessels {
        validate(vessel)?;
        if !ids.insert(vessel.id.as_str()) {
            return Err(FleetError::Duplicate(vessel.id.clone()));
        }
    }
    Ok(vessels)
}

/// A vessel added without an id gets a new one: a random UUID.
pub fn assign_id(vessel: &mut NewVessel) {
    if vessel.id.is_empty() {
        vessel.id = uuid::Uuid::new_v4().to_string();
    }
}

/// Checks the rules for a new vessel.
pub fn validate(vessel: &NewVessel) -> Result<(), FleetError> {
    if vessel.id.trim().is_empty() {
        return Err(FleetError::Invalid("id must not be empty"));
    }
    // Ids stand in the subjects of the vessel's events: NATS subject tokens.
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

    const HOUR: Duration = Duration::from_secs(3600);

    fn load(containers: u32, weight: u64) -> Load {
        Load { containers, weight }
    }

    fn new_vessel(id: &str, capacity: u32, max_weight: u64, available: bool) -> NewVessel {
        NewVessel { id: id.into(), capacity, max_weight, name: id.into(), available, owner_id: String::new() }
    }

    fn fleet(vessels: impl IntoIterator<Item = NewVessel>) -> Fleet {
        let mut fleet = Fleet::new(HOUR);
        for vessel in vessels {
            fleet.add(vessel);
        }
        fleet.settle();
        fleet
    }

    /// A created event booking one consignment of `load` (no key).
    fn created(load: Load) -> EventView {
        let containers = vec![serde_json::json!({}); load.containers as usize];
        serde_json::from_value(serde_json::json!({"consignments": [
            {"consignment": {"id": uuid::Uuid::new_v4().to_string(), "weight": load.weight, "containers": containers}}
        ]}))
        .unwrap()
    }

    #[test]
    fn seed_consignment_gets_boaty_mcboatface() {
        let fleet = fleet(default_fleet());
        let found = fleet.first_fit(load(3, 55_000)).unwrap();
        assert_eq!((found.id.as_str(), found.name.as_str()), ("vessel001", "Boaty McBoatface"));
    }

    #[test]
    fn exact_fit_is_a_fit_and_one_more_is_not() {
        let fleet = fleet([new_vessel("a", 3, 100, true)]);
        assert!(fleet.first_fit(load(3, 100)).is_some());
        assert!(fleet.first_fit(load(4, 100)).is_none());
        assert!(fleet.first_fit(load(3, 101)).is_none());
    }

    #[test]
    fn first_fitting_available_vessel_in_id_order_wins() {
        let fleet = fleet([
            new_vessel("d", 20, 2_000, true),
            new_vessel("b", 10, 1_000, false),
            new_vessel("c", 10, 1_000, true),
            new_vessel("a", 1, 10, true),
        ]);
        assert_eq!(fleet.first_fit(load(5, 500)).unwrap().id, "c");
        assert!(fleet.first_fit(load(50, 1)).is_none());
    }

    #[test]
    fn bookings_count_against_what_remains_until_the_vessel_is_full() {
        let mut fleet = fleet([new_vessel("a", 5, 100, true), new_vessel("b", 9, 900, true)]);
        fleet.book(1, 0, "a", &created(load(3, 60)));
        assert_eq!(fleet.vessel("a").unwrap().remaining(), load(2, 40));
        assert_eq!(fleet.first_fit(load(3, 10)).unwrap().id, "b", "only 2 containers remain on a");
        fleet.book(2, 0, "a", &created(load(2, 40)));
        assert_eq!(fleet.first_fit(load(1, 1)).unwrap().id, "b", "a is full");
        fleet.book(2, 0, "a", &created(load(2, 40)));
        assert_eq!(fleet.vessel("a").unwrap().booked, load(5, 100), "an event taken in twice counts once");
    }

    #[test]
    fn no_fit_says_what_was_asked_and_the_most_room_left() {
        let asked = load(3, 55_000);
        let no_room = |fleet: &Fleet| match fleet.find(asked) {
            Err(FleetError::NoVesselAvailable(no_room)) => no_room,
            other => panic!("expected no room, got {other:?}"),
        };
        // No vessel at all, or none available.
        let empty = fleet([]);
        assert_eq!(no_room(&empty), NoRoom { asked, most: None, full: false });
        assert_eq!(
            no_room(&empty).to_string(),
            "no vessel available for 3 containers weighing 55000 kg: no vessel is available; \
             add a vessel with `shippy vessel add`"
        );
        assert_eq!(no_room(&fleet([new_vessel("off", 500, 200_000, false)])).most, None);

        // The most containers on one vessel, the most weight on another.
        let mut split = fleet([
            new_vessel("a", 2, 100, true),
            new_vessel("b", 10, 1_000, true),
            new_vessel("c", 1, 50_000, true),
            new_vessel("d", 10, 1_000, true),
            new_vessel("off", 500, 200_000, false),
        ]);
        let room = |id: &str, containers, weight| Room { vessel_id: id.into(), remaining: load(containers, weight) };
        assert_eq!(
            no_room(&split).most,
            Some(MostRoom { containers: room("b", 10, 1_000), weight: room("c", 1, 50_000) }),
            "the first of equals in id order, and never a vessel that is not available"
        );
        assert_eq!(
            no_room(&split).to_string(),
            "no vessel available for 3 containers weighing 55000 kg: the most room left is 10 containers on b \
             (with 1000 kg) and 50000 kg on c (with 1 container); add a vessel with `shippy vessel add`"
        );
        // Bookings count: what is left, not what the vessel carries empty.
        split.book(1, 0, "c", &created(load(1, 10_000)));
        split.book(2, 0, "b", &created(load(9, 1)));
        let most = no_room(&split).most.unwrap();
        assert_eq!((most.containers, most.weight), (room("d", 10, 1_000), room("c", 0, 40_000)));

        // One vessel with the most of both.
        let one = fleet([new_vessel("a", 2, 100, true), new_vessel("b", 2, 54_000, true)]);
        assert_eq!(
            no_room(&one).to_string(),
            "no vessel available for 3 containers weighing 55000 kg: the most room left is on b: \
             2 containers and 54000 kg; add a vessel with `shippy vessel add`"
        );

        // Every vessel full.
        let mut full = fleet([new_vessel("a", 3, 100, true)]);
        full.book(1, 0, "a", &created(load(3, 10)));
        assert!(no_room(&full).to_string().contains(": every available vessel is full; add a vessel"));

        // Each vessel full in one dimension only: none takes a container of 1 kg.
        let mut halves = fleet([new_vessel("a", 5, 100, true), new_vessel("b", 5, 100, true)]);
        halves.book(1, 0, "a", &created(load(0, 100)));
        halves.book(2, 0, "b", &created(load(5, 1)));
        let most = no_room(&halves).most.unwrap();
        assert_eq!((most.containers, most.weight), (room("a", 5, 0), room("b", 0, 99)));
        assert!(no_room(&halves).full);
        assert_eq!(
            no_room(&halves).to_string(),
            "no vessel available for 3 containers weighing 55000 kg: every available vessel is full; \
             add a vessel with `shippy vessel add`"
        );
        assert!(!no_room(&one).full, "b takes 2 containers of 54000 kg");
    }

    #[test]
    fn a_vessel_added_twice_is_kept_as_first_added() {
        let fleet = fleet([new_vessel("a", 5, 100, true), new_vessel("a", 50, 1000, true)]);
        assert_eq!(fleet.vessel("a").unwrap().capacity, 5);
        assert_eq!(fleet.len(), 1);
    }

    #[test]
    fn the_first_fit_is_the_same_as_a_scan_in_id_order_over_a_large_fleet() {
        let mut rng = fastrand::Rng::with_seed(7);
        let vessels: Vec<NewVessel> = (0..3_000)
            .map(|n| {
                new_vessel(
                    &format!("v{:05}", rng.u32(..100_000) * 3 + n % 3),
                    rng.u32(1..50),
                    rng.u64(1..5_000),
                    rng.u8(..10) > 0,
                )
            })
            .collect();
        let mut fleet = fleet(vessels.clone());
        let mut sorted: Vec<NewVessel> = fleet.vessels.values().cloned().collect();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        for sequence in 1..2_000 {
            let want = load(rng.u32(1..20), rng.u64(1..2_000));
            let scan = sorted
                .iter()
                .find(|vessel| fits(remaining(vessel, fleet.ledger.vessel(&vessel.id).booked), want))
                .map(|vessel| vessel.id.clone());
            let found = fleet.first_fit(want).map(|vessel| vessel.id);
            assert_eq!(found, scan, "load {want:?}");
            if let Some(id) = found {
                fleet.book(sequence, 0, &id, &created(want));
            }
        }
    }

    #[test]
    fn pages_follow_id_order() {
        let fleet = fleet((0..5).map(|n| new_vessel(&format!("v{n}"), 1, 1, true)));
        let (first, more) = fleet.page(None, 2);
        assert_eq!(first.iter().map(|v| v.vessel.id.as_str()).collect::<Vec<_>>(), ["v0", "v1"]);
        assert!(more);
        let (last, more) = fleet.page(Some("v2"), 5);
        assert_eq!(last.iter().map(|v| v.vessel.id.as_str()).collect::<Vec<_>>(), ["v3", "v4"]);
        assert!(!more);
    }

    #[test]
    fn duplicate_ids_are_refused() {
        assert_eq!(
            new_fleet(vec![new_vessel("a", 1, 1, true), new_vessel("a", 1, 1, true)]),
            Err(FleetError::Duplicate("a".into()))
        );
    }

    #[test]
    fn vessels_that_carry_nothing_or_have_bad_ids_are_refused() {
        let invalid = |capacity, max_weight, id: &str, name: &str| {
            validate(&NewVessel {
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
