//! `consignment.create` short of the network, through the consignment-worker's own
//! handler and create flow over an event log in memory: decode, the domain rules,
//! `vessel.find_available` answered by the vessel-worker's handler over the default
//! fleet, the writer's fit and append, and the reply or error reply.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use shared::{ErrorCode, service::Handler as _, subjects::consignment};

fuzz_target!(|body: &[u8]| {
    shippy_fuzz::with_consignment_handler(async |handler| {
        let reply = handler.handle(consignment::CREATE, None, Bytes::copy_from_slice(body)).await;
        shippy_fuzz::check_reply(&reply);
        // The vessel found has room for it (nothing else is booked): the writer's fit
        // agrees, so the create is never refused as contended.
        if let Err(error) = &reply {
            assert_ne!(error.code, ErrorCode::Unavailable, "{error}");
        }
    });
});
