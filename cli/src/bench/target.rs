//! What each scenario asks, and the bare echo responder that `raw` asks.

use bytes::Bytes;
use futures::StreamExt as _;
use shared::{
    ErrorCode,
    client::RequestError,
    codec::encode,
    model::{CreatedConsignment, CreatedVessel, Load, NewConsignment, NewVessel, Specification, Vessel, VesselReply},
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
    let vessel = NewVessel {
        id: BENCH_VESSEL.to_owned(),
        capacity: u32::MAX,
        max_weight: u64::MAX,
        name: "shippy bench".to_owned(),
        available: true,
        owner_id: String::new(),
    };
    match services.request::<CreatedVessel>(vessel::CREATE, encode(&vessel).into()).await {
        Err(RequestError::Service(error)) if error.code == ErrorCode::Conflict => Ok(()),
        other => other.map(drop).map_err(|error| anyhow::anyhow!("create: adding the vessel {BENCH_VESSEL}: {error}")),
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

    /// Sends the request once and decodes its reply, as any shippy client would.
    pub(super) async fn call(&self, services: &Services) -> Result<(), RequestError> {
        match self.reply {
            Reply::Vessel => services.request::<VesselReply>(&self.subject, self.payload.clone()).await.map(drop),
            Reply::Created => {
                services.request::<CreatedConsignment>(&self.subject, self.payload.clone()).await.map(drop)
            }
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
        let nats = shared::nats::connect_client(config, "shippy-bench-echo", shared::roles::CLIENT, timeout)
            .await
            .with_context(|| format!("cannot reach NATS at {}", config.redacted_url()))?;
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
