//! NATS subjects and queue groups: the names that stand in for service names.
//!
//! | subject                  | request                            | reply                          |
//! |--------------------------|------------------------------------|--------------------------------|
//! | `vessel.find_available`  | [`Specification`]                  | [`VesselReply`]                |
//! | `vessel.create`          | [`NewVessel`]                      | [`CreatedVessel`]              |
//! | `vessel.list`            | anything (ignored)                 | [`VesselList`]                 |
//! | `consignment.create`     | [`NewConsignment`]                 | [`CreatedConsignment`]         |
//! | `consignment.get`        | [`GetConsignment`]                 | [`ConsignmentReply`]           |
//! | `consignment.list`       | [`ListConsignments`] (or empty)    | [`ConsignmentList`]            |
//! | `consignment.created`    | event, stored in a stream          | [`Consignment`]                |
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
//! [`Consignment`]: crate::model::Consignment

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
    /// Lists the fleet.
    pub const LIST: &str = "vessel.list";
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
    /// Event published once per consignment after it is stored, and kept in the
    /// [`EVENTS_STREAM`](crate::store::EVENTS_STREAM).
    pub const CREATED_EVENT: &str = "consignment.created";
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
}
