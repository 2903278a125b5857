//! `vessel-worker`: keeps the fleet and answers which vessel can take a load.
//!
//! | subject                 | request           | reply                             |
//! |-------------------------|-------------------|-----------------------------------|
//! | `vessel.find_available` | `{"capacity":3,"max_weight":55000}` | `{"vessel":{..}}` or 404 `no vessel available` |
//! | `vessel.create`         | a vessel          | `{"created":true,"vessel":{..}}`  |
//! | `vessel.list`           | anything          | `{"vessels":[..]}`                |
//!
//! Every instance joins the `vessel-worker` queue group: start more of them and
//! NATS spreads the requests across them.

pub mod fleet;
pub mod handler;

use std::{future::Future, path::PathBuf};

use anyhow::Context as _;
use shared::{
    config::WorkerConfig,
    service::{Service, ServiceSpec},
    subjects::vessel,
};

use crate::{fleet::Fleet, handler::VesselHandler};

/// How a vessel-worker is set up: flags, or the environment variables named.
#[derive(Debug, Clone, clap::Parser)]
#[command(version, about)]
pub struct Config {
    #[command(flatten)]
    pub worker: WorkerConfig,
    /// JSON file holding the fleet as an array of vessels; the built-in fleet without it.
    #[arg(long, env = "FLEET_FILE")]
    pub fleet_file: Option<PathBuf>,
}

impl Config {
    /// The defaults, connecting to `nats_url`.
    pub fn new(nats_url: impl Into<String>) -> Self {
        Self { worker: WorkerConfig::new(nats_url), fleet_file: None }
    }

    /// The fleet to start with: the fleet file's, or the built-in one.
    pub fn fleet(&self) -> anyhow::Result<Fleet> {
        let Some(path) = &self.fleet_file else {
            return Ok(Fleet::default_fleet());
        };
        let read = || -> anyhow::Result<Fleet> {
            let vessels = serde_json::from_slice(&std::fs::read(path)?)?;
            Ok(Fleet::new(vessels)?)
        };
        read().with_context(|| format!("loading the fleet from {}", path.display()))
    }
}

/// Connects to NATS and registers the vessel service; returns once it takes requests.
pub async fn start(config: &Config) -> anyhow::Result<Service<VesselHandler>> {
    let fleet = config.fleet()?;
    tracing::info!(vessels = fleet.vessels().len(), nats_url = %config.worker.nats_url, "starting vessel-worker");
    let client = shared::nats::connect_worker(&config.worker.nats_url, vessel::QUEUE_GROUP).await?;
    let spec = ServiceSpec {
        name: vessel::SERVICE,
        version: env!("CARGO_PKG_VERSION"),
        description: "Finds a vessel for a consignment and keeps the fleet",
        queue_group: vessel::QUEUE_GROUP,
        endpoints: &[vessel::FIND_AVAILABLE_ENDPOINT, vessel::CREATE_ENDPOINT, vessel::LIST_ENDPOINT],
        max_request_bytes: config.worker.max_request_bytes,
        max_in_flight: config.worker.max_in_flight,
    };
    Ok(Service::start(client, spec, VesselHandler::new(fleet)).await?)
}

/// Runs a vessel-worker until `shutdown` completes, then stops gracefully.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    shared::service::run(start(&config), shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with_fleet_file(name: &str, contents: &str) -> Config {
        let path = std::env::temp_dir().join(format!("shippy-fleet-{}-{name}.json", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        Config { fleet_file: Some(path), ..Config::new(shared::nats::DEFAULT_URL) }
    }

    #[test]
    fn fleet_file_replaces_the_default_fleet() {
        let config = config_with_fleet_file(
            "valid",
            r#"[{"id":"tug","name":"Little Toot","capacity":1,"max_weight":100,"available":true}]"#,
        );
        let fleet = config.fleet().unwrap();
        assert_eq!(fleet.vessels().iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), ["tug"]);
    }

    #[test]
    fn bad_fleet_file_is_refused_naming_the_file() {
        let config = config_with_fleet_file("invalid", r#"[{"id":"tug","name":"","capacity":1,"max_weight":1}]"#);
        let error = format!("{:#}", config.fleet().unwrap_err());
        assert!(error.starts_with("loading the fleet from "), "{error}");
        assert!(error.ends_with("invalid vessel: name must not be empty"), "{error}");
    }
}
