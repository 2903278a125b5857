//! A compose project on the machine's Docker engine, as the cluster fault test
//! (`testkit/tests/cluster_faults.rs`) drives it: its containers by service, a
//! `kill -9`, a start, a network partition and its healing, and what each NATS
//! node holds of every JetStream stream (its monitoring endpoint, `/jsz`).
//!
//! Containers are found by the labels both Compose v1 and v2 put on them, so the
//! container and network names of either version do.

use std::{collections::BTreeMap, time::Duration};

use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Runs `docker` with `args` and returns its standard output, trimmed.
///
/// # Panics
/// If docker cannot be run or fails: the test cannot go on without it.
pub async fn docker(args: &[&str]) -> String {
    let output = tokio::process::Command::new("docker")
        .args(args)
        .output()
        .await
        .unwrap_or_else(|error| panic!("run docker {args:?}: {error}"));
    assert!(
        output.status.success(),
        "docker {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A container's state as `docker inspect` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub name: String,
    /// The compose service it runs.
    pub service: String,
    pub running: bool,
    /// Restarts by the restart policy (`docker start` does not count).
    pub restart_count: u32,
    /// How it last exited (0 while it has never stopped).
    pub exit_code: i64,
}

/// A compose project: `docker compose -p NAME`.
#[derive(Debug, Clone)]
pub struct Project {
    name: String,
}

/// A container cut off from its network by [`Project::partition`].
#[derive(Debug)]
#[must_use = "a partition lasts until healed"]
pub struct Partition {
    container: String,
    network: String,
    service: String,
}

impl Project {
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    /// The containers of `service` (all of them, running or not), in id order.
    pub async fn containers(&self, service: &str) -> Vec<String> {
        let project = format!("label=com.docker.compose.project={}", self.name);
        let service = format!("label=com.docker.compose.service={service}");
        let ids = docker(&["ps", "-aq", "--no-trunc", "--filter", &project, "--filter", &service]).await;
        let mut ids: Vec<String> = ids.lines().map(str::to_owned).collect();
        ids.sort();
        ids
    }

    /// The one container of `service`.
    ///
    /// # Panics
    /// If the service has no container or several.
    pub async fn container(&self, service: &str) -> String {
        let ids = self.containers(service).await;
        assert_eq!(ids.len(), 1, "one container of {service} in project {}, not {ids:?}", self.name);
        ids.into_iter().next().expect("one container")
    }

    /// Every container of the project, running or not, with its state.
    pub async fn states(&self) -> Vec<ContainerState> {
        let project = format!("label=com.docker.compose.project={}", self.name);
        let ids = docker(&["ps", "-aq", "--no-trunc", "--filter", &project]).await;
        let mut states = Vec::new();
        for id in ids.lines() {
            states.push(state(id).await);
        }
        states.sort_by(|a, b| a.name.cmp(&b.name));
        states
    }

    /// Cuts `service`'s one container off its network (`docker network disconnect`):
    /// it reaches nothing and nothing reaches it, clients and other nodes alike.
    ///
    /// # Panics
    /// If the service has no container or several, or it is on no network.
    pub async fn partition(&self, service: &str) -> Partition {
        let container = self.container(service).await;
        let network =
            docker(&["inspect", "-f", "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}", &container])
                .await;
        let network = network.split_whitespace().next().expect("the container is on a network").to_owned();
        docker(&["network", "disconnect", &network, &container]).await;
        Partition { container, network, service: service.to_owned() }
    }
}

impl Partition {
    /// Connects the container again (`docker network connect`), under its service
    /// name, by which the others find it.
    pub async fn heal(self) {
        docker(&["network", "connect", "--alias", &self.service, &self.network, &self.container]).await;
    }
}

/// The state of `container`.
///
/// # Panics
/// If docker does not report it.
pub async fn state(container: &str) -> ContainerState {
    let format = r#"{{.Name}} {{.State.Running}} {{.RestartCount}} {{.State.ExitCode}} {{index .Config.Labels "com.docker.compose.service"}}"#;
    let line = docker(&["inspect", "-f", format, container]).await;
    let mut fields = line.split_whitespace();
    let mut next = || fields.next().unwrap_or_else(|| panic!("docker inspect said {line:?}"));
    ContainerState {
        name: next().trim_start_matches('/').to_owned(),
        running: next() == "true",
        restart_count: next().parse().expect("a restart count"),
        exit_code: next().parse().expect("an exit code"),
        service: next().to_owned(),
    }
}

/// Kills `container` with SIGKILL (`docker kill -s KILL`: no restart policy
/// starts it again) and returns once it has stopped.
pub async fn kill(container: &str) {
    docker(&["kill", "-s", "KILL", container]).await;
    // `docker wait` returns the exit code once the container has stopped.
    docker(&["wait", container]).await;
}

/// Starts `container` again.
pub async fn start(container: &str) {
    docker(&["start", container]).await;
}

/// What a NATS node holds of a stream: as many messages, up to the same last
/// sequence, on every node once the followers have caught up. The first sequence
/// is left out: a follower that caught up after a crash may have reset it (the
/// server logs "resetting first sequence ... on catchup request") and hold the same
/// messages from a different first sequence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct StreamState {
    pub messages: u64,
    pub last_seq: u64,
}

#[derive(Deserialize)]
struct Jsz {
    #[serde(default)]
    account_details: Vec<AccountDetail>,
}

#[derive(Deserialize)]
struct AccountDetail {
    #[serde(default)]
    stream_detail: Vec<StreamDetail>,
}

#[derive(Deserialize)]
struct StreamDetail {
    name: String,
    state: StreamState,
}

/// Every stream the NATS node with monitoring at `monitor` (`host:port`) holds a
/// replica of, by name, as that node sees it: its own copy, not the leader's.
pub async fn node_streams(monitor: &str, timeout: Duration) -> std::io::Result<BTreeMap<String, StreamState>> {
    let body = tokio::time::timeout(timeout, http_get(monitor, "/jsz?accounts=true&streams=true"))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{monitor} did not answer")))??;
    let jsz: Jsz = serde_json::from_slice(&body).map_err(std::io::Error::other)?;
    Ok(jsz
        .account_details
        .into_iter()
        .flat_map(|account| account.stream_detail)
        .map(|stream| (stream.name, stream.state))
        .collect())
}

/// The body of a plain HTTP/1.0 GET: enough for a NATS monitoring endpoint, with
/// no HTTP client in the dependencies.
async fn http_get(host: &str, path: &str) -> std::io::Result<Vec<u8>> {
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP header end from {host}")))?;
    if !response.starts_with(b"HTTP/1.1 200") && !response.starts_with(b"HTTP/1.0 200") {
        let status = String::from_utf8_lossy(&response[..split]).lines().next().unwrap_or_default().to_owned();
        return Err(std::io::Error::other(format!("{host}{path}: {status}")));
    }
    Ok(response.split_off(split + 4))
}
