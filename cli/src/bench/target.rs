//! What each scenario asks, and the bare echo responder that `raw` asks.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use reqwest::header::{self, HeaderValue};
use shared::{
    ErrorCode, ServiceError,
    client::RequestError,
    codec::encode,
    model::{
        Consignment, ConsignmentsCreated, CreatedConsignment, CreatedEntry, CreatedVessel, Load, NewConsignment,
        NewVessel, Specification, Vessel, VesselReply,
    },
    nats::NatsConfig,
    subjects::{consignment, vessel},
};

use crate::client::Services;

/// The specification `raw` and `find` send: the seed consignment's needs.
const SPECIFICATION: Specification = Specification { capacity: 3, max_weight: 55_000, sequence: None };

/// The gateway's route `http-create` sends to.
pub(super) const HTTP_CREATE_PATH: &str = "/v1/consignments";

/// The vessel the `create` scenario books onto: first in id order, with room for
/// every consignment a bench can send, so that the fleet never runs out mid-run.
pub(super) const BENCH_VESSEL: &str = "bench";

/// Adds [`BENCH_VESSEL`] to the fleet, unless it is there.
pub(super) async fn add_bench_vessel(services: &Services) -> anyhow::Result<()> {
    add_vessel(services, BENCH_VESSEL, u32::MAX, u64::MAX)
        .await
        .map(drop)
        .map_err(|error| anyhow::anyhow!("create: {error}"))
}

/// The vessel `--fill` stores its consignments on.
const FILL_VESSEL: &str = "bench-fill";
/// Consignments in each event `--fill` appends.
const FILL_PER_EVENT: u64 = 500;
/// Appends or requests `--fill` and `--fleet` keep in flight.
const GROWTH_IN_FLIGHT: usize = 256;

/// Stores `count` copies of `new` on [`FILL_VESSEL`] (added with room for them),
/// appended straight to the event stream as the consignment-worker appends them,
/// [`FILL_PER_EVENT`] to an event. Needs the admin's login.
pub(super) async fn fill(services: &Services, new: &NewConsignment, count: u64) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use futures::{StreamExt as _, TryStreamExt as _};
    add_vessel(services, FILL_VESSEL, u32::MAX, u64::MAX).await?;
    let js = async_nats::jetstream::new(services.nats().clone());
    let subject = consignment::created_event(FILL_VESSEL);
    futures::stream::iter((0..count).step_by(usize::try_from(FILL_PER_EVENT).unwrap_or(usize::MAX)))
        .map(|first| {
            let entries = (first..count.min(first + FILL_PER_EVENT))
                .map(|_| CreatedEntry {
                    consignment: Consignment {
                        id: uuid::Uuid::new_v4().to_string(),
                        description: new.description.clone(),
                        weight: new.weight,
                        containers: new.containers.clone(),
                        vessel_id: FILL_VESSEL.to_owned(),
                    },
                    idempotency: None,
                })
                .collect();
            let payload = shared::store::encode(&ConsignmentsCreated { consignments: entries });
            let (js, subject) = (js.clone(), subject.clone());
            async move { js.publish(subject, payload).await?.await.map(drop).map_err(anyhow::Error::from) }
        })
        .buffer_unordered(GROWTH_IN_FLIGHT)
        .try_collect::<()>()
        .await
        .context("--fill: appending to the event stream (it takes the admin's login)")
}

/// Adds vessels `0-fleet-NNNNNNN` through `vessel.create` until the fleet has
/// `size`: first in id order, each with room for one container only, so that a
/// find skips them all. Returns how many it added.
pub(super) async fn grow_fleet(services: &Services, size: u64) -> anyhow::Result<u64> {
    use futures::{StreamExt as _, TryStreamExt as _};
    futures::stream::iter(0..size)
        .map(|n| async move {
            Ok::<u64, anyhow::Error>(add_vessel(services, &format!("0-fleet-{n:07}"), 1, 1).await?.into())
        })
        .buffer_unordered(GROWTH_IN_FLIGHT)
        .try_fold(0, |added, one| async move { Ok(added + one) })
        .await
}

/// Adds vessel `id`; false if it exists.
async fn add_vessel(services: &Services, id: &str, capacity: u32, max_weight: u64) -> anyhow::Result<bool> {
    let vessel = NewVessel {
        id: id.to_owned(),
        capacity,
        max_weight,
        name: format!("shippy bench {id}"),
        available: true,
        owner_id: String::new(),
    };
    match services.request::<CreatedVessel>(vessel::CREATE, encode(&vessel).into()).await {
        Ok(_) => Ok(true),
        Err(RequestError::Service(error)) if error.code == ErrorCode::Conflict => Ok(false),
        Err(error) => Err(anyhow::anyhow!("adding the vessel {id}: {error}")),
    }
}

/// One request, sent again and again, and the reply type it decodes to.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// What the report names it by: the NATS subject, or the HTTP method and path.
    pub(super) subject: String,
    payload: Bytes,
    way: Way,
}

/// How a request goes out, and what its reply decodes to.
#[derive(Debug, Clone)]
enum Way {
    /// A NATS request on the bench's connection.
    Nats(Reply),
    /// An HTTP request to the gateway, with its API token.
    Http(Gateway),
}

#[derive(Debug, Clone, Copy)]
enum Reply {
    Vessel,
    Created,
}

/// The gateway an HTTP scenario sends to: the route's URL, the `Authorization`
/// header, and the HTTP client, whose keep-alive connections its clones share.
#[derive(Debug, Clone)]
struct Gateway {
    http: reqwest::Client,
    url: reqwest::Url,
    authorization: HeaderValue,
    timeout: Duration,
}

impl Gateway {
    /// A client of its own: one keep-alive connection, kept between requests.
    fn client(timeout: Duration) -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(1)
            .tcp_nodelay(true)
            .build()
            .expect("an HTTP client with no TLS settings of its own builds")
    }
}

/// Why a request of the bench failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    /// A NATS request failed, or the gateway answered with a service's error (the same code and message).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The gateway refused the request itself (401, 415, 429, ...), with the services' error body.
    #[error("{status} {message}")]
    Refused { status: u16, message: String },
    /// No HTTP response: the gateway is not there, or did not answer in time.
    #[error("{method} {url}: {cause}")]
    Http { method: &'static str, url: String, cause: String, timeout: bool },
    /// A response that is not the JSON expected.
    #[error("unexpected response from {url}: {source}")]
    InvalidReply {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Failure {
    /// The kind the report counts it under; a service's error reads the same over
    /// NATS and HTTP: `404 no vessel available for 3 containers weighing 55000 kg`.
    pub(super) fn kind(&self) -> String {
        match self {
            Self::Request(error) => error.kind(),
            Self::Refused { status, message } => format!("{status} {}", first_clause(message)),
            Self::Http { timeout: true, .. } => "timeout".to_owned(),
            Self::Http { cause, .. } => format!("http: {cause}"),
            Self::InvalidReply { .. } => "invalid reply".to_owned(),
        }
    }

    /// The failure of a response with `status` and `body`: a service's error as the
    /// service's, the gateway's own as [`Failure::Refused`].
    fn of_response(status: reqwest::StatusCode, body: &[u8]) -> Self {
        let message = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|body| body["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        match ErrorCode::try_from(status.as_u16()) {
            Ok(code) => Self::Request(RequestError::Service(ServiceError::new(code, message))),
            Err(_) => Self::Refused { status: status.as_u16(), message },
        }
    }
}

/// A message up to its first `:` or `;`: what alike failures share.
fn first_clause(message: &str) -> &str {
    message.split([':', ';']).next().unwrap_or_default()
}

impl Target {
    /// `raw`: the echo responder at `subject`, asked what `find` asks.
    pub(super) fn echo(subject: String) -> Self {
        Self { subject, payload: encode(&SPECIFICATION).into(), way: Way::Nats(Reply::Vessel) }
    }

    /// `find`: `vessel.find_available`.
    pub(super) fn find() -> Self {
        Self {
            subject: vessel::FIND_AVAILABLE.to_owned(),
            payload: encode(&SPECIFICATION).into(),
            way: Way::Nats(Reply::Vessel),
        }
    }

    /// `create`: `consignment.create` with `new`.
    pub(super) fn create(new: &NewConsignment) -> Self {
        Self { subject: consignment::CREATE.to_owned(), payload: encode(new).into(), way: Way::Nats(Reply::Created) }
    }

    /// `http-create`: `POST /v1/consignments` with `new` to the gateway at `base`,
    /// with `token`; each response waits at most `timeout`.
    pub(super) fn http_create(
        base: &reqwest::Url,
        token: &str,
        new: &NewConsignment,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let url = base.join(HTTP_CREATE_PATH).with_context(|| format!("--gateway {base}: not a base URL"))?;
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| anyhow::anyhow!("the gateway token holds characters a header cannot carry"))?;
        authorization.set_sensitive(true);
        Ok(Self {
            subject: format!("POST {HTTP_CREATE_PATH}"),
            payload: encode(new).into(),
            way: Way::Http(Gateway { http: Gateway::client(timeout), url, authorization, timeout }),
        })
    }

    /// The target for one closed-loop client: an HTTP target gets a client of its
    /// own, so that each bench client keeps its own keep-alive connection, as a
    /// NATS client's requests share the bench's one connection.
    pub(super) fn for_client(&self) -> Self {
        match &self.way {
            Way::Nats(_) => self.clone(),
            Way::Http(gateway) => Self {
                way: Way::Http(Gateway { http: Gateway::client(gateway.timeout), ..gateway.clone() }),
                ..self.clone()
            },
        }
    }

    /// Sends the request once and decodes its reply, as any shippy client would,
    /// as the root of a trace of its own (sampled as `OTEL_TRACES_SAMPLER` says).
    pub(super) async fn call(&self, services: &Services) -> Result<(), Failure> {
        use tracing::Instrument as _;
        let span = tracing::info_span!(parent: None, "bench");
        match &self.way {
            Way::Nats(Reply::Vessel) => services
                .request::<VesselReply>(&self.subject, self.payload.clone())
                .instrument(span)
                .await
                .map(drop)
                .map_err(Failure::from),
            Way::Nats(Reply::Created) => services
                .request::<CreatedConsignment>(&self.subject, self.payload.clone())
                .instrument(span)
                .await
                .map(drop)
                .map_err(Failure::from),
            Way::Http(gateway) => self.post(gateway).instrument(span).await,
        }
    }

    /// `POST`s the payload as JSON and decodes a `201`'s body as a consignment.
    async fn post(&self, gateway: &Gateway) -> Result<(), Failure> {
        let failed = |error: reqwest::Error| Failure::Http {
            method: "POST",
            url: gateway.url.to_string(),
            timeout: error.is_timeout(),
            cause: root_cause(&error),
        };
        let response = gateway
            .http
            .post(gateway.url.clone())
            .header(header::AUTHORIZATION, gateway.authorization.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(self.payload.clone())
            .send()
            .await
            .map_err(failed)?;
        let status = response.status();
        let body = response.bytes().await.map_err(failed)?;
        if status != reqwest::StatusCode::CREATED {
            return Err(Failure::of_response(status, &body));
        }
        serde_json::from_slice::<Consignment>(&body)
            .map(drop)
            .map_err(|source| Failure::InvalidReply { url: gateway.url.to_string(), source })
    }
}

/// The innermost cause of `error`, which says what happened (`Connection refused`),
/// where reqwest's own message says only what it was doing.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// A bare responder on a connection of its own, answering every request with a
/// vessel-sized reply: what NATS request-reply costs with no service behind it.
#[derive(Debug)]
pub(super) struct Echo {
    pub(super) subject: String,
    task: tokio::task::JoinHandle<()>,
}

impl Echo {
    /// Subscribes on a fresh connection; requests sent after this returns reach it.
    pub(super) async fn start(config: &NatsConfig, timeout: std::time::Duration) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let nats = Services::connect_named(config, "shippy-bench-echo", timeout).await?.nats().clone();
        // Unique to this run, so two benches on one server never answer each other.
        let run = uuid::Uuid::new_v4().simple().to_string();
        let subject = format!("_SHIPPY.bench.echo.{}", &run[..8]);
        let mut requests = nats.subscribe(subject.clone()).await.context("cannot subscribe the echo responder")?;
        // Once a round trip through the server is done, it knows the subscription.
        shared::nats::round_trip(&nats).await.context("cannot subscribe the echo responder")?;
        let body = Bytes::from(encode(&VesselReply {
            vessel: Vessel {
                id: "vessel001".to_owned(),
                capacity: 500,
                max_weight: 200_000,
                name: "Boaty McBoatface".to_owned(),
                available: true,
                owner_id: String::new(),
                booked: Load::default(),
            },
        }));
        let task = tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                if let Some(reply) = request.reply {
                    // A reply that cannot be sent is the requester's timeout, counted there.
                    let _ = nats.publish(reply, body.clone()).await;
                }
            }
        });
        Ok(Self { subject, task })
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}
