//! `vessel.create`: any body, twice (the second create of a valid vessel is a 409
//! that quotes its id), then `vessel.list`, through the vessel-worker's own handler.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use shared::{service::Handler as _, subjects::vessel};
use vessel_worker::{fleet::Fleet, handler::VesselHandler};

fuzz_target!(|body: &[u8]| {
    let handler = VesselHandler::new(Fleet::default_fleet());
    for subject in [vessel::CREATE, vessel::CREATE, vessel::LIST] {
        let reply = futures::executor::block_on(handler.handle(subject, Bytes::copy_from_slice(body)));
        shippy_fuzz::check_reply(&reply);
    }
});
