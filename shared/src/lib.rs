//! The shippy wire contract and the plumbing every shippy process shares.
//!
//! Everything that crosses NATS is defined here exactly once:
//!
//! * [`subjects`]: subject names (which stand in for service names) and queue groups
//!   (which replace registry-based discovery: every instance in a group shares the load);
//! * [`model`]: the JSON messages sent on those subjects;
//! * [`error`]: the error reply every endpoint sends when a request cannot be served;
//! * [`codec`]: decoding requests (with errors that name the bad field) and encoding messages;
//! * [`store`]: the JetStream event stream that holds all state: its layout and sequence rules;
//! * [`ledger`]: the booking rules both workers fold the stream with (no I/O), and
//!   [`projection`]: keeping such folds in memory, current with the stream.
//!
//! [`api_token`] names the gateway's API token files and how a token is hashed.
//!
//! The rest is the edge both workers and the CLI stand on: [`config`] (the settings
//! every worker shares), [`nats`] (connecting, as one of the [`roles`]),
//! [`client`] (typed request-reply), [`service`] (serving endpoints as an ADR-32 NATS
//! micro service with graceful shutdown, [`micro`] answering the ADR-32 discovery
//! verbs), [`shutdown`], [`telemetry`] (logs and traces), [`meter`] (metrics) and
//! [`health`] (the operators' HTTP port: `/metrics`, `/healthz`, `/readyz`).

pub mod api_token;
pub mod background;
pub mod client;
pub mod codec;
pub mod config;
pub mod error;
pub mod health;
pub mod ledger;
pub mod meter;
pub mod micro;
pub mod model;
pub mod nats;
pub mod projection;
pub mod roles;
pub mod service;
pub mod shutdown;
pub mod store;
pub mod subjects;
pub mod telemetry;

pub use error::{ErrorCode, ServiceError};
