//! What each scenario asks, and the bare echo responder that `raw` asks.

use bytes::Bytes;
use futures::StreamExt as _;
use shared::{
    ErrorCode,
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
    pub(super) subject: String,
    payload: Bytes,
    reply: Reply,
}

#[derive(Debug, Clone, Copy)]
enum Reply {
    Vessel,
    Created,
}

impl Target {
    /// `raw`: the echo responder at `subject`, asked what `find` asks.
    pub(super) fn echo(subject: String) -> Self {
        Self { subject, payload: encode(&SPECIFICATION).into(), reply: Reply::Vessel }
    }

    /// `find`: `vessel.find_available`.
    pub(super) fn find() -> Self {
        Self {
            subject: vessel::FIND_AVAILABLE.to_owned(),
            payload: encode(&SPECIFICATION).into(),
            reply: Reply::Vessel,
        }
    }

    /// `create`: `consignment.create` with `new`.
    pub(super) fn create(new: &NewConsignment) -> Self {
        Self { subject: consignment::CREATE.to_owned(), payload: encode(new).into(), reply: Reply::Created }
    }

    /// Sends the request once and decodes its reply, as any shippy client would,
    /// as the root of a trace of its own (sampled as `OTEL_TRACES_SAMPLER` says).
    pub(super) async fn call(&self, services: &Services) -> Result<(), RequestError> {
        use tracing::Instrument as _;
        let span = tracing::info_span!(parent: None, "bench");
        match self.reply {
            Reply::Vessel => {
                services.request::<VesselReply>(&self.subject, self.payload.clone()).instrument(span).await.map(drop)
            }
            Reply::Created => services
                .request::<CreatedConsignment>(&self.subject, self.payload.clone())
                .instrument(span)
                .await
                .map(drop),
        }
    }
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
