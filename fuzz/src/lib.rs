//! What every fuzz target checks of a reply, the way [`shared::service`] sends it.
//!
//! A success must be JSON. An error must become a reply that NATS can carry:
//! [`error_headers`] must not panic (async-nats panics on CR or LF in a header
//! value), each header value must be one printable ASCII line of bounded length, and
//! the JSON body must give back the very error, message and all.

use std::{future::Future, sync::Arc, time::Duration};

use consignment_worker::{handler::ConsignmentHandler, vessels::VesselFinder};
use shared::{
    ServiceError,
    client::RequestError,
    codec::encode,
    error::{ERROR_CODE_HEADER, ERROR_HEADER, ErrorReply, MAX_HEADER_MESSAGE_BYTES},
    model::{Specification, Vessel, VesselReply},
    projection::Projection,
    service::{Handler as _, error_headers},
    subjects::vessel,
};
use vessel_worker::handler::VesselHandler;

/// The idempotency window of the projections.
const WINDOW: Duration = Duration::from_secs(3600);
/// The largest reply, as a NATS server's default `max_payload`.
const MAX_PAYLOAD: usize = 1024 * 1024;

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

/// The vessel handler over the default fleet, kept in memory
/// ([`vessel_worker::store::MemoryLog`]).
async fn vessel_handler() -> VesselHandler<vessel_worker::store::MemoryLog> {
    use vessel_worker::{fleet::Fleet, store::MemoryLog, vessels::Vessels};
    let fleet = Projection::new(Fleet::new(WINDOW));
    let log = MemoryLog::new(Arc::clone(&fleet));
    Vessels::seed(&log, &vessel_worker::fleet::default_fleet()).await.expect("seeding in memory");
    VesselHandler::new(Vessels::new(log, fleet, None), MAX_PAYLOAD)
}

/// Runs `input` on a runtime of its own, so that nothing one input starts outlives it.
fn on_runtime<T>(input: impl Future<Output = T>) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a tokio runtime");
    runtime.block_on(input)
}

/// Runs `input` against a vessel handler over the default fleet, kept in memory.
pub fn with_vessel_handler<T>(input: impl AsyncFnOnce(&VesselHandler<vessel_worker::store::MemoryLog>) -> T) -> T {
    on_runtime(async { input(&vessel_handler().await).await })
}

/// `vessel.find_available` answered by the vessel-worker's own handler, in memory:
/// the request and the reply go through the same encoding as over NATS.
#[derive(Debug)]
pub struct LocalVessels(VesselHandler<vessel_worker::store::MemoryLog>);

impl VesselFinder for LocalVessels {
    async fn find(&self, spec: &Specification) -> Result<Vessel, RequestError> {
        let reply = self.0.handle(vessel::FIND_AVAILABLE, None, encode(spec).into()).await;
        let body = reply.map_err(RequestError::Service)?;
        let VesselReply { vessel } = serde_json::from_slice(&body).expect("a vessel reply");
        Ok(vessel)
    }
}

/// The consignment handler in memory: the real create flow over an event log in
/// memory ([`consignment_worker::store::MemoryLog`]), finding vessels with the
/// vessel-worker's handler over the default fleet ([`LocalVessels`]).
pub type LocalConsignmentHandler = ConsignmentHandler<consignment_worker::store::MemoryLog, LocalVessels>;

/// Runs `input` against a consignment handler in memory ([`LocalConsignmentHandler`]).
pub fn with_consignment_handler<T>(input: impl AsyncFnOnce(&LocalConsignmentHandler) -> T) -> T {
    use consignment_worker::{consignments::Consignments, create::Creator, read::Reader, store::MemoryLog};
    on_runtime(async {
        let log = Arc::new(MemoryLog::default());
        let view = Projection::new(Consignments::new(WINDOW));
        log.follow(Arc::clone(&view));
        let vessels = LocalVessels(vessel_handler().await);
        let creator = Creator::new(Arc::clone(&log), vessels, Arc::clone(&view), MAX_PAYLOAD);
        let handler = ConsignmentHandler::new(creator, Reader::new(log, view), MAX_PAYLOAD, None);
        input(&handler).await
    })
}
