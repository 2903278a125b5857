//! What every fuzz target checks of a reply, the way [`shared::service`] sends it.
//!
//! A success must be JSON. An error must become a reply that NATS can carry:
//! [`error_headers`] must not panic (async-nats panics on CR or LF in a header
//! value), each header value must be one printable ASCII line of bounded length, and
//! the JSON body must give back the very error, message and all.

use shared::{
    ServiceError,
    error::{ERROR_CODE_HEADER, ERROR_HEADER, ErrorReply, MAX_HEADER_MESSAGE_BYTES},
    service::error_headers,
};

/// Checks `result` as the reply it becomes; panics (a finding) if it could not be sent or read.
pub fn check_reply(result: &Result<Vec<u8>, ServiceError>) {
    match result {
        Ok(body) => {
            serde_json::from_slice::<serde_json::Value>(body).expect("a success body is JSON");
        }
        Err(error) => check_error(error),
    }
}

/// Checks the headers and body that `error` is sent as.
pub fn check_error(error: &ServiceError) {
    let headers = error_headers(error);
    let message = headers.get(ERROR_HEADER).expect("the error header is set").as_str();
    assert!(message.len() <= MAX_HEADER_MESSAGE_BYTES, "header of {} bytes", message.len());
    assert!(message.bytes().all(|b| b == b' ' || b.is_ascii_graphic()), "unprintable header {message:?}");
    let code = headers.get(ERROR_CODE_HEADER).expect("the code header is set").as_str();
    assert_eq!(code, error.code.to_string());
    let body: ErrorReply = serde_json::from_slice(&error.to_json()).expect("the error body is JSON");
    assert_eq!(&body.error, error, "the body keeps the whole error");
}

/// The vessel-worker's store, in memory, for fuzzing its handler short of the
/// network: the same compare-and-set and create-if-absent rules as JetStream's.
pub mod memory {
    use std::{collections::BTreeMap, sync::Mutex};

    use vessel_worker::{
        fleet::{Booking, VesselRecord},
        store::{StoreError, VesselStore, Versioned},
    };

    #[derive(Debug, Default)]
    pub struct MemoryStore {
        vessels: Mutex<BTreeMap<String, Versioned<VesselRecord>>>,
        bookings: Mutex<BTreeMap<String, Booking>>,
        revision: Mutex<u64>,
    }

    impl MemoryStore {
        /// A store holding `fleet`.
        pub fn with(fleet: Vec<VesselRecord>) -> Self {
            let store = Self::default();
            for record in fleet {
                let revision = store.next_revision();
                store.vessels.lock().unwrap().insert(record.vessel.id.clone(), Versioned { value: record, revision });
            }
            store
        }

        fn next_revision(&self) -> u64 {
            let mut revision = self.revision.lock().unwrap();
            *revision += 1;
            *revision
        }
    }

    impl VesselStore for MemoryStore {
        async fn vessels(&self) -> Result<Vec<Versioned<VesselRecord>>, StoreError> {
            Ok(self.vessels.lock().unwrap().values().cloned().collect())
        }

        async fn vessel(&self, id: &str) -> Result<Option<Versioned<VesselRecord>>, StoreError> {
            Ok(self.vessels.lock().unwrap().get(id).cloned())
        }

        async fn create_vessel(&self, record: &VesselRecord) -> Result<bool, StoreError> {
            let revision = self.next_revision();
            let mut vessels = self.vessels.lock().unwrap();
            if vessels.contains_key(&record.vessel.id) {
                return Ok(false);
            }
            vessels.insert(record.vessel.id.clone(), Versioned { value: record.clone(), revision });
            Ok(true)
        }

        async fn update_vessel(&self, record: &VesselRecord, revision: u64) -> Result<bool, StoreError> {
            let next = self.next_revision();
            let mut vessels = self.vessels.lock().unwrap();
            match vessels.get_mut(&record.vessel.id) {
                Some(stored) if stored.revision == revision => {
                    *stored = Versioned { value: record.clone(), revision: next };
                    Ok(true)
                }
                _ => Ok(false),
            }
        }

        async fn booking(&self, consignment: &str) -> Result<Option<Booking>, StoreError> {
            Ok(self.bookings.lock().unwrap().get(consignment).cloned())
        }

        async fn record_booking(&self, consignment: &str, booking: &Booking) -> Result<Booking, StoreError> {
            Ok(self.bookings.lock().unwrap().entry(consignment.to_owned()).or_insert_with(|| booking.clone()).clone())
        }
    }
}

/// Runs `input` against a vessel handler over the default fleet in memory, on a
/// runtime of its own, so that nothing one input starts outlives it.
pub fn with_vessel_handler<T>(
    input: impl AsyncFnOnce(&vessel_worker::handler::VesselHandler<memory::MemoryStore>) -> T,
) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a tokio runtime");
    runtime.block_on(async {
        let store = memory::MemoryStore::with(vessel_worker::fleet::default_fleet());
        // The sweeper never runs within one input: an hour apart.
        let booker = vessel_worker::booking::Booker::new(store);
        let handler = vessel_worker::handler::VesselHandler::new(booker, std::time::Duration::from_secs(3600));
        input(&handler).await
    })
}
