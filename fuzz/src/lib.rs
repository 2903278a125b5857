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
