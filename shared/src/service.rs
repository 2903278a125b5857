//! Serving endpoints as an ADR-32 NATS micro service.
//!
//! A [`Service`] subscribes its endpoints in a queue group (so every running
//! instance shares the load), answers `$SRV.PING|INFO|STATS` (so `nats micro ls`
//! lists it and `nats micro stats` counts its error replies: see [`crate::micro`]), hands each request to a [`Handler`] on its own task (so one slow
//! request never holds up the next) with at most [`ServiceSpec::max_in_flight`] at
//! once (past that it stops reading and NATS buffers), and shuts down gracefully:
//! it stops taking requests, finishes the ones in flight, then drains the connection.
//!
//! # The shutdown guarantee
//!
//! A request the server delivered to this instance is answered by it; one that
//! reaches the server after the instance's unsubscribe gets "no responders" (or goes
//! to another instance of the queue group). Nothing falls in between: the endpoints
//! are unsubscribed first, and the stream of requests ends only once the server has
//! confirmed the unsubscribe, after everything it had routed here (async-nats is
//! patched for this, `vendor/async-nats/PATCHED.md`); each of those is answered, and
//! the replies are confirmed on the server by a round trip before the process exits.
//!
//! Shutdown is bounded by [`ServiceSpec::shutdown_grace`]: when NATS cannot be
//! reached (stopped, frozen, refusing the connection), the worker gives up at the
//! deadline, logs which step it could not finish and how many requests were still
//! unanswered, and returns `Ok`: their replies are lost, and only then.

// A handler panic is caught (`catch_unwind` in `Responder::answer`) and costs one
// request; with `panic = "abort"` it would take the worker down, so no such build.
#[cfg(not(panic = "unwind"))]
compile_error!("shippy's services need panic = \"unwind\": a handler panic must cost one request, not the worker");

use std::{
    future::Future,
    num::NonZeroUsize,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use async_nats::{Client, HeaderMap, Message, SubscribeError, Subscriber};
use bytes::Bytes;
use futures::{FutureExt as _, Stream, StreamExt as _, stream::SelectAll};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use crate::{
    error::{ERROR_CODE_HEADER, ERROR_HEADER, ErrorCode, ServiceError},
    micro::{self, Identity, Registry},
};

/// Serves one request.
pub trait Handler: Send + Sync + 'static {
    /// Answers a request that arrived on `subject` (one of the service's endpoint
    /// subjects) with a JSON reply body, or an error reply. `headers` are the
    /// request's, if it had any (such as `Nats-Msg-Id`).
    fn handle(
        &self,
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: Bytes,
    ) -> impl Future<Output = Result<Vec<u8>, ServiceError>> + Send;
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
    /// How long shutdown may take, from the signal: unsubscribing, answering what was
    /// delivered, confirming the replies. Past it, the service stops without NATS.
    pub shutdown_grace: Duration,
    /// Where to serve `/metrics`, `/healthz` and `/readyz` ([`crate::health`]), if anywhere.
    pub metrics_addr: Option<String>,
}

/// Why a service could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not register the {name} service: {source}")]
    Start {
        name: &'static str,
        #[source]
        source: async_nats::SubscribeError,
    },
    #[error(transparent)]
    Health(#[from] crate::health::BindError),
    #[error("the server did not confirm the subscriptions of the {name} service: {source}")]
    Ready {
        name: &'static str,
        #[source]
        source: crate::nats::RoundTripError,
    },
}

/// A registered service whose endpoints are subscribed and ready.
pub struct Service<H> {
    client: Client,
    /// Answers `$SRV.PING|INFO|STATS` until aborted.
    verbs: tokio::task::JoinHandle<()>,
    requests: Endpoints,
    responder: Arc<Responder<H>>,
    spec: ServiceSpec,
    health: Option<crate::health::Health>,
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
        let health = match &spec.metrics_addr {
            Some(addr) => Some(crate::health::Health::serve(addr).await?),
            None => None,
        };
        let registry = Arc::new(Registry::new(Identity {
            name: spec.name,
            version: spec.version,
            description: spec.description,
            queue_group: spec.queue_group,
            endpoints: spec.endpoints,
        }));
        let requests = Endpoints::subscribe(&client, &registry).await.map_err(start_error)?;
        let verbs = micro::answer_verbs(&client, Arc::clone(&registry)).await.map_err(start_error)?;
        // The server has the subscriptions once a round trip through it is done.
        crate::nats::round_trip(&client).await.map_err(|source| Error::Ready { name: spec.name, source })?;
        tracing::info!(service = spec.name, queue_group = spec.queue_group, endpoints = ?spec.endpoints, "service ready");
        if let Some(health) = &health {
            health.serving(client.clone());
        }
        let responder = Arc::new(Responder {
            handler,
            client: client.clone(),
            registry,
            max_request_bytes: spec.max_request_bytes,
            max_payload: client.server_info().max_payload,
        });
        Ok(Self { client, verbs, requests, responder, spec, health })
    }

    /// Serves requests until `shutdown` completes or the connection closes, then
    /// shuts down gracefully within [`ServiceSpec::shutdown_grace`]: stops taking
    /// requests, answers every one the server delivered, confirms the replies are on
    /// the server and drains the connection (see the module's documentation).
    ///
    /// # Errors
    /// None once serving: a shutdown NATS cannot confirm is logged, not an error.
    ///
    /// # Panics
    /// Never: the semaphore bounding requests in flight is never closed.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let Self { client, verbs, mut requests, responder, spec, health } = self;
        let in_flight = TaskTracker::new();
        let slots = Arc::new(Semaphore::new(spec.max_in_flight.get()));
        let take_slot = || async { Arc::clone(&slots).acquire_owned().await.expect("the semaphore is never closed") };
        let spawn_answer = |request, slot: OwnedSemaphorePermit| {
            let taken = Instant::now();
            let responder = Arc::clone(&responder);
            in_flight.spawn(async move {
                responder.answer(request, taken).await;
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
        if let Some(health) = &health {
            health.stopping();
        }
        let deadline = tokio::time::Instant::now() + spec.shutdown_grace;
        let mut step = Step::Unsubscribe;
        let confirmed = tokio::time::timeout_at(deadline, async {
            // Unsubscribes every endpoint. The stream ends once the server has
            // confirmed that, after every request it had routed here: each is answered.
            requests.drain().await;
            while let Some(request) = requests.next().await {
                spawn_answer(request, take_slot().await);
            }
            step = Step::Answer;
            in_flight.close();
            in_flight.wait().await;
            // The replies are on the server once a round trip through it is done
            // (`Client::flush` only writes them to the socket).
            step = Step::Confirm;
            crate::nats::round_trip(&client).await
        })
        .await;
        verbs.abort();
        match confirmed {
            Ok(Ok(())) => {
                // Nothing is left to send: the drain only closes the connection tidily.
                if let Err(error) = client.drain().await {
                    tracing::debug!(%error, "could not drain the connection");
                }
                tracing::info!(service = spec.name, "stopped");
            }
            Ok(Err(error)) => tracing::warn!(
                service = spec.name,
                %error,
                "stopped; the server did not confirm the last replies, which may be lost"
            ),
            Err(_) => tracing::warn!(
                service = spec.name,
                grace = ?spec.shutdown_grace,
                unfinished = step.describe(),
                unanswered = in_flight.len(),
                "stopped without NATS: it did not confirm the shutdown within the grace period; \
                 replies not yet on the server are lost"
            ),
        }
        Ok(())
    }
}

/// The step of a shutdown under way.
#[derive(Debug, Clone, Copy)]
enum Step {
    Unsubscribe,
    Answer,
    Confirm,
}

impl Step {
    fn describe(self) -> &'static str {
        match self {
            Self::Unsubscribe => "unsubscribing the endpoints (requests routed here may be unanswered)",
            Self::Answer => "answering the requests delivered",
            Self::Confirm => "confirming the replies on the server",
        }
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
    client: Client,
    registry: Arc<Registry>,
    max_request_bytes: usize,
    /// The largest message the server takes: a larger reply would be dropped unseen.
    max_payload: usize,
}

impl<H: Handler> Responder<H> {
    /// Serves one request to endpoint `index` (on its own task), sends the reply and counts it.
    /// `taken` is when it was taken off the subscription.
    async fn answer(self: Arc<Self>, (index, message): (usize, Message), taken: Instant) {
        let received = Instant::now();
        let metered = crate::meter::Request::start(self.registry.meter(index), received - taken);
        let size = message.payload.len();
        let span =
            crate::telemetry::server_span(&message.subject, self.registry.queue_group(index), message.headers.as_ref());
        let result = if size > self.max_request_bytes {
            Err(ServiceError::new(
                ErrorCode::PayloadTooLarge,
                format!("request of {size} bytes exceeds the limit of {} bytes", self.max_request_bytes),
            ))
        } else {
            // A bug in one handler must cost one request, not the worker (this crate
            // builds only with `panic = "unwind"`: see the `compile_error!` above).
            AssertUnwindSafe(span.run(self.handler.handle(
                &message.subject,
                message.headers.as_ref(),
                message.payload.clone(),
            )))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(ServiceError::internal("internal error")))
        };
        // A reply NATS would refuse becomes an error reply, never silence.
        let result = result.and_then(|body| {
            if body.len() > self.max_payload {
                tracing::error!(subject = %message.subject, bytes = body.len(), "a reply over max_payload");
                return Err(ServiceError::internal(format!(
                    "the reply of {} bytes exceeds the server's max_payload of {} bytes",
                    body.len(),
                    self.max_payload
                )));
            }
            Ok(body)
        });

        let (headers, body) = match &result {
            Ok(body) => (None, body.clone()),
            Err(error) => {
                span.record_error(&error.code);
                span.in_scope(|| tracing::debug!(subject = %message.subject, %error, "request failed"));
                (Some(error_headers(error)), error.to_json())
            }
        };
        // The error travels as a JSON body *and* as ADR-32 headers: a plain `nats req`
        // user reads the one, NATS tooling the other.
        if let Some(reply) = message.reply {
            let sent = match headers {
                Some(headers) => self.client.publish_with_headers(reply, headers, body.into()).await,
                None => self.client.publish(reply, body.into()).await,
            };
            if let Err(error) = sent {
                tracing::warn!(subject = %message.subject, %error, "could not send the reply");
            }
        }
        let took = received.elapsed();
        if let Some(metered) = metered {
            metered.done(took, result.as_ref().err().map(|error| error.code));
        }
        self.registry.record(index, took, result.as_ref().err());
    }
}

/// The requests to every endpoint of a service, each tagged with its endpoint's index.
#[derive(Debug)]
struct Endpoints(SelectAll<EndpointRequests>);

#[derive(Debug)]
struct EndpointRequests {
    index: usize,
    subscriber: Subscriber,
}

impl Stream for EndpointRequests {
    type Item = (usize, Message);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let index = self.index;
        self.subscriber.poll_next_unpin(cx).map(|message| message.map(|message| (index, message)))
    }
}

impl Endpoints {
    /// Subscribes every endpoint of `registry` in its queue group.
    async fn subscribe(client: &Client, registry: &Registry) -> Result<Self, SubscribeError> {
        let mut requests = SelectAll::new();
        for (index, (subject, queue_group)) in registry.endpoints().enumerate() {
            let subscriber = client.queue_subscribe(subject.to_owned(), queue_group.to_owned()).await?;
            requests.push(EndpointRequests { index, subscriber });
        }
        Ok(Self(requests))
    }

    /// Unsubscribes every endpoint; the stream still yields what the server had sent
    /// before it took the unsubscribe, then ends once the server has confirmed it
    /// (a PING answered after the UNSUBs: async-nats as patched in `vendor/async-nats`;
    /// 0.51.0 ended it sooner and dropped what was still on its way).
    async fn drain(&mut self) {
        for endpoint in &mut self.0 {
            if let Err(error) = endpoint.subscriber.drain().await {
                tracing::warn!(%error, "could not unsubscribe an endpoint");
            }
        }
    }
}

impl Stream for Endpoints {
    type Item = (usize, Message);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_next_unpin(cx)
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
