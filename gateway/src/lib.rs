//! `gateway`: the shippy NATS endpoints as an HTTP/JSON API.
//!
//! | route                            | NATS subject            |
//! |----------------------------------|-------------------------|
//! | `POST /v1/consignments`          | `consignment.create`    |
//! | `GET /v1/consignments`           | `consignment.list`      |
//! | `GET /v1/consignments/{id}`      | `consignment.get`       |
//! | `GET /v1/vessels`                | `vessel.list`           |
//! | `POST /v1/vessels`               | `vessel.create`         |
//! | `GET /v1/vessels/available`      | `vessel.find_available` |
//! | `GET /v1/events`                 | `shippy-feed`, `consignment.created.*` (Server-Sent Events, [`events`]) |
//! | `GET /v1/services`               | `$SRV.STATS` (every instance's reply) |
//! | `GET /`, `/app.css`, `/app.js`   | (the dashboard, [`dashboard`]) |
//! | `GET /healthz`, `GET /readyz`    | (the process, the NATS connection) |
//! | `GET /openapi.json`              | (this API, described by [`routes::ApiDoc`]) |
//!
//! Every `/v1` route needs `Authorization: Bearer <token>` ([`auth`]), and is rate
//! limited per token. Handlers ([`routes`]) call [`nats::Nats`], a thin typed client
//! of the endpoints in [`shared::subjects`]; failures are [`error::ApiError`]s, which
//! become HTTP statuses with the services' error body at the edge.

pub mod auth;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod nats;
pub mod routes;

use std::{future::Future, net::SocketAddr, num::NonZeroU32, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::serve::ListenerExt as _;
use shared::{config::DEFAULT_MAX_REQUEST_BYTES, config::DEFAULT_SHUTDOWN_GRACE_MS, nats::NatsConfig};

/// Where the gateway listens when `GATEWAY_ADDR` is unset.
pub const DEFAULT_ADDR: &str = "0.0.0.0:8080";
/// How long a NATS request may take, by default, in milliseconds.
pub const DEFAULT_NATS_TIMEOUT_MS: u64 = 5_000;
/// How long a whole HTTP request may take, by default, in milliseconds: above the
/// NATS timeout, so that a slow service gets its own 504 with a message first.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Requests per second each token may make, by default, and the burst above it.
pub const DEFAULT_RATE_PER_SECOND: NonZeroU32 = NonZeroU32::new(50).expect("50 is not zero");
pub const DEFAULT_RATE_BURST: NonZeroU32 = NonZeroU32::new(100).expect("100 is not zero");

/// How a gateway is set up: flags, or the environment variables named.
#[derive(Debug, Clone, clap::Parser)]
#[command(version, about)]
pub struct Config {
    /// Where NATS is, and the credentials to log in with (the gateway role's nkey).
    #[command(flatten)]
    pub nats: NatsConfig,
    /// The address to listen on.
    #[arg(long, env = "GATEWAY_ADDR", default_value = DEFAULT_ADDR)]
    pub addr: SocketAddr,
    /// File of API token hashes (SHA-256, hex, one a line), as `shippy auth init`
    /// writes it; without it every `/v1` route answers 401.
    #[arg(long, env = "GATEWAY_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// How long to wait for a service's reply, in milliseconds (504 past it).
    #[arg(long, env = "GATEWAY_NATS_TIMEOUT_MS", default_value_t = DEFAULT_NATS_TIMEOUT_MS)]
    pub nats_timeout_ms: u64,
    /// How long a whole HTTP request may take, in milliseconds.
    #[arg(long, env = "GATEWAY_REQUEST_TIMEOUT_MS", default_value_t = DEFAULT_REQUEST_TIMEOUT_MS)]
    pub request_timeout_ms: u64,
    /// Request bodies larger than this many bytes are refused unread (413).
    #[arg(long, env = "MAX_REQUEST_BYTES", default_value_t = DEFAULT_MAX_REQUEST_BYTES)]
    pub max_request_bytes: usize,
    /// Requests per second each token may make on average (429 past it).
    #[arg(long, env = "GATEWAY_RATE_PER_SECOND", default_value_t = DEFAULT_RATE_PER_SECOND)]
    pub rate_per_second: NonZeroU32,
    /// Requests a token may make at once above the average rate.
    #[arg(long, env = "GATEWAY_RATE_BURST", default_value_t = DEFAULT_RATE_BURST)]
    pub rate_burst: NonZeroU32,
    /// Origins allowed to call the API from a browser (CORS), comma-separated;
    /// none by default, which leaves CORS off.
    #[arg(long, env = "GATEWAY_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// On SIGTERM, how long requests in flight may take to finish and NATS to drain.
    #[arg(long, env = "SHUTDOWN_GRACE_MS", default_value_t = DEFAULT_SHUTDOWN_GRACE_MS)]
    pub shutdown_grace_ms: u64,
}

impl Config {
    /// The defaults, connecting to `nats_url`.
    ///
    /// # Panics
    /// Never: the default address is a valid one.
    pub fn new(nats_url: impl Into<String>) -> Self {
        Self {
            nats: NatsConfig::new(nats_url),
            addr: DEFAULT_ADDR.parse().expect("a valid default address"),
            tokens_file: None,
            nats_timeout_ms: DEFAULT_NATS_TIMEOUT_MS,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            rate_per_second: DEFAULT_RATE_PER_SECOND,
            rate_burst: DEFAULT_RATE_BURST,
            cors_origins: Vec::new(),
            shutdown_grace_ms: DEFAULT_SHUTDOWN_GRACE_MS,
        }
    }
}

/// A gateway bound to its address, ready to serve.
#[derive(Debug)]
pub struct Gateway {
    listener: tokio::net::TcpListener,
    router: axum::Router,
    client: async_nats::Client,
    shutdown_grace: Duration,
    /// Ends the event feed and its responses when the gateway stops.
    stop_feed: tokio_util::sync::CancellationToken,
}

impl Gateway {
    /// Reads the tokens, connects to NATS (waiting for it in the background, as the
    /// workers do, so the gateway may start first) and binds the listen address.
    pub async fn start(config: &Config) -> anyhow::Result<Self> {
        let tokens = match &config.tokens_file {
            Some(path) => auth::Tokens::load(path)?,
            None => auth::Tokens::default(),
        };
        if tokens.is_empty() {
            tracing::warn!("no API tokens configured (GATEWAY_TOKENS_FILE): every /v1 route answers 401");
        } else {
            tracing::info!(tokens = tokens.len(), "API tokens loaded");
        }
        tracing::info!(nats_url = %config.nats.redacted_url(), "starting gateway");
        let client = shared::nats::connect_worker(&config.nats, shared::roles::GATEWAY).await?;
        let nats = nats::Nats::new(client.clone(), Duration::from_millis(config.nats_timeout_ms));
        let limits = auth::RateLimits::new(config.rate_per_second, config.rate_burst);
        let stop_feed = tokio_util::sync::CancellationToken::new();
        let feed =
            events::Feed::start(client.clone(), Duration::from_millis(config.nats_timeout_ms), stop_feed.clone());
        let state = routes::AppState { nats, feed, auth: Arc::new(auth::Auth::new(tokens, limits)) };
        let router = routes::router(state, &routes::Limits::from_config(config)?);
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.addr))?;
        Ok(Self {
            listener,
            router,
            client,
            shutdown_grace: Duration::from_millis(config.shutdown_grace_ms),
            stop_feed,
        })
    }

    /// The address it listens on (the port chosen, when asked for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes; then takes no new connection, lets the
    /// requests in flight finish and drains the NATS connection, within the grace.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Self { listener, router, client, shutdown_grace, stop_feed } = self;
        tracing::info!(addr = %listener.local_addr()?, "gateway listening");
        let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
        // No Nagle delay: each reply and each event goes out when written.
        let listener = listener.tap_io(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "could not set TCP_NODELAY");
            }
        });
        let server = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                tracing::info!("shutting down: finishing the requests in flight");
                // Event streams never finish by themselves: end them.
                stop_feed.cancel();
                let _ = stopping.send(());
            })
            .into_future();
        // The grace starts when shutdown does; an error means the server ended first.
        let grace_over = async {
            if stopped.await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(shutdown_grace).await;
        };
        tokio::select! {
            result = server => result.context("the HTTP server failed")?,
            () = grace_over => tracing::warn!(?shutdown_grace, "requests still in flight after the grace: dropped"),
        }
        match tokio::time::timeout(shutdown_grace, client.drain()).await {
            Ok(Ok(())) => tracing::info!("NATS connection drained"),
            Ok(Err(error)) => tracing::warn!(%error, "could not drain the NATS connection"),
            Err(_) => tracing::warn!(?shutdown_grace, "NATS did not drain within the grace"),
        }
        Ok(())
    }
}

/// Runs a gateway until `shutdown` completes, then stops gracefully.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    Gateway::start(&config).await?.serve(shutdown).await
}
