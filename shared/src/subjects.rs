//! NATS subjects and queue groups: the names that stand in for service names.
//!
//! | subject                  | request                            | reply                          |
//! |--------------------------|------------------------------------|--------------------------------|
//! | `vessel.find_available`  | [`Specification`]                  | [`VesselReply`]                |
//! | `vessel.create`          | [`NewVessel`]                      | [`CreatedVessel`]              |
//! | `consignment.create`     | [`NewConsignment`]                 | [`CreatedConsignment`]         |
//! | `consignment.get`        | [`GetConsignment`]                 | [`ConsignmentReply`]           |
//! | `consignment.list`       | [`ListConsignments`] (or empty)    | [`ConsignmentList`]            |
//! | `vessel.list`            | [`ListVessels`] (or empty)         | [`VesselList`]                 |
//! | `consignment.created.<vessel_id>` | event, stored in the stream | [`ConsignmentsCreated`]     |
//! | `vessel.added.<vessel_id>` | event, stored in the stream      | [`VesselAdded`]                |
//!
//! [`Specification`]: crate::model::Specification
//! [`VesselReply`]: crate::model::VesselReply
//! [`NewVessel`]: crate::model::NewVessel
//! [`CreatedVessel`]: crate::model::CreatedVessel
//! [`VesselList`]: crate::model::VesselList
//! [`NewConsignment`]: crate::model::NewConsignment
//! [`CreatedConsignment`]: crate::model::CreatedConsignment
//! [`ConsignmentList`]: crate::model::ConsignmentList
//! [`ListConsignments`]: crate::model::ListConsignments
//! [`GetConsignment`]: crate::model::GetConsignment
//! [`ConsignmentReply`]: crate::model::ConsignmentReply
//! [`ListVessels`]: crate::model::ListVessels
//! [`ConsignmentsCreated`]: crate::model::ConsignmentsCreated
//! [`VesselAdded`]: crate::model::VesselAdded

/// The vessel service: name, subject prefix and queue group of `vessel-worker`.
pub mod vessel {
    /// Service name reported by `$SRV.INFO` (`nats micro ls`), also the subject prefix.
    pub const SERVICE: &str = "vessel";
    /// Queue group every vessel-worker instance joins; NATS hands each request to one member.
    pub const QUEUE_GROUP: &str = "vessel-worker";
    /// Endpoint names, relative to [`SERVICE`].
    pub const FIND_AVAILABLE_ENDPOINT: &str = "find_available";
    pub const CREATE_ENDPOINT: &str = "create";
    pub const LIST_ENDPOINT: &str = "list";
    /// Finds a vessel that fits a [`Specification`](crate::model::Specification).
    pub const FIND_AVAILABLE: &str = "vessel.find_available";
    /// Adds a vessel to the fleet.
    pub const CREATE: &str = "vessel.create";
    /// Lists the fleet, a page at a time.
    pub const LIST: &str = "vessel.list";
    /// Every `vessel.added.<vessel_id>` event, kept in the [`EVENTS_STREAM`](crate::store::EVENTS_STREAM).
    pub const ADDED_EVENTS: &str = "vessel.added.*";

    /// The event that adds vessel `id` to the fleet: the one message on this subject.
    pub fn added_event(id: &str) -> String {
        format!("vessel.added.{id}")
    }

    /// The vessel id of an added event's subject.
    pub fn added_vessel(subject: &str) -> Option<&str> {
        subject.strip_prefix("vessel.added.")
    }
}

/// The consignment service: name, subject prefix and queue group of `consignment-worker`.
pub mod consignment {
    /// Service name reported by `$SRV.INFO` (`nats micro ls`), also the subject prefix.
    pub const SERVICE: &str = "consignment";
    /// Queue group every consignment-worker instance joins.
    pub const QUEUE_GROUP: &str = "consignment-worker";
    /// Endpoint names, relative to [`SERVICE`].
    pub const CREATE_ENDPOINT: &str = "create";
    pub const GET_ENDPOINT: &str = "get";
    pub const LIST_ENDPOINT: &str = "list";
    /// Creates a consignment and books it onto a vessel.
    pub const CREATE: &str = "consignment.create";
    /// Reads one consignment by id.
    pub const GET: &str = "consignment.get";
    /// Lists stored consignments, a page at a time.
    pub const LIST: &str = "consignment.list";
    /// Every `consignment.created.<vessel_id>` event: each holds the consignments
    /// booked onto that vessel in one durable append, and is kept in the
    /// [`EVENTS_STREAM`](crate::store::EVENTS_STREAM).
    pub const CREATED_EVENTS: &str = "consignment.created.*";

    /// The subject of the events that book consignments onto vessel `vessel_id`.
    /// Its last sequence guards the vessel's capacity: a write names the last
    /// sequence its decision saw (`Nats-Expected-Last-Subject-Sequence`).
    pub fn created_event(vessel_id: &str) -> String {
        format!("consignment.created.{vessel_id}")
    }

    /// The vessel id of a created event's subject.
    pub fn created_vessel(subject: &str) -> Option<&str> {
        subject.strip_prefix("consignment.created.")
    }
    /// The header carrying a create's idempotency key, as JetStream names it.
    pub const IDEMPOTENCY_HEADER: &str = "Nats-Msg-Id";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_service_dot_endpoint() {
        assert_eq!(vessel::FIND_AVAILABLE, format!("{}.{}", vessel::SERVICE, vessel::FIND_AVAILABLE_ENDPOINT));
        assert_eq!(vessel::CREATE, format!("{}.{}", vessel::SERVICE, vessel::CREATE_ENDPOINT));
        assert_eq!(vessel::LIST, format!("{}.{}", vessel::SERVICE, vessel::LIST_ENDPOINT));
        assert_eq!(consignment::CREATE, format!("{}.{}", consignment::SERVICE, consignment::CREATE_ENDPOINT));
        assert_eq!(consignment::GET, format!("{}.{}", consignment::SERVICE, consignment::GET_ENDPOINT));
        assert_eq!(consignment::LIST, format!("{}.{}", consignment::SERVICE, consignment::LIST_ENDPOINT));
    }

    #[test]
    fn event_subjects_name_their_vessel() {
        assert_eq!(consignment::created_vessel(&consignment::created_event("vessel001")), Some("vessel001"));
        assert_eq!(vessel::added_vessel(&vessel::added_event("v-2")), Some("v-2"));
        assert_eq!(consignment::created_vessel("vessel.added.x"), None);
    }
}
