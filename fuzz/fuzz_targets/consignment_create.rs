//! `consignment.create` short of the network: decode, the domain rules, the vessel
//! the default fleet offers for it (the vessel-worker's side of the request it makes),
//! booking, and the reply or error reply.
#![no_main]

use consignment_worker::domain::ValidConsignment;
use libfuzzer_sys::fuzz_target;
use shared::{
    ServiceError,
    codec::{decode_request, encode},
    model::{CreatedConsignment, NewConsignment, Specification},
};
use vessel_worker::fleet::{FleetError, default_fleet, first_fit};

fn create(body: &[u8]) -> Result<Vec<u8>, ServiceError> {
    let request: NewConsignment = decode_request(body)?;
    let valid = ValidConsignment::parse(request).map_err(ServiceError::from)?;
    let spec = valid.specification("fuzz");
    // Exactly what the consignment-worker sends to vessel.find_available.
    let spec: Specification = decode_request(&encode(&spec))?;
    let mut fleet = default_fleet();
    let fitting = first_fit(&fleet, |record| record, spec.load()).map(|record| record.vessel.id.clone());
    let id = fitting.ok_or_else(|| ServiceError::not_found(FleetError::NoVesselAvailable.to_string()))?;
    let record = fleet.iter_mut().find(|record| record.vessel.id == id).expect("the vessel found");
    assert!(record.hold("fuzz", spec.load(), "attempt"), "a fitting vessel takes the load");
    assert!(record.vessel.booked.containers <= record.vessel.capacity && record.vessel.booked.weight <= record.vessel.max_weight);
    let consignment = valid.book("fuzz".to_owned(), id);
    Ok(encode(&CreatedConsignment { created: true, consignment }))
}

fuzz_target!(|body: &[u8]| {
    shippy_fuzz::check_reply(&create(body));
});
