//! What the tests of the `shippy` binary share: running it, reading what it said,
//! the workers it talks to, and waiting for the vessel-worker's view of the fleet.

use std::{
    fmt::Debug,
    path::Path,
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use testkit::Nats;
use tokio::io::AsyncWriteExt as _;

/// How long a read of the fleet is repeated before the test fails: the
/// vessel-worker's view lags the event stream by its follow delay, far less than this.
const FOLLOW_BOUND: Duration = Duration::from_secs(10);
/// The pause between two reads of the fleet.
const POLL_PAUSE: Duration = Duration::from_millis(50);

/// Runs `shippy` from the repository root, where the default consignment.json lives.
pub(crate) async fn shippy(nats_url: &str, args: &[&str]) -> Output {
    shippy_with_stdin(nats_url, args, "").await
}

/// Runs `shippy` with `stdin` as its standard input; stdout and stderr are pipes, not terminals.
pub(crate) async fn shippy_with_stdin(nats_url: &str, args: &[&str], stdin: &str) -> Output {
    shippy_with(nats_url, &[], args, stdin).await
}

/// Runs `shippy` with `env` set besides `NATS_URL` and `stdin` as its standard input.
pub(crate) async fn shippy_with(nats_url: &str, env: &[(&str, &str)], args: &[&str], stdin: &str) -> Output {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_shippy"))
        .args(args)
        .env("NATS_URL", nats_url)
        .env_remove("SHIPPY_TIMEOUT_MS")
        .env_remove("SHIPPY_GATEWAY_URL")
        .env_remove("SHIPPY_GATEWAY_TOKEN")
        .envs(env.iter().copied())
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run shippy");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    child.wait_with_output().await.expect("run shippy")
}

/// What shippy printed, after checking it succeeded.
pub(crate) fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "shippy failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// The one line shippy prints on failure, after checking it failed.
pub(crate) fn failure(output: &Output) -> String {
    assert!(!output.status.success(), "shippy succeeded: {}", String::from_utf8_lossy(&output.stdout));
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one line of reason: {stderr:?}");
    stderr.trim_end().to_owned()
}

pub(crate) use testkit::Worker;

/// A vessel-worker and a consignment-worker on `nats`, serving until stopped.
pub(crate) async fn spawn_workers(nats: &Nats) -> (Worker, Worker) {
    let vessels = testkit::stack::vessel_worker(nats, None).await;
    (vessels, testkit::stack::consignment_worker(&consignment_worker::Config::new(nats.url())).await)
}

/// Reads with `read` until what it read is `done`, pausing briefly between reads,
/// for at most [`FOLLOW_BOUND`]. Polling is the one acceptable wait here: a read of
/// the fleet is answered from the vessel-worker's projection of the event stream,
/// which may lag a create by the follow delay (README, "State and guarantees").
pub(crate) async fn poll<T: Debug, F: Future<Output = T>>(mut read: impl FnMut() -> F, done: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + FOLLOW_BOUND;
    loop {
        let value = read().await;
        if done(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "still {value:?} after {FOLLOW_BOUND:?}");
        tokio::time::sleep(POLL_PAUSE).await;
    }
}

/// The API token every test gateway accepts.
pub(crate) const GATEWAY_TOKEN: &str = "cli-test-token-0123456789";

/// An HTTP gateway serving on a task of its own, accepting [`GATEWAY_TOKEN`].
pub(crate) struct Gateway {
    /// `http://127.0.0.1:PORT`
    pub(crate) base: String,
    running: testkit::Running<anyhow::Result<()>>,
    _tokens: tempfile::TempDir,
}

impl Gateway {
    /// Starts a gateway with `config` on an ephemeral port of 127.0.0.1, accepting
    /// [`GATEWAY_TOKEN`], and waits until its NATS connection (made in the
    /// background) is up: `/readyz` answers 200.
    pub(crate) async fn start(mut config: gateway::Config) -> Self {
        let tokens = tempfile::tempdir().expect("a scratch directory");
        let file = tokens.path().join(shared::api_token::HASHES_FILE);
        std::fs::write(&file, format!("{}\n", shared::api_token::hash_line(GATEWAY_TOKEN))).unwrap();
        config.addr = "127.0.0.1:0".parse().unwrap();
        config.tokens_file = Some(file);
        let gateway = gateway::Gateway::start(&config).await.expect("start the gateway");
        let base = format!("http://{}", gateway.local_addr().unwrap());
        let running = testkit::Running::spawn(|shutdown| gateway.serve(shutdown));
        let ready = async {
            let mut poll = tokio::time::interval(Duration::from_millis(20));
            loop {
                poll.tick().await;
                let readyz = reqwest::get(format!("{base}/readyz")).await;
                if readyz.is_ok_and(|response| response.status().is_success()) {
                    break;
                }
            }
        };
        tokio::time::timeout(testkit::GUARD, ready).await.expect("the gateway is ready in time");
        Self { base, running, _tokens: tokens }
    }

    /// Stops it, checking that it stopped cleanly.
    pub(crate) async fn stop(self) {
        self.running.stop().await.expect("the gateway stops cleanly");
    }
}
