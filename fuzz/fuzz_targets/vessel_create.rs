//! `vessel.create`: any body, twice (the second create of a valid vessel is a 409
//! that quotes its id), then `vessel.list`, through the vessel-worker's own handler
//! over the default fleet kept in memory.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use shared::{service::Handler as _, subjects::vessel};

fuzz_target!(|body: &[u8]| {
    shippy_fuzz::with_vessel_handler(async |handler| {
        for subject in [vessel::CREATE, vessel::CREATE, vessel::LIST] {
            shippy_fuzz::check_reply(&handler.handle(subject, None, Bytes::copy_from_slice(body)).await);
        }
    });
});
