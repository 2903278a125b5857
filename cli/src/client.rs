//! The one way the CLI talks to the services: typed request-reply over one connection.
//!
//! Every command and the bench send through [`Services::request`], which wraps
//! [`shared::client::request`]; a header every request should carry is added here.

use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use shared::client::RequestError;

/// A connection to NATS and the timeout each reply is given.
#[derive(Debug, Clone)]
pub struct Services {
    nats: async_nats::Client,
    timeout: Duration,
}

impl Services {
    /// Connects to `url`, failing at once if NATS is not there.
    pub async fn connect(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let nats = shared::nats::connect_client(url, "shippy-cli", timeout)
            .await
            .with_context(|| format!("cannot reach NATS at {url}"))?;
        Ok(Self { nats, timeout })
    }

    /// Sends `payload` to `subject` and decodes the reply as `T` (or the error reply).
    pub async fn request<T: DeserializeOwned>(&self, subject: &str, payload: Bytes) -> Result<T, RequestError> {
        shared::client::request(&self.nats, subject, payload, self.timeout).await
    }

    /// The underlying connection.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// How long each request waits for its reply.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}
