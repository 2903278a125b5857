//! A worker's HTTP port for operators, on `METRICS_ADDR` (off when unset):
//!
//! * `GET /metrics`: the [`crate::meter`] metrics, as Prometheus text;
//! * `GET /healthz`: 200 while the process is up;
//! * `GET /readyz`: 200 `ready` while the service takes requests: connected to
//!   NATS, its subscriptions confirmed by the server (a round trip after
//!   subscribing) and its stores open (both happen before the service starts);
//!   503 with the reason otherwise: starting, NATS disconnected, shutting down.
//!
//! The worker images are `scratch` (no shell, no curl): [`probe`] is the
//! `health` subcommand of each worker binary, for compose healthchecks.

use std::{
    future::IntoFuture as _,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use async_nats::{Client, connection::State};
use axum::{Router, extract, http::StatusCode, routing::get};

/// How often the metrics recorder folds the histogram samples recorded meanwhile
/// into their buckets (a scrape does it too).
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// Where a worker serves [`health`](self): `host:port`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HealthConfig {
    /// Serve /metrics, /healthz and /readyz on this `host:port` (unset: off).
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<String>,
}

/// The `health` subcommand of a worker binary.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Asks this worker's own `/readyz` (on `METRICS_ADDR`); exits 0 if ready, 1 if not.
    Health,
}

/// Why the health port could not be served.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve /metrics on {addr}: {source}")]
pub struct BindError {
    addr: String,
    #[source]
    source: std::io::Error,
}

/// What the service tells the port.
#[derive(Debug, Default)]
struct Readiness {
    /// The service's connection, once it takes requests; `None` before, and from shutdown on.
    serving: Option<Client>,
    stopping: bool,
}

/// The health port being served; stops when dropped.
#[derive(Debug)]
pub struct Health {
    readiness: Arc<Mutex<Readiness>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Health {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Health {
    /// Binds `addr`, installs the metrics recorder, and serves the port on a task.
    pub async fn serve(addr: &str) -> Result<Self, BindError> {
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|source| BindError { addr: addr.to_owned(), source })?;
        let prometheus = crate::meter::install();
        let readiness = Arc::new(Mutex::new(Readiness::default()));
        let app = Router::new()
            .route("/metrics", get(move || std::future::ready(prometheus.render())))
            .route("/healthz", get(|| std::future::ready("ok")))
            .route("/readyz", get(ready))
            .with_state(Arc::clone(&readiness));
        tracing::info!(addr = ?listener.local_addr().ok(), "serving /metrics, /healthz and /readyz");
        let upkeep = crate::meter::install();
        let server = tokio::spawn(async move {
            // The recorder keeps each histogram sample until upkeep folds it into the
            // buckets: without it, samples would pile up between scrapes, or forever.
            let upkeep = async move {
                let mut every = tokio::time::interval(UPKEEP_EVERY);
                loop {
                    every.tick().await;
                    upkeep.run_upkeep();
                }
            };
            tokio::select! {
                served = axum::serve(listener, app).into_future() => if let Err(error) = served {
                    tracing::warn!(%error, "the health port stopped");
                },
                () = upkeep => {}
            }
        });
        Ok(Self { readiness, server })
    }

    /// The service takes requests on `client`.
    pub fn serving(&self, client: Client) {
        self.readiness.lock().unwrap_or_else(PoisonError::into_inner).serving = Some(client);
    }

    /// The service is shutting down: not ready any more.
    pub fn stopping(&self) {
        let mut readiness = self.readiness.lock().unwrap_or_else(PoisonError::into_inner);
        readiness.stopping = true;
        readiness.serving = None;
    }
}

async fn ready(extract::State(readiness): extract::State<Arc<Mutex<Readiness>>>) -> (StatusCode, &'static str) {
    let readiness = readiness.lock().unwrap_or_else(PoisonError::into_inner);
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    match &readiness.serving {
        _ if readiness.stopping => (unavailable, "not ready: shutting down"),
        None => (unavailable, "not ready: starting"),
        Some(client) if client.connection_state() != State::Connected => (unavailable, "not ready: NATS disconnected"),
        Some(_) => (StatusCode::OK, "ready"),
    }
}

/// How long [`probe`] waits for the answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why [`probe`] found the worker not ready.
#[derive(Debug, thiserror::Error)]
#[error("not ready: {0}")]
pub struct NotReady(String);

/// Asks `/readyz` on `addr` (a wildcard host is asked on loopback); `Ok` if the
/// worker is ready, else why not.
pub async fn probe(addr: Option<&str>) -> Result<(), NotReady> {
    probe_url(addr).await.map_err(NotReady)
}

async fn probe_url(addr: Option<&str>) -> Result<(), String> {
    let addr = addr.ok_or("METRICS_ADDR is not set: no health port to ask")?;
    let addr = addr.replace("0.0.0.0:", "127.0.0.1:").replace("[::]:", "[::1]:");
    let url = format!("http://{addr}/readyz");
    let client = reqwest::Client::builder().timeout(PROBE_TIMEOUT).build().map_err(|error| error.to_string())?;
    let response = client.get(&url).send().await.map_err(|error| format!("{url}: {error}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.is_success() { Ok(()) } else { Err(format!("{url}: {status} {body}")) }
}
