//! The services in-process against one NATS server: the workers as the tests
//! start them ([`vessel_worker`], [`consignment_worker`]), and [`TestStack`], a
//! whole stack with a client and typed helpers.

use std::time::Duration;

use async_nats::{Client, HeaderMap};
use serde_json::Value;
use shared::{
    client::{RequestError, request_with_headers},
    model::{Consignment, CreatedConsignment, ListConsignments},
    subjects::consignment,
};

use crate::{Nats, SEED_CONSIGNMENT, Worker};

/// How long the helpers of [`TestStack`] wait for each reply.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A vessel-worker serving on a task of its own, seeded with `fleet` (an array of
/// vessels) if given, else with the built-in fleet.
///
/// # Panics
/// If it cannot start.
pub async fn vessel_worker(nats: &Nats, fleet: Option<&Value>) -> Worker {
    let mut config = vessel_worker::Config::new(nats.url());
    // Read once, at start: the file may go when the worker is up.
    let file = tempfile::NamedTempFile::new().expect("a temporary fleet file");
    if let Some(fleet) = fleet {
        std::fs::write(file.path(), fleet.to_string()).expect("write the fleet file");
        config.fleet_file = Some(file.path().to_owned());
    }
    crate::serve(vessel_worker::start(&config).await.expect("start vessel-worker"))
}

/// A consignment-worker with `config` serving on a task of its own.
///
/// # Panics
/// If it cannot start.
pub async fn consignment_worker(config: &consignment_worker::Config) -> Worker {
    crate::serve(consignment_worker::start(config).await.expect("start consignment-worker"))
}

/// NATS, a vessel-worker, consignment-workers and a client: the services as a user
/// sees them, in one process.
#[derive(Debug)]
pub struct TestStack {
    pub nats: Nats,
    pub client: Client,
    fleet: Option<Value>,
    instances: usize,
    workers: Vec<Worker>,
}

impl TestStack {
    /// NATS, a vessel-worker seeded with `fleet` (the built-in fleet without it) and
    /// `instances` consignment-workers, each started and ready, and a client.
    ///
    /// # Panics
    /// If any of them cannot start.
    pub async fn start(fleet: Option<Value>, instances: usize) -> Self {
        let nats = Nats::start().await;
        let client = async_nats::connect(nats.url()).await.expect("connect to NATS");
        let mut stack = Self { nats, client, fleet, instances, workers: Vec::new() };
        stack.restart().await;
        stack
    }

    /// Creates the seed consignment, with idempotency key `key` if given.
    pub async fn create(&self, key: Option<&str>) -> Result<CreatedConsignment, RequestError> {
        self.create_body(key, SEED_CONSIGNMENT).await
    }

    /// Creates `body`, with idempotency key `key` if given.
    pub async fn create_body<T: serde::de::DeserializeOwned>(
        &self,
        key: Option<&str>,
        body: impl Into<bytes::Bytes>,
    ) -> Result<T, RequestError> {
        let headers = key.map(|key| {
            let mut headers = HeaderMap::new();
            headers.insert(consignment::IDEMPOTENCY_HEADER, key);
            headers
        });
        request_with_headers(&self.client, consignment::CREATE, headers, body.into(), TIMEOUT).await
    }

    /// Every stored consignment, following the pages of `consignment.list`.
    ///
    /// # Panics
    /// If a page is not answered in time.
    pub async fn list_all(&self) -> Vec<Consignment> {
        crate::list_all(&self.client, ListConsignments::default(), TIMEOUT).await
    }

    /// Kills every worker where it is (their tasks aborted, no shutdown), as a crash would.
    pub async fn kill(&mut self) {
        for worker in self.workers.drain(..) {
            worker.abort().await;
        }
    }

    /// Starts the workers again (after [`TestStack::kill`]), on the stream as stored.
    ///
    /// # Panics
    /// If any of them cannot start.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.workers.push(vessel_worker(&self.nats, self.fleet.as_ref()).await);
        for _ in 0..self.instances {
            self.workers.push(consignment_worker(&consignment_worker::Config::new(self.nats.url())).await);
        }
    }

    /// Stops every worker gracefully.
    ///
    /// # Panics
    /// If a worker fails to stop cleanly.
    pub async fn stop(self) {
        for worker in self.workers {
            worker.stop().await.expect("a worker stops cleanly");
        }
    }
}
