//! The NATS edge: decodes requests, applies the domain rules, hands creates to the
//! [`Creator`] and reads to the [`Reader`], encodes replies, and maps their typed
//! errors ([`CreateError`], [`ReadError`]) to error replies, logging
//! each 5xx once, with its cause, as it is answered.

use async_nats::HeaderMap;
use bytes::Bytes;
use shared::{
    ErrorCode, ServiceError,
    client::RequestError,
    codec::{decode_request, encode},
    model::{ConsignmentList, ConsignmentReply, CreatedConsignment, GetConsignment, ListConsignments, NewConsignment},
    service::Handler,
    subjects::consignment,
};

use crate::{
    consignments::Location,
    create::{CreateError, Creator},
    domain::{ConsignmentFilter, ValidConsignment, ValidationError},
    read::{PageQuery, ReadError, Reader},
    store::EventLog,
    vessels::VesselFinder,
};

/// Consignments in a page unless the request asks for fewer.
pub const DEFAULT_PAGE: u32 = 100;
/// The most consignments in a page.
pub const MAX_PAGE: u32 = 1000;
/// Room left in a reply for everything but the consignments.
const ENVELOPE_BYTES: usize = 1024;
/// The longest idempotency key accepted.
const MAX_KEY_BYTES: usize = 256;

/// Serves the consignment endpoints.
#[derive(Debug)]
pub struct ConsignmentHandler<L, F> {
    creator: Creator<L, F>,
    reader: Reader<L>,
    /// The largest reply NATS carries: no page may exceed it.
    max_payload: usize,
    /// Keeps the projection following the stream while the handler lives.
    _following: Option<tokio_util::sync::DropGuard>,
}

impl<L: EventLog, F: VesselFinder> ConsignmentHandler<L, F> {
    /// Serves creates with `creator` and reads with `reader`; replies stay within
    /// `max_payload` bytes; `following` lives as long as the handler.
    pub fn new(
        creator: Creator<L, F>,
        reader: Reader<L>,
        max_payload: usize,
        following: Option<tokio_util::sync::DropGuard>,
    ) -> Self {
        Self { creator, reader, max_payload, _following: following }
    }

    async fn create(&self, headers: Option<&HeaderMap>, payload: &[u8]) -> Result<Vec<u8>, ServiceError> {
        let request: NewConsignment = decode_request(payload)?;
        let valid = ValidConsignment::parse(request)?;
        let key = headers
            .and_then(|headers| headers.get(consignment::IDEMPOTENCY_HEADER))
            .map(async_nats::HeaderValue::as_str);
        if key.is_some_and(|key| key.is_empty() || key.len() > MAX_KEY_BYTES) {
            return Err(ServiceError::bad_request(format!(
                "{} must hold 1 to {MAX_KEY_BYTES} bytes",
                consignment::IDEMPOTENCY_HEADER
            )));
        }
        let consignment = self.creator.create(&valid, key).await.map_err(|error| create_failed(&error))?;
        Ok(encode(&CreatedConsignment { created: true, consignment }))
    }

    async fn get(&self, payload: &[u8]) -> Result<Vec<u8>, ServiceError> {
        let GetConsignment { id } = decode_request(payload)?;
        let consignment = self
            .reader
            .get(&id)
            .await
            .map_err(|error| read_failed(&error))?
            .ok_or_else(|| ServiceError::not_found("no such consignment"))?;
        Ok(encode(&ConsignmentReply { consignment }))
    }

    async fn list(&self, payload: &[u8]) -> Result<Vec<u8>, ServiceError> {
        // `nats req consignment.list ''` asks for the first page.
        let request: ListConsignments =
            if payload.trim_ascii().is_empty() { ListConsignments::default() } else { decode_request(payload)? };
        let limit = request.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ServiceError::bad_request(format!("limit must be between 1 and {MAX_PAGE}")));
        }
        let after = request.cursor.as_deref().map(parse_cursor).transpose()?;
        if request.vessel_id.as_deref().is_some_and(|vessel| !shared::store::is_key(vessel)) {
            return Ok(encode(&ConsignmentList { consignments: Vec::new(), next: None }));
        }
        let query = PageQuery {
            after,
            limit: limit as usize,
            filter: ConsignmentFilter { vessel_id: request.vessel_id, user_id: request.user_id },
            max_bytes: self.max_payload.saturating_sub(ENVELOPE_BYTES),
        };
        let page = self.reader.page(&query).await.map_err(|error| read_failed(&error))?;
        Ok(encode(&ConsignmentList { consignments: page.consignments, next: page.next.map(cursor) }))
    }
}

/// A page cursor: the place of the last consignment of the page, `<sequence>.<entry>`.
fn cursor(location: Location) -> String {
    format!("{}.{}", location.sequence, location.entry)
}

fn parse_cursor(cursor: &str) -> Result<Location, ServiceError> {
    let invalid = || ServiceError::bad_request("cursor is not one this service gave");
    let (sequence, entry) = cursor.split_once('.').ok_or_else(invalid)?;
    Ok(Location { sequence: sequence.parse().map_err(|_| invalid())?, entry: entry.parse().map_err(|_| invalid())? })
}

impl<L: EventLog, F: VesselFinder> Handler for ConsignmentHandler<L, F> {
    async fn handle(
        &self,
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: Bytes,
    ) -> Result<Vec<u8>, ServiceError> {
        match subject {
            consignment::CREATE => self.create(headers, &payload).await,
            consignment::GET => self.get(&payload).await,
            consignment::LIST => self.list(&payload).await,
            other => Err(ServiceError::not_found(format!("no endpoint {other}"))),
        }
    }
}

impl From<ValidationError> for ServiceError {
    fn from(error: ValidationError) -> Self {
        Self::bad_request(error.to_string())
    }
}

/// The error reply to a create that failed.
fn create_failed(error: &CreateError) -> ServiceError {
    let reply = match error {
        CreateError::KeyReused => ServiceError::conflict(error.to_string()),
        CreateError::Vessel(failed) => match failed {
            // NATS reports "no responders" at once: no waiting out the timeout.
            RequestError::NoResponders { .. } => {
                ServiceError::new(ErrorCode::Unavailable, "vessel service unavailable")
            }
            RequestError::TimedOut { .. } => ServiceError::new(ErrorCode::Timeout, "vessel service timed out"),
            // "no vessel available" and the like go back unchanged.
            RequestError::Service(reply) => reply.clone(),
            RequestError::Transport { .. } | RequestError::InvalidReply { .. } | RequestError::Denied { .. } => {
                ServiceError::new(ErrorCode::Unavailable, format!("vessel service failed: {failed}"))
            }
        },
        CreateError::Contended(_) | CreateError::Behind(_) | CreateError::Unread(_) => {
            ServiceError::new(ErrorCode::Unavailable, error.to_string())
        }
        CreateError::Store(_) | CreateError::Stopped(_) => ServiceError::internal("the store failed"),
        CreateError::TooLarge(_) => ServiceError::new(ErrorCode::PayloadTooLarge, error.to_string()),
    };
    logged(reply, error)
}

/// The error reply to a read that failed.
fn read_failed(error: &ReadError) -> ServiceError {
    let reply = match error {
        ReadError::Behind(_) | ReadError::Lacking { .. } => {
            ServiceError::new(ErrorCode::Unavailable, error.to_string())
        }
        ReadError::Store(_) => ServiceError::internal("the store failed"),
    };
    logged(reply, error)
}

/// `reply`, the answer to a request that failed with `cause`; a 5xx is logged here,
/// with its cause, once: the reply is sent next ([`shared::service`]).
fn logged(reply: ServiceError, cause: &dyn std::error::Error) -> ServiceError {
    if reply.code.is_server_error() {
        tracing::error!(code = %reply.code, error = %cause, "request failed");
    }
    reply
}
