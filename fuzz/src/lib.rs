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

/// Runs `input` against a vessel handler over the default fleet, kept in memory
/// ([`vessel_worker::store::MemoryLog`]), on a runtime of its own, so that nothing one
/// input starts outlives it.
pub fn with_vessel_handler<T>(
    input: impl AsyncFnOnce(&vessel_worker::handler::VesselHandler<vessel_worker::store::MemoryLog>) -> T,
) -> T {
    use vessel_worker::{fleet::Fleet, store::MemoryLog, vessels::Vessels};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a tokio runtime");
    runtime.block_on(async {
        let fleet = shared::projection::Projection::new(Fleet::new(std::time::Duration::from_secs(3600)));
        let log = MemoryLog::new(std::sync::Arc::clone(&fleet));
        Vessels::seed(&log, &vessel_worker::fleet::default_fleet()).await.expect("seeding in memory");
        let handler = vessel_worker::handler::VesselHandler::new(Vessels::new(log, fleet, None), 1024 * 1024);
        input(&handler).await
    })
}
