//! The JSON messages exchanged on the subjects in [`crate::subjects`].
//!
//! Field names follow the original shippy protobuf definitions, so the same
//! `consignment.json` works here.

use serde::{Deserialize, Serialize};

/// A shipping container inside a consignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// Optional in requests; the seed data leaves it out.
    #[serde(default)]
    pub id: String,
    pub customer_id: String,
    pub origin: String,
    pub user_id: String,
}

/// The body of a `consignment.create` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewConsignment {
    pub description: String,
    /// Total weight in kilograms; must be greater than zero.
    pub weight: u64,
    /// At least one container; their count is the capacity asked of a vessel.
    pub containers: Vec<Container>,
}

/// A stored consignment, booked onto a vessel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consignment {
    pub id: String,
    pub description: String,
    pub weight: u64,
    pub containers: Vec<Container>,
    pub vessel_id: String,
}

/// Reply to `consignment.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedConsignment {
    pub created: bool,
    pub consignment: Consignment,
}

/// Reply to `consignment.list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsignmentList {
    pub consignments: Vec<Consignment>,
}

/// A vessel in the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vessel {
    /// Optional in `vessel.create`: one is assigned when left out.
    #[serde(default)]
    pub id: String,
    /// How many containers it carries.
    pub capacity: u32,
    /// The heaviest load it carries, in kilograms.
    pub max_weight: u64,
    pub name: String,
    #[serde(default = "available_by_default")]
    pub available: bool,
    #[serde(default)]
    pub owner_id: String,
}

fn available_by_default() -> bool {
    true
}

/// What a consignment needs of a vessel: the body of `vessel.find_available`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Specification {
    /// Containers to carry.
    pub capacity: u32,
    /// Weight to carry, in kilograms.
    pub max_weight: u64,
}

/// Reply to `vessel.find_available`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VesselReply {
    pub vessel: Vessel,
}

/// Reply to `vessel.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedVessel {
    pub created: bool,
    pub vessel: Vessel,
}

/// Reply to `vessel.list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VesselList {
    pub vessels: Vec<Vessel>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_consignment_parses_without_container_ids() {
        let json = r#"{
            "description": "This is a test consignment",
            "weight": 55000,
            "containers": [
                {"customer_id": "cust001", "user_id": "user001", "origin": "Manchester, United Kingdom"}
            ]
        }"#;
        let consignment: NewConsignment = serde_json::from_str(json).unwrap();
        assert_eq!(consignment.weight, 55_000);
        assert_eq!(consignment.containers[0].id, "");
    }

    #[test]
    fn vessel_is_available_unless_said_otherwise() {
        let vessel: Vessel = serde_json::from_str(r#"{"id":"v","capacity":1,"max_weight":2,"name":"n"}"#).unwrap();
        assert!(vessel.available);
    }
}
