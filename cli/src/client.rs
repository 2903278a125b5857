//! The one way the CLI talks to the services: typed request-reply over one connection.
//!
//! Every command and the bench send through [`Services::request`], which wraps
//! [`shared::client::request`]; a header every request should carry is added here.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::HeaderMap;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use shared::{
    client::RequestError,
    codec::encode,
    model::{CreatedConsignment, NewConsignment},
    nats::NatsConfig,
    roles,
    subjects::consignment,
};

/// A connection to NATS and the timeout each reply is given.
#[derive(Debug, Clone)]
pub struct Services {
    nats: async_nats::Client,
    timeout: Duration,
}

impl Services {
    /// Connects as a client, failing at once if NATS is not there.
    pub async fn connect(config: &NatsConfig, timeout: Duration) -> anyhow::Result<Self> {
        let nats = shared::nats::connect_client(config, "shippy-cli", roles::CLIENT, timeout)
            .await
            .with_context(|| format!("cannot reach NATS at {}", config.redacted_url()))?;
        Ok(Self { nats, timeout })
    }

    /// Sends `payload` to `subject` and decodes the reply as `T` (or the error reply).
    pub async fn request<T: DeserializeOwned>(&self, subject: &str, payload: Bytes) -> Result<T, RequestError> {
        shared::client::request(&self.nats, subject, payload, self.timeout).await
    }

    /// Creates a consignment once under idempotency key `key`, sending it again with
    /// the same key up to `retries` times while it fails for a passing reason.
    pub async fn create(
        &self,
        new: &NewConsignment,
        key: &str,
        retries: u32,
    ) -> Result<CreatedConsignment, RequestError> {
        let mut headers = HeaderMap::new();
        headers.insert(consignment::IDEMPOTENCY_HEADER, key);
        let mut attempt = 0;
        loop {
            let result = shared::client::request_with_headers(
                &self.nats,
                consignment::CREATE,
                Some(headers.clone()),
                encode(new).into(),
                self.timeout,
            )
            .await;
            match result {
                Err(error) if attempt < retries && error.is_passing() => attempt += 1,
                other => return other,
            }
        }
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
