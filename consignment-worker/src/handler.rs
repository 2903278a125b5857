//! The NATS edge: decodes requests, applies the domain rules, hands creates to the
//! [`Creator`] and reads to the store, encodes replies.

use std::{sync::Arc, time::Duration};

use async_nats::HeaderMap;
use bytes::Bytes;
use shared::{
    ServiceError,
    codec::{decode_request, encode},
    model::{ConsignmentList, ConsignmentReply, CreatedConsignment, GetConsignment, ListConsignments, NewConsignment},
    service::Handler,
    subjects::consignment,
};
use tokio_util::sync::DropGuard;

use crate::{
    create::Creator,
    domain::{ConsignmentFilter, ValidConsignment, ValidationError},
    store::{ConsignmentStore, PageQuery},
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
pub struct ConsignmentHandler<S> {
    creator: Arc<Creator<S>>,
    /// The largest reply NATS carries: no page may exceed it.
    max_payload: usize,
    _recovery: DropGuard,
}

impl<S: ConsignmentStore> ConsignmentHandler<S> {
    /// Serves with `creator`, finishing interrupted creates every `recovery_interval`
    /// while it lives; replies stay within `max_payload` bytes.
    pub fn new(creator: Creator<S>, max_payload: usize, recovery_interval: Duration) -> Self {
        let creator = Arc::new(creator);
        let recovery = shared::background::every("create recovery", recovery_interval, {
            let creator = Arc::clone(&creator);
            move || {
                let creator = Arc::clone(&creator);
                // Failures are logged by the span; the next round tries again.
                async move { drop(creator.recover().await) }
            }
        });
        Self { creator, max_payload, _recovery: recovery }
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
        let consignment = self.creator.create(valid, key).await?;
        Ok(encode(&CreatedConsignment { created: true, consignment }))
    }

    async fn get(&self, payload: &[u8]) -> Result<Vec<u8>, ServiceError> {
        let GetConsignment { id } = decode_request(payload)?;
        let found = if shared::store::is_key(&id) { self.creator.store().consignment(&id).await? } else { None };
        let consignment = found.ok_or_else(|| ServiceError::not_found("no such consignment"))?;
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
        let after = match request.cursor.as_deref() {
            None => 0,
            Some(cursor) => {
                cursor.parse().map_err(|_| ServiceError::bad_request("cursor is not one this service gave"))?
            }
        };
        let query = PageQuery {
            after,
            limit: limit as usize,
            filter: ConsignmentFilter { vessel_id: request.vessel_id, user_id: request.user_id },
            max_bytes: self.max_payload.saturating_sub(ENVELOPE_BYTES),
        };
        let page = self.creator.store().page(&query).await?;
        Ok(encode(&ConsignmentList { consignments: page.consignments, next: page.next.map(|next| next.to_string()) }))
    }
}

impl<S: ConsignmentStore> Handler for ConsignmentHandler<S> {
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
