//! Serving endpoints as an ADR-32 NATS micro service.
//!
//! A [`Service`] subscribes its endpoints in a queue group (so every running
//! instance shares the load), answers `$SRV.PING|INFO|STATS` (so `nats micro ls`
//! lists it), hands each request to a [`Handler`] on its own task (so one slow
//! request never holds up the next) with at most [`ServiceSpec::max_in_flight`] at
//! once (past that it stops reading and NATS buffers), and shuts down gracefully:
//! it stops taking requests, finishes the ones in flight, then drains the connection.

use std::{
    collections::HashMap,
    future::Future,
    num::NonZeroUsize,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex},
};

use async_nats::{Client, HeaderMap, service::ServiceExt as _};
use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _, stream::SelectAll};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use crate::error::{ERROR_CODE_HEADER, ERROR_HEADER, ErrorCode, ServiceError};

/// Serves one request.
pub trait Handler: Send + Sync + 'static {
    /// Answers a request that arrived on `subject` (one of the service's endpoint
    /// subjects) with a JSON reply body, or an error reply.
    fn handle(&self, subject: &str, payload: Bytes) -> impl Future<Output = Result<Vec<u8>, ServiceError>> + Send;
}

/// What a service is called and which endpoints it serves.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// Service name, also the subject prefix of its endpoints.
    pub name: &'static str,
    /// Semantic version reported by `$SRV.INFO`.
    pub version: &'static str,
    pub description: &'static str,
    /// Queue group every instance of the service joins.
    pub queue_group: &'static str,
    /// Endpoint names; each is served on `<name>.<endpoint>`.
    pub endpoints: &'static [&'static str],
    /// Requests larger than this get a [`ErrorCode::PayloadTooLarge`] reply unread.
    pub max_request_bytes: usize,
    /// Requests handled at once; further ones wait in NATS until one finishes.
    pub max_in_flight: NonZeroUsize,
}

/// Why a service could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not register the {name} service: {source}")]
    Start {
        name: &'static str,
        #[source]
        source: async_nats::Error,
    },
    #[error("could not flush the subscriptions of the {name} service: {source}")]
    Flush {
        name: &'static str,
        #[source]
        source: async_nats::client::FlushError,
    },
    #[error("could not drain the NATS connection: {0}")]
    Drain(#[from] async_nats::client::DrainError),
}

/// A registered service whose endpoints are subscribed and ready.
pub struct Service<H> {
    client: Client,
    micro: async_nats::service::Service,
    requests: SelectAll<async_nats::service::endpoint::Endpoint>,
    responder: Arc<Responder<H>>,
    spec: ServiceSpec,
}

impl<H> std::fmt::Debug for Service<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("spec", &self.spec).finish_non_exhaustive()
    }
}

impl<H: Handler> Service<H> {
    /// Registers the service and subscribes its endpoints.
    ///
    /// Returns once the server has the subscriptions, so a request sent after
    /// this returns reaches the service.
    pub async fn start(client: Client, spec: ServiceSpec, handler: H) -> Result<Self, Error> {
        let start_error = |source| Error::Start { name: spec.name, source };
        let errors = Arc::new(ErrorStats::default());
        let service = client
            .service_builder()
            .description(spec.description)
            .stats_handler({
                let errors = Arc::clone(&errors);
                move |subject, _| errors.report(&subject)
            })
            .queue_group(spec.queue_group)
            .start(spec.name, spec.version)
            .await
            .map_err(start_error)?;
        let group = service.group(spec.name);
        let mut requests = SelectAll::new();
        for endpoint in spec.endpoints {
            requests.push(group.endpoint(*endpoint).await.map_err(start_error)?);
        }
        client.flush().await.map_err(|source| Error::Flush { name: spec.name, source })?;
        tracing::info!(service = spec.name, queue_group = spec.queue_group, endpoints = ?spec.endpoints, "service ready");
        let responder = Arc::new(Responder { handler, errors, max_request_bytes: spec.max_request_bytes });
        Ok(Self { client, micro: service, requests, responder, spec })
    }

    /// Serves requests until `shutdown` completes or the connection closes, then
    /// shuts down gracefully: stops taking requests, finishes those in flight and
    /// drains the connection.
    ///
    /// # Panics
    /// Never: the semaphore bounding requests in flight is never closed.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let Self { client, micro, mut requests, responder, spec } = self;
        let in_flight = TaskTracker::new();
        let slots = Arc::new(Semaphore::new(spec.max_in_flight.get()));
        let take_slot = || async { Arc::clone(&slots).acquire_owned().await.expect("the semaphore is never closed") };
        let spawn_answer = |request, slot: OwnedSemaphorePermit| {
            let responder = Arc::clone(&responder);
            in_flight.spawn(async move {
                responder.answer(request).await;
                drop(slot);
            })
        };

        tokio::pin!(shutdown);
        loop {
            // A free slot first, then a request: at the limit, requests stay queued in NATS.
            let slot = tokio::select! {
                () = &mut shutdown => break,
                slot = take_slot() => slot,
            };
            tokio::select! {
                () = &mut shutdown => break,
                request = requests.next() => match request {
                    Some(request) => { spawn_answer(request, slot); }
                    None => break,
                },
            }
        }

        tracing::info!(service = spec.name, in_flight = in_flight.len(), "shutting down: no new requests");
        // Unsubscribes every endpoint; what they had already received still comes through below.
        if let Err(error) = micro.stop().await {
            tracing::warn!(%error, "stopping the service");
        }
        while let Some(request) = requests.next().await {
            spawn_answer(request, take_slot().await);
        }
        in_flight.close();
        in_flight.wait().await;
        // Drain closes the connection without waiting for the server to acknowledge
        // what was written; flush first so that the last replies are on the server.
        client.flush().await.map_err(|source| Error::Flush { name: spec.name, source })?;
        client.drain().await?;
        tracing::info!(service = spec.name, "stopped");
        Ok(())
    }
}

/// Starts a service, unless `shutdown` completes first, then serves it until
/// `shutdown` completes: the body of every worker's `run`.
pub async fn run<H, E>(
    start: impl Future<Output = Result<Service<H>, E>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), E>
where
    H: Handler,
    E: From<Error>,
{
    tokio::pin!(shutdown);
    let service = tokio::select! {
        service = start => service?,
        () = &mut shutdown => return Ok(()),
    };
    Ok(service.serve(shutdown).await?)
}

/// Turns requests into replies.
struct Responder<H> {
    handler: H,
    errors: Arc<ErrorStats>,
    max_request_bytes: usize,
}

impl<H: Handler> Responder<H> {
    /// Serves one request (on its own task) and sends the reply.
    async fn answer(self: Arc<Self>, request: async_nats::service::Request) {
        let message = &request.message;
        let size = message.payload.len();
        let result = if size > self.max_request_bytes {
            Err(ServiceError::new(
                ErrorCode::PayloadTooLarge,
                format!("request of {size} bytes exceeds the limit of {} bytes", self.max_request_bytes),
            ))
        } else {
            // A bug in one handler must cost one request, not the worker.
            AssertUnwindSafe(self.handler.handle(&message.subject, message.payload.clone()))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(ServiceError::internal("internal error")))
        };

        let (headers, body) = match result {
            Ok(body) => (HeaderMap::new(), body),
            Err(error) => {
                tracing::debug!(subject = %message.subject, %error, "request failed");
                self.errors.record(&message.subject, &error);
                (error_headers(&error), error.to_json())
            }
        };
        // The error travels as a JSON body *and* as ADR-32 headers; async-nats's own error
        // path would send an empty body, which a plain `nats req` user could not read.
        if let Err(error) = request.respond_with_headers(Ok(body.into()), headers).await {
            tracing::warn!(subject = %message.subject, %error, "could not send the reply");
        }
    }
}

/// The ADR-32 error headers of an error reply: the code, and the message as one
/// printable line of bounded length (see [`crate::error::header_safe`]), so that any
/// message can be sent; the JSON body ([`ServiceError::to_json`]) carries it whole.
pub fn error_headers(error: &ServiceError) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(ERROR_HEADER, error.header_message());
    headers.insert(ERROR_CODE_HEADER, error.code.to_string());
    headers
}

/// Error replies per endpoint subject.
///
/// async-nats counts `num_errors` only for replies sent down its own error path,
/// which has no body; ours go down the success path with the error headers set, so
/// they are counted here and reported as each endpoint's `data` in `$SRV.STATS`:
/// `{"num_errors": 2, "last_error": "404:no vessel available"}`.
#[derive(Debug, Default)]
struct ErrorStats(Mutex<HashMap<String, (u64, String)>>);

impl ErrorStats {
    fn record(&self, subject: &str, error: &ServiceError) {
        let mut errors = self.0.lock().expect("error stats lock poisoned");
        let entry = errors.entry(subject.to_owned()).or_default();
        *entry = (entry.0 + 1, format!("{}:{}", error.code, error.message));
    }

    fn report(&self, subject: &str) -> serde_json::Value {
        let errors = self.0.lock().expect("error stats lock poisoned");
        let (count, last) = errors.get(subject).cloned().unwrap_or_default();
        serde_json::json!({ "num_errors": count, "last_error": last })
    }
}
