//! `consignment.create` short of the network: decode, the domain rules, the vessel
//! the default fleet offers for it (the vessel-worker's side of the request it makes),
//! booking, and the reply or error reply.
#![no_main]

use consignment_worker::domain::ValidConsignment;
use libfuzzer_sys::fuzz_target;
use shared::{
    ServiceError,
    codec::{decode_request, encode},
    model::{CreatedConsignment, NewConsignment},
};
use vessel_worker::fleet::Fleet;

fn create(body: &[u8]) -> Result<Vec<u8>, ServiceError> {
    let request: NewConsignment = decode_request(body)?;
    let valid = ValidConsignment::parse(request).map_err(ServiceError::from)?;
    let spec = valid.specification();
    // Exactly what the consignment-worker sends to vessel.find_available.
    let spec = decode_request(&encode(&spec))?;
    let vessel = Fleet::default_fleet().find_available(&spec).map_err(ServiceError::from)?.clone();
    let consignment = valid.book("fuzz".to_owned(), vessel.id);
    Ok(encode(&CreatedConsignment { created: true, consignment }))
}

fuzz_target!(|body: &[u8]| {
    shippy_fuzz::check_reply(&create(body));
});
