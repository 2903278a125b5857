//! The JSON messages exchanged on the subjects in [`crate::subjects`].
//!
//! Field names follow the original shippy protobuf definitions, so the same
//! `consignment.json` works here.

use serde::{Deserialize, Serialize};

/// A shipping container inside a consignment.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// Optional in requests; the seed data leaves it out, and an empty one is left
    /// out of every message (as of any output), so a container prints one way.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    pub customer_id: String,
    pub origin: String,
    pub user_id: String,
}

/// The body of a `consignment.create` request.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewConsignment {
    pub description: String,
    /// Total weight in kilograms; must be greater than zero.
    pub weight: u64,
    /// At least one container; their count is the capacity asked of a vessel.
    pub containers: Vec<Container>,
}

/// A stored consignment, booked onto a vessel.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consignment {
    pub id: String,
    pub description: String,
    pub weight: u64,
    pub containers: Vec<Container>,
    pub vessel_id: String,
}

/// Reply to `consignment.create`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedConsignment {
    pub created: bool,
    pub consignment: Consignment,
}

/// Body of `consignment.list`: one page of consignments, oldest first. Every field
/// is optional, and an empty body asks for the first page.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListConsignments {
    /// The most consignments in the page (default and maximum in the consignment-worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Where the page starts: the `next` of the previous page; the first page without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Only consignments booked onto this vessel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vessel_id: Option<String>,
    /// Only consignments with a container of this user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// Reply to `consignment.list`: a page of consignments, and where the next starts.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsignmentList {
    pub consignments: Vec<Consignment>,
    /// The cursor of the next page; absent on the last page. A filtered page may hold
    /// fewer than `limit` consignments (even none) and still have a next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Body of `consignment.get`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetConsignment {
    pub id: String,
}

/// Reply to `consignment.get`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsignmentReply {
    pub consignment: Consignment,
}

/// Containers and weight: what a consignment needs, what a vessel has booked.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load {
    pub containers: u32,
    /// Kilograms.
    pub weight: u64,
}

/// A vessel in the fleet, with what is booked on it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vessel {
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
    /// What consignments have booked on it so far.
    #[serde(default)]
    pub booked: Load,
}

impl Vessel {
    /// What it can still take: capacity and weight less what is booked.
    pub fn remaining(&self) -> Load {
        Load {
            containers: self.capacity.saturating_sub(self.booked.containers),
            weight: self.max_weight.saturating_sub(self.booked.weight),
        }
    }
}

/// The body of `vessel.create`, and an entry of a `FLEET_FILE`: a vessel with nothing booked.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewVessel {
    /// Optional: one is assigned when left out.
    #[serde(default)]
    pub id: String,
    pub capacity: u32,
    pub max_weight: u64,
    pub name: String,
    #[serde(default = "available_by_default")]
    pub available: bool,
    #[serde(default)]
    pub owner_id: String,
}

impl NewVessel {
    /// The vessel, with nothing booked yet.
    pub fn into_vessel(self) -> Vessel {
        let Self { id, capacity, max_weight, name, available, owner_id } = self;
        Vessel { id, capacity, max_weight, name, available, owner_id, booked: Load::default() }
    }
}

fn available_by_default() -> bool {
    true
}

/// What a consignment needs of a vessel: the body of `vessel.find_available`.
///
/// A read-only question (which vessel has room?), answered from the vessel-worker's
/// projection of the event stream: nothing is booked by asking.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Specification {
    /// Containers to carry.
    pub capacity: u32,
    /// Weight to carry, in kilograms.
    pub max_weight: u64,
    /// Answer from a fleet that has taken in the event stream at least up to this
    /// sequence (waiting briefly for it, and no further than the stream goes): a
    /// caller that saw a vessel fill up at that sequence is not offered it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

impl Specification {
    /// The load asked for.
    pub fn load(&self) -> Load {
        Load { containers: self.capacity, weight: self.max_weight }
    }
}

/// An entry of `vessel.list`: the vessel and what it can still take.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedVessel {
    #[serde(flatten)]
    pub vessel: Vessel,
    pub remaining: Load,
}

impl From<Vessel> for ListedVessel {
    fn from(vessel: Vessel) -> Self {
        Self { remaining: vessel.remaining(), vessel }
    }
}

/// Reply to `vessel.find_available`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VesselReply {
    pub vessel: Vessel,
}

/// Reply to `vessel.create`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedVessel {
    pub created: bool,
    pub vessel: Vessel,
}

/// Body of `vessel.list`: one page of the fleet, in id order. Every field is
/// optional, and an empty body asks for the first page.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListVessels {
    /// The most vessels in the page (default and maximum in the vessel-worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Where the page starts: the `next` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Reply to `vessel.list`: a page of the fleet, in id order, and where the next starts.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VesselList {
    pub vessels: Vec<ListedVessel>,
    /// The cursor of the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A `consignment.created.<vessel_id>` event: consignments booked onto one vessel
/// in one durable append (one or more creates, group-committed), in the order they
/// were booked. The one durable fact of a create; everything else is derived from it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsignmentsCreated {
    pub consignments: Vec<CreatedEntry>,
}

/// One consignment of a [`ConsignmentsCreated`] event.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedEntry {
    pub consignment: Consignment,
    /// The create's idempotency key, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<Idempotency>,
}

impl CreatedEntry {
    /// The entry of `consignment` (with `idempotency`, if given) as an event holds
    /// it, encoded, without copying either.
    pub fn encode(consignment: &Consignment, idempotency: Option<&Idempotency>) -> Vec<u8> {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            consignment: &'a Consignment,
            #[serde(skip_serializing_if = "Option::is_none")]
            idempotency: Option<&'a Idempotency>,
        }
        crate::codec::encode(&Borrowed { consignment, idempotency })
    }
}

/// A create's idempotency key as stored: a name-based UUID of the `Nats-Msg-Id`,
/// and a fingerprint of the request, so that the key reused for another
/// consignment is told apart.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Idempotency {
    pub key: uuid::Uuid,
    pub fingerprint: uuid::Uuid,
}

/// A `vessel.added.<vessel_id>` event: a vessel joined the fleet, with nothing booked.
pub type VesselAdded = NewVessel;

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
        // ... and it is written back without one.
        let written = serde_json::to_value(&consignment.containers[0]).unwrap();
        assert_eq!(written.get("id"), None, "{written}");
    }

    #[test]
    fn vessel_is_available_unless_said_otherwise() {
        let vessel: NewVessel = serde_json::from_str(r#"{"capacity":1,"max_weight":2,"name":"n"}"#).unwrap();
        assert!(vessel.available);
        assert_eq!(vessel.into_vessel().booked, Load::default());
    }

    #[test]
    fn an_entry_encoded_in_place_reads_back_as_an_entry() {
        let consignment = Consignment {
            id: "c".into(),
            description: "d".into(),
            weight: 1,
            containers: Vec::new(),
            vessel_id: "v".into(),
        };
        let idempotency = Idempotency { key: uuid::Uuid::from_u128(1), fingerprint: uuid::Uuid::from_u128(2) };
        for idempotency in [None, Some(idempotency)] {
            let encoded = CreatedEntry::encode(&consignment, idempotency.as_ref());
            let read: CreatedEntry = serde_json::from_slice(&encoded).unwrap();
            assert_eq!(read, CreatedEntry { consignment: consignment.clone(), idempotency });
        }
    }

    #[test]
    fn remaining_is_capacity_less_booked() {
        let vessel = Vessel {
            id: "v".into(),
            capacity: 10,
            max_weight: 100,
            name: "n".into(),
            available: true,
            owner_id: String::new(),
            booked: Load { containers: 3, weight: 40 },
        };
        assert_eq!(vessel.remaining(), Load { containers: 7, weight: 60 });
        let listed = serde_json::to_value(ListedVessel::from(vessel)).unwrap();
        assert_eq!(listed["remaining"], serde_json::json!({"containers": 7, "weight": 60}));
        assert_eq!(listed["booked"], serde_json::json!({"containers": 3, "weight": 40}));
    }
}
