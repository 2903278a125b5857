//! `vessel.find_available`: any body, through the vessel-worker's own handler.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use shared::{service::Handler as _, subjects::vessel};
use vessel_worker::{fleet::Fleet, handler::VesselHandler};

fuzz_target!(|body: &[u8]| {
    let handler = VesselHandler::new(Fleet::default_fleet());
    let reply = futures::executor::block_on(handler.handle(vessel::FIND_AVAILABLE, Bytes::copy_from_slice(body)));
    shippy_fuzz::check_reply(&reply);
});
