//! Test harness: a real NATS server with JetStream, started in a container by
//! testcontainers; workers serving on tasks of their own until the test stops them;
//! worker binaries run as child processes, to be stopped by SIGTERM or SIGKILL;
//! [`load`]: a steady stream of requests, and SIGTERMs in the middle of it;
//! [`stack`]: the workers in-process, and [`stack::TestStack`], a whole stack with
//! typed helpers. The seed consignment ([`SEED_CONSIGNMENT`]) is defined here once.
//!
//! The image is the official `nats` image unless `SHIPPY_NATS_IMAGE` names another
//! (`name:tag`), such as the stand-in `scripts/offline-images.sh` builds on machines
//! with no image registry. Either way it runs `nats-server` as its entrypoint.

pub mod cluster;
pub mod load;
pub mod stack;

use std::{process::Stdio, time::Duration};

use shared::{
    ServiceError,
    client::{RequestError, request},
    model::{Consignment, ConsignmentList, ListConsignments, ListVessels, ListedVessel, VesselList},
    service::{Handler, Service},
    subjects::{consignment, vessel},
};
use testcontainers::{
    ContainerAsync, GenericImage, ImageExt as _,
    core::{IntoContainerPort as _, WaitFor},
    runners::AsyncRunner as _,
};

/// Environment variable naming the NATS image to test against.
pub const IMAGE_ENV: &str = "SHIPPY_NATS_IMAGE";
/// The image used when [`IMAGE_ENV`] is unset.
pub const DEFAULT_IMAGE: &str = "nats:2.15";
/// The largest message the test server accepts; above the workers' own limit, so
/// that tests reach the workers' oversized-request handling.
pub const MAX_PAYLOAD: usize = 8 * 1024 * 1024;

const CLIENT_PORT: u16 = 4222;
const CONFIG_PATH: &str = "/etc/nats/test.conf";
/// The project's `nats.conf`, where docker-compose.yml mounts it, and the users file it includes.
const PROJECT_CONFIG: &str = include_str!("../../nats.conf");
const PROJECT_CONFIG_PATH: &str = "/etc/nats/nats.conf";
const PROJECT_USERS_PATH: &str = "/etc/nats/auth/users.conf";
/// The project's `nats-tls.conf` (`nats.conf` with TLS on), beside `nats.conf`, and
/// where it finds the server's certificate and key.
const PROJECT_TLS_CONFIG: &str = include_str!("../../nats-tls.conf");
const PROJECT_TLS_CONFIG_PATH: &str = "/etc/nats/nats-tls.conf";
const PROJECT_TLS_CERTIFICATE_PATH: &str = "/etc/nats/tls/server.pem";
const PROJECT_TLS_KEY_PATH: &str = "/etc/nats/tls/server-key.pem";
/// Host ports tried for one server before giving up (see [`Nats::start`]).
const PORT_ATTEMPTS: u32 = 5;

/// Whether docker refused a container because its host port was taken meanwhile.
fn is_port_taken(error: &str) -> bool {
    error.contains("port is already allocated") || error.contains("address already in use")
}

/// A guard against a test hanging forever; never a synchronisation point.
pub const GUARD: Duration = Duration::from_secs(60);

/// A NATS server that lives as long as this value.
pub struct Nats {
    url: String,
    container: ContainerAsync<GenericImage>,
}

impl std::fmt::Debug for Nats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nats").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Nats {
    /// Starts a NATS server with JetStream and waits until it accepts clients.
    ///
    /// Its client port is a fixed host port, so that [`Nats::restart`] keeps the URL.
    ///
    /// # Panics
    /// If the container cannot be started: a test cannot run without it.
    pub async fn start() -> Self {
        let config =
            format!("port: {CLIENT_PORT}\nmax_payload: {MAX_PAYLOAD}\njetstream {{ store_dir: /data/jetstream }}\n");
        Self::start_with(CONFIG_PATH, vec![(CONFIG_PATH.to_owned(), config.into_bytes())]).await
    }

    /// Starts a NATS server with the project's own `nats.conf` (users, permissions,
    /// JetStream), and `users` as the `auth/users.conf` it includes, as
    /// `shippy auth init` writes it.
    ///
    /// # Panics
    /// If the container cannot be started.
    pub async fn start_with_project_config(users: &str) -> Self {
        Self::start_with(
            PROJECT_CONFIG_PATH,
            vec![
                (PROJECT_CONFIG_PATH.to_owned(), PROJECT_CONFIG.as_bytes().to_vec()),
                (PROJECT_USERS_PATH.to_owned(), users.as_bytes().to_vec()),
            ],
        )
        .await
    }

    /// [`Nats::start_with_project_config`] with TLS on, as `docker-compose.tls.yml`
    /// runs it: the project's `nats-tls.conf`, with `certificate` and `key` (PEM, as
    /// `scripts/tls-certs.sh` makes them) as the server's. Plain connections are refused.
    ///
    /// # Panics
    /// If the container cannot be started.
    pub async fn start_with_project_tls(users: &str, certificate: &str, key: &str) -> Self {
        Self::start_with(
            PROJECT_TLS_CONFIG_PATH,
            vec![
                (PROJECT_CONFIG_PATH.to_owned(), PROJECT_CONFIG.as_bytes().to_vec()),
                (PROJECT_USERS_PATH.to_owned(), users.as_bytes().to_vec()),
                (PROJECT_TLS_CONFIG_PATH.to_owned(), PROJECT_TLS_CONFIG.as_bytes().to_vec()),
                (PROJECT_TLS_CERTIFICATE_PATH.to_owned(), certificate.as_bytes().to_vec()),
                (PROJECT_TLS_KEY_PATH.to_owned(), key.as_bytes().to_vec()),
            ],
        )
        .await
    }

    async fn start_with(config_path: &str, files: Vec<(String, Vec<u8>)>) -> Self {
        let image = std::env::var(IMAGE_ENV).unwrap_or_else(|_| DEFAULT_IMAGE.to_owned());
        let (name, tag) = image.rsplit_once(':').unwrap_or((&image, "latest"));
        // The host port is fixed when the container is created (a restart keeps the
        // URL), so it is picked here; it is free when picked, but another process may
        // take it before docker binds it: then docker refuses it, and another is picked.
        for attempt in 1..=PORT_ATTEMPTS {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free local port")
                .port();
            let mut request = GenericImage::new(name, tag)
                .with_exposed_port(CLIENT_PORT.tcp())
                .with_wait_for(WaitFor::message_on_stderr("Server is ready"))
                .with_cmd(["--config", config_path])
                .with_mapped_port(port, CLIENT_PORT.tcp());
            for (path, contents) in files.clone() {
                request = request.with_copy_to(path, contents);
            }
            match request.start().await {
                Ok(container) => return Self { url: format!("nats://127.0.0.1:{port}"), container },
                Err(error) if attempt < PORT_ATTEMPTS && is_port_taken(&error.to_string()) => {
                    eprintln!("testkit: host port {port} was taken before docker bound it; picking another");
                }
                Err(error) => panic!("start NATS from image {image}: {error}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Stops the server (SIGTERM, as `docker stop` sends) and starts it again on the
    /// same JetStream store and URL; returns once JetStream answers again.
    ///
    /// # Panics
    /// If the container cannot be restarted or JetStream does not come back within [`GUARD`].
    pub async fn restart(&self) {
        self.container.stop_with_timeout(Some(10)).await.expect("stop NATS");
        self.container.start().await.expect("start NATS again");
        let ready = async {
            let client = async_nats::ConnectOptions::new()
                .retry_on_initial_connect()
                .connect(&self.url)
                .await
                .expect("connect after restart");
            let js = async_nats::jetstream::new(client);
            // The server answers account info once JetStream has recovered its streams;
            // it announces that nowhere a client can wait on, so it is asked, with a pause.
            while js.query_account().await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(GUARD, ready).await.expect("JetStream back after a restart");
    }

    /// Stops the server (SIGTERM, as `docker stop` sends) and leaves it stopped:
    /// its clients lose it and cannot reconnect.
    ///
    /// # Panics
    /// If the container cannot be stopped.
    pub async fn stop(&self) {
        self.container.stop_with_timeout(Some(10)).await.expect("stop NATS");
    }

    /// Freezes the server's process (`docker pause`, as SIGSTOP would): its clients'
    /// connections stay open, but nothing they send is answered, until [`Nats::unpause`].
    ///
    /// # Panics
    /// If the container cannot be paused.
    pub async fn pause(&self) {
        self.container.pause().await.expect("pause NATS");
    }

    /// Lets a paused server run again.
    ///
    /// # Panics
    /// If the container cannot be unpaused.
    pub async fn unpause(&self) {
        self.container.unpause().await.expect("unpause NATS");
    }

    /// Where clients connect, such as `nats://localhost:32768`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// A worker served in-process by [`serve`].
pub type Worker = Running<Result<(), shared::service::Error>>;

/// The consignment every example books: the repository's `consignment.json`
/// (3 containers, 55 000 kg), as the CLI sends it by default.
pub const SEED_CONSIGNMENT: &str = include_str!("../../consignment.json");

/// Serves `service` on a task of its own until [`Running::stop`] is called.
pub fn serve<H: Handler>(service: Service<H>) -> Worker {
    Running::spawn(|shutdown| service.serve(shutdown))
}

/// The error reply in `result`.
///
/// # Panics
/// If `result` is anything else: the test expected an error reply.
pub fn service_error<T: std::fmt::Debug>(result: Result<T, RequestError>) -> ServiceError {
    match result {
        Err(RequestError::Service(error)) => error,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

/// A page of a list: asked again while it is answered 503 (the instance is
/// catching up with the event stream after a fault, "try again", README "How stale
/// each read can be"), within `timeout` in all. The server does the waiting: it
/// answers 503 only after waiting 2 s for its projection.
async fn ask_page<T: serde::de::DeserializeOwned>(
    client: &async_nats::Client,
    subject: &str,
    query: &impl serde::Serialize,
    timeout: Duration,
) -> Result<T, RequestError> {
    let body = bytes::Bytes::from(shared::codec::encode(query));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match request(client, subject, body.clone(), left).await {
            Err(RequestError::Service(error))
                if error.code == shared::ErrorCode::Unavailable && tokio::time::Instant::now() < deadline => {}
            answered => return answered,
        }
    }
}

/// Every stored consignment `query` selects, following the pages of `consignment.list`.
///
/// # Panics
/// If a page is not answered (but with 503) within `timeout`.
pub async fn list_all(client: &async_nats::Client, mut query: ListConsignments, timeout: Duration) -> Vec<Consignment> {
    let mut all = Vec::new();
    loop {
        let page: ConsignmentList = ask_page(client, consignment::LIST, &query, timeout)
            .await
            .unwrap_or_else(|error| panic!("consignment.list after {} consignments: {error}", all.len()));
        all.extend(page.consignments);
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => return all,
        }
    }
}

/// Every vessel of the fleet, following the pages of `vessel.list`.
///
/// # Panics
/// If a page is not answered (but with 503) within `timeout`.
pub async fn list_vessels(client: &async_nats::Client, timeout: Duration) -> Vec<ListedVessel> {
    let mut query = ListVessels::default();
    let mut all = Vec::new();
    loop {
        let page: VesselList = ask_page(client, vessel::LIST, &query, timeout)
            .await
            .unwrap_or_else(|error| panic!("vessel.list after {} vessels: {error}", all.len()));
        all.extend(page.vessels);
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => return all,
        }
    }
}

/// A worker serving on a task of its own until [`Running::stop`] is called.
#[derive(Debug)]
pub struct Running<T> {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<T>,
}

impl<T: Send + 'static> Running<T> {
    /// Spawns `serve`, handing it the future that completes when the test calls [`Running::stop`].
    pub fn spawn<F, Fut>(serve: F) -> Self
    where
        F: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = Box::pin(async move {
            // A dropped sender means the test is over: stop then too.
            let _ = stopped.await;
        });
        Self { stop, task: tokio::spawn(serve(shutdown)) }
    }

    /// Asks the worker to shut down and waits for what it returns.
    ///
    /// # Panics
    /// If the worker panicked.
    pub async fn stop(self) -> T {
        let _ = self.stop.send(());
        self.task.await.expect("worker task panicked")
    }

    /// Aborts the worker's task where it is: no shutdown, its connection dropped
    /// with requests in flight, as close to a crash as a task gets.
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// A program run as a child process whose log (stderr) is echoed, prefixed by its
/// name, and kept, so that a test can wait for a line.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: tokio::process::Child,
    log: tokio::task::JoinHandle<()>,
    lines: tokio::sync::watch::Receiver<Vec<String>>,
}

impl Process {
    /// Runs `program` with `env` and waits until it logs a line containing `ready`.
    ///
    /// # Panics
    /// If it cannot be started, or exits or takes longer than [`GUARD`] before it is ready.
    pub async fn start(name: &str, program: &str, env: &[(&str, &str)], ready: &str) -> Self {
        let child = tokio::process::Command::new(program)
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("start {name}: {error}"));
        Self::adopt(name, child, ready).await
    }

    /// Takes over `child`, spawned with its stderr piped (for a test that spawns it
    /// itself, say with a signal mask of its own), and waits until it logs `ready`.
    ///
    /// # Panics
    /// If its stderr is not piped, or it exits or takes longer than [`GUARD`] before it is ready.
    pub async fn adopt(name: &str, mut child: tokio::process::Child, ready: &str) -> Self {
        use tokio::io::AsyncBufReadExt as _;

        let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr piped")).lines();
        let (kept, watched) = tokio::sync::watch::channel(Vec::new());
        let prefix = name.to_owned();
        // Drains the log for the process's whole life, so that a full pipe never blocks it.
        let log = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("{prefix}: {line}");
                kept.send_modify(|kept| kept.push(line));
            }
        });
        let mut process = Self { name: name.to_owned(), child, log, lines: watched };
        process.wait_for_log(ready).await;
        process
    }

    /// Waits until the process has logged a line containing `needle` (at any time
    /// since it started).
    ///
    /// # Panics
    /// If it exits, or takes longer than [`GUARD`], before it does.
    pub async fn wait_for_log(&mut self, needle: &str) {
        let logged = self.lines.wait_for(|lines| lines.iter().any(|line| line.contains(needle)));
        let logged = tokio::time::timeout(GUARD, logged).await;
        assert!(matches!(logged, Ok(Ok(_))), "{} did not log {needle:?}", self.name);
    }

    /// Kills it with SIGKILL: no shutdown, no flush, as a crash would.
    ///
    /// # Panics
    /// If it cannot be killed.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap_or_else(|error| panic!("kill {}: {error}", self.name));
        let _ = self.log.await;
    }

    /// Sends SIGTERM and waits for it to exit; returns whether it exited with status 0.
    ///
    /// # Panics
    /// If the signal cannot be sent or it does not exit within [`GUARD`].
    pub async fn terminate(self) -> bool {
        self.send_sigterm().await;
        self.exit_status().await.success()
    }

    /// Sends SIGTERM (as `docker stop` does) without waiting for anything.
    ///
    /// # Panics
    /// If it has exited, or the signal cannot be sent.
    pub async fn send_sigterm(&self) {
        let pid = self.child.id().expect("still running").to_string();
        let sent = tokio::process::Command::new("kill").args(["-TERM", &pid]).status().await;
        assert!(sent.is_ok_and(|status| status.success()), "send SIGTERM to {}", self.name);
    }

    /// Waits for it to exit, with the rest of its log echoed.
    ///
    /// # Panics
    /// If it does not exit within [`GUARD`].
    pub async fn exit_status(mut self) -> std::process::ExitStatus {
        let exited = tokio::time::timeout(GUARD, self.child.wait()).await;
        let status = exited.unwrap_or_else(|_| panic!("{} still running after {GUARD:?}", self.name));
        let _ = self.log.await;
        status.unwrap_or_else(|error| panic!("wait for {}: {error}", self.name))
    }
}
