//! The settings every worker shares, as flags or environment variables.

use std::{num::NonZeroUsize, time::Duration};

/// Requests larger than this are refused unread, by default.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 64 * 1024;
/// How long an idempotency key is remembered, by default, in seconds (24 h).
pub const DEFAULT_IDEMPOTENCY_WINDOW_SECS: u64 = 24 * 60 * 60;
/// Requests handled at once, by default.
pub const DEFAULT_MAX_IN_FLIGHT: NonZeroUsize = NonZeroUsize::new(1024).expect("1024 is not zero");
/// How long a shutdown may take, by default, in milliseconds: well under the 10 s
/// Docker (`docker stop`, compose) waits before it kills.
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 5_000;

/// Where a worker finds NATS and how much it takes on; each worker flattens this
/// into its own `Config`.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerConfig {
    /// Where NATS is, and the credentials to log in with.
    #[command(flatten)]
    pub nats: crate::nats::NatsConfig,
    /// Requests larger than this many bytes are refused unread (413).
    #[arg(long, env = "MAX_REQUEST_BYTES", default_value_t = DEFAULT_MAX_REQUEST_BYTES)]
    pub max_request_bytes: usize,
    /// Requests handled at once; more wait, queued in NATS.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: NonZeroUsize,
    /// On SIGTERM, how long the worker may take to answer what it was delivered and
    /// confirm the replies; past it (NATS unreachable) it exits anyway.
    #[arg(long, env = "SHUTDOWN_GRACE_MS", default_value_t = DEFAULT_SHUTDOWN_GRACE_MS)]
    pub shutdown_grace_ms: u64,
    /// How the event stream is created when absent.
    #[command(flatten)]
    pub store: crate::store::StoreConfig,
    /// How long, in seconds, a `Nats-Msg-Id` gives the same consignment. Every
    /// worker folds the event stream with it (`shared::ledger`): set it alike on all.
    #[arg(long, env = "IDEMPOTENCY_WINDOW_SECS", default_value_t = DEFAULT_IDEMPOTENCY_WINDOW_SECS)]
    pub idempotency_window_secs: u64,
    /// Where to serve /metrics, /healthz and /readyz.
    #[command(flatten)]
    pub health: crate::health::HealthConfig,
    /// Instead of serving: `health`, ask a running worker's /readyz.
    #[command(subcommand)]
    pub command: Option<crate::health::Command>,
}

impl WorkerConfig {
    /// The defaults, connecting to `nats_url`.
    pub fn new(nats_url: impl Into<String>) -> Self {
        Self {
            nats: crate::nats::NatsConfig::new(nats_url),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            shutdown_grace_ms: DEFAULT_SHUTDOWN_GRACE_MS,
            store: crate::store::StoreConfig::default(),
            idempotency_window_secs: DEFAULT_IDEMPOTENCY_WINDOW_SECS,
            health: crate::health::HealthConfig::default(),
            command: None,
        }
    }

    /// The idempotency window.
    pub fn idempotency_window(&self) -> Duration {
        Duration::from_secs(self.idempotency_window_secs)
    }

    /// [`WorkerConfig::shutdown_grace_ms`] as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}
