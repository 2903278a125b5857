//! A handler panic costs one request (a 500 reply), never the worker.
//!
//! In-process here; and, in `release_binary_survives_a_handler_panic`, in a binary
//! built with the release profile, as users run the workers. `cargo test` builds
//! every crate of a test with `panic = "unwind"` whatever the profile says, so only
//! a real release binary shows that the profile and `catch_unwind` agree. That test
//! is ignored unless asked for; `.ci/run` builds the binary and runs it:
//!
//! ```sh
//! cargo build --release -p shared --features panic-probe --bin panic_probe
//! SHIPPY_PANIC_PROBE=target/release/panic_probe \
//!     cargo test -p shared --test handler_panic -- --include-ignored
//! ```

mod probe;

use std::{process::Stdio, time::Duration};

use async_nats::Client;
use shared::{ErrorCode, ServiceError, client::request, service::Service};
use testkit::{Nats, service_error};
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// Environment variable naming the release build of `src/bin/panic_probe.rs`.
const PROBE_ENV: &str = "SHIPPY_PANIC_PROBE";
const TIMEOUT: Duration = Duration::from_secs(10);

/// Three panics, each answered with a 500, and an echo after each.
async fn panics_cost_one_request_each(client: &Client) {
    for _ in 0..3 {
        let error = service_error(request::<serde_json::Value>(client, "probe.panic", "{}".into(), TIMEOUT).await);
        assert_eq!(error, ServiceError::new(ErrorCode::Internal, "internal error"));
        let echo: serde_json::Value =
            request(client, "probe.echo", r#"{"still":"here"}"#.into(), TIMEOUT).await.unwrap();
        assert_eq!(echo["still"], "here");
    }
}

#[tokio::test]
async fn handler_panic_is_a_500_and_the_service_keeps_serving() {
    let nats = Nats::start().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let worker = testkit::serve(Service::start(client.clone(), probe::spec(), probe::Probe).await.unwrap());
    panics_cost_one_request_each(&client).await;
    worker.stop().await.unwrap();
}

#[tokio::test]
#[ignore = "needs SHIPPY_PANIC_PROBE, the release build of src/bin/panic_probe.rs (.ci/run builds it)"]
async fn release_binary_survives_a_handler_panic() {
    let probe = std::env::var(PROBE_ENV).unwrap_or_else(|_| panic!("{PROBE_ENV} names the release panic_probe binary"));
    assert!(probe.contains("release"), "{PROBE_ENV}={probe}: expected a release build");
    // A relative path is taken from the workspace root, where `.ci/run` runs.
    let probe = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(probe);
    let probe = probe.display().to_string();
    let nats = Nats::start().await;
    let mut child = tokio::process::Command::new(&probe)
        .env(shared::nats::URL_ENV, nats.url())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| panic!("spawn {probe}: {error}"));
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(TIMEOUT, stdout.next_line()).await.expect("probe ready in time").unwrap();
    assert_eq!(ready.as_deref(), Some("ready"));

    let client = async_nats::connect(nats.url()).await.unwrap();
    panics_cost_one_request_each(&client).await;
    assert!(child.try_wait().unwrap().is_none(), "the release binary is still running");
    child.kill().await.unwrap();
}
