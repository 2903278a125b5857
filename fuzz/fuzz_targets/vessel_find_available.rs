//! `vessel.find_available`: any body, through the vessel-worker's own handler and
//! booking code, over the default fleet kept in memory; a body naming a consignment
//! books, twice, and must count once.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use shared::{service::Handler as _, subjects::vessel};

fuzz_target!(|body: &[u8]| {
    shippy_fuzz::with_vessel_handler(async |handler| {
        let ask = |subject| handler.handle(subject, None, Bytes::copy_from_slice(body));
        let first = ask(vessel::FIND_AVAILABLE).await;
        shippy_fuzz::check_reply(&first);
        let again = ask(vessel::FIND_AVAILABLE).await;
        shippy_fuzz::check_reply(&again);
        // Asked again, the same answer: a question books nothing, a booking counts once.
        assert_eq!(first.is_ok(), again.is_ok());
        if let (Ok(first), Ok(again)) = (&first, &again) {
            assert_eq!(first, again, "the same booking twice gave two answers");
        }
        shippy_fuzz::check_reply(&ask(vessel::LIST).await);
    });
});
