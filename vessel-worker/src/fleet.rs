//! The fleet and the rule for picking a vessel: pure domain logic, no I/O.

use shared::model::{Specification, Vessel};

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

/// The vessels this worker knows, in the order they are offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    vessels: Vec<Vessel>,
}

impl Fleet {
    /// A fleet of `vessels`, each valid and with a distinct id.
    pub fn new(vessels: Vec<Vessel>) -> Result<Self, FleetError> {
        let mut fleet = Self { vessels: Vec::with_capacity(vessels.len()) };
        for vessel in vessels {
            fleet.add(vessel)?;
        }
        Ok(fleet)
    }

    /// The fleet a worker starts with when no fleet file is given.
    ///
    /// # Panics
    /// Never: the built-in fleet is valid, as a unit test checks.
    pub fn default_fleet() -> Self {
        let vessel = |id: &str, name: &str, capacity, max_weight| Vessel {
            id: id.to_owned(),
            capacity,
            max_weight,
            name: name.to_owned(),
            available: true,
            owner_id: String::new(),
        };
        Self::new(vec![
            vessel("vessel001", "Boaty McBoatface", 500, 200_000),
            vessel("vessel002", "Seawise Giant", 2_000, 560_000),
        ])
        .expect("the default fleet is valid")
    }

    /// The first available vessel that carries `spec.capacity` containers weighing
    /// `spec.max_weight` in all.
    pub fn find_available(&self, spec: &Specification) -> Result<&Vessel, FleetError> {
        self.vessels
            .iter()
            .find(|vessel| vessel.available && vessel.capacity >= spec.capacity && vessel.max_weight >= spec.max_weight)
            .ok_or(FleetError::NoVesselAvailable)
    }

    /// Adds a vessel with a new id.
    pub fn add(&mut self, vessel: Vessel) -> Result<(), FleetError> {
        validate(&vessel)?;
        if self.vessels.iter().any(|known| known.id == vessel.id) {
            return Err(FleetError::Duplicate(vessel.id));
        }
        self.vessels.push(vessel);
        Ok(())
    }

    pub fn vessels(&self) -> &[Vessel] {
        &self.vessels
    }
}

fn validate(vessel: &Vessel) -> Result<(), FleetError> {
    if vessel.id.trim().is_empty() {
        return Err(FleetError::Invalid("id must not be empty"));
    }
    if vessel.name.trim().is_empty() {
        return Err(FleetError::Invalid("name must not be empty"));
    }
    // Ids and names are echoed in replies, logs and error messages: one printable line each.
    if [&vessel.id, &vessel.name, &vessel.owner_id].iter().any(|text| text.chars().any(char::is_control)) {
        return Err(FleetError::Invalid("id, name and owner_id must not hold control characters"));
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

    fn spec(capacity: u32, max_weight: u64) -> Specification {
        Specification { capacity, max_weight }
    }

    fn vessel(id: &str, capacity: u32, max_weight: u64, available: bool) -> Vessel {
        Vessel { id: id.into(), capacity, max_weight, name: id.into(), available, owner_id: String::new() }
    }

    #[test]
    fn seed_consignment_gets_boaty_mcboatface() {
        let fleet = Fleet::default_fleet();
        let found = fleet.find_available(&spec(3, 55_000)).unwrap();
        assert_eq!((found.id.as_str(), found.name.as_str()), ("vessel001", "Boaty McBoatface"));
    }

    #[test]
    fn exact_fit_is_a_fit() {
        let fleet = Fleet::new(vec![vessel("a", 3, 100, true)]).unwrap();
        assert_eq!(fleet.find_available(&spec(3, 100)).unwrap().id, "a");
    }

    #[test]
    fn too_many_containers_or_too_heavy_finds_nothing() {
        let fleet = Fleet::new(vec![vessel("a", 3, 100, true)]).unwrap();
        assert_eq!(fleet.find_available(&spec(4, 100)), Err(FleetError::NoVesselAvailable));
        assert_eq!(fleet.find_available(&spec(3, 101)), Err(FleetError::NoVesselAvailable));
    }

    #[test]
    fn first_fitting_available_vessel_wins() {
        let fleet = Fleet::new(vec![
            vessel("small", 1, 10, true),
            vessel("docked", 10, 1_000, false),
            vessel("big", 10, 1_000, true),
            vessel("bigger", 20, 2_000, true),
        ])
        .unwrap();
        assert_eq!(fleet.find_available(&spec(5, 500)).unwrap().id, "big");
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let mut fleet = Fleet::default_fleet();
        assert_eq!(fleet.add(vessel("vessel001", 1, 1, true)), Err(FleetError::Duplicate("vessel001".into())));
    }

    #[test]
    fn vessels_that_carry_nothing_are_refused() {
        let mut fleet = Fleet::new(Vec::new()).unwrap();
        assert!(matches!(fleet.add(vessel("a", 0, 1, true)), Err(FleetError::Invalid(_))));
        assert!(matches!(fleet.add(vessel("a", 1, 0, true)), Err(FleetError::Invalid(_))));
        assert!(matches!(fleet.add(vessel(" ", 1, 1, true)), Err(FleetError::Invalid(_))));
        assert!(fleet.vessels().is_empty());
    }
}
