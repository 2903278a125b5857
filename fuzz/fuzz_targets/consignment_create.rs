//! `consignment.create` short of the network: decode, the domain rules, the vessel
//! the default fleet offers for it (the vessel-worker's side of the request it makes),
//! the batch's fit on that vessel, and the reply or error reply.
#![no_main]

use consignment_worker::{
    create::{Fate, plan},
    domain::ValidConsignment,
};
use libfuzzer_sys::fuzz_target;
use shared::{
    ServiceError,
    codec::{decode_request, encode},
    model::{CreatedConsignment, NewConsignment, Specification},
    projection::Fold as _,
};
use vessel_worker::fleet::{Fleet, default_fleet};

fn create(body: &[u8]) -> Result<Vec<u8>, ServiceError> {
    let request: NewConsignment = decode_request(body)?;
    let valid = ValidConsignment::parse(request).map_err(ServiceError::from)?;
    // Exactly what the consignment-worker sends to vessel.find_available.
    let spec: Specification = decode_request(&encode(&valid.specification(None)))?;
    let mut fleet = Fleet::new(std::time::Duration::from_secs(3600));
    for vessel in default_fleet() {
        fleet.add(vessel);
    }
    fleet.settle();
    let vessel = fleet.find(spec.load()).map_err(|error| ServiceError::not_found(error.to_string()))?;
    // The vessel found has room for it: the writer's fit agrees.
    assert_eq!(plan(vessel.remaining(), [(valid.load(), None)], |_| false), [Fate::Append]);
    let consignment = valid.book(uuid::Uuid::nil(), &vessel.id);
    Ok(encode(&CreatedConsignment { created: true, consignment }))
}

fuzz_target!(|body: &[u8]| {
    shippy_fuzz::check_reply(&create(body));
});
