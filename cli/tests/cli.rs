//! The `shippy` binary against real workers and a real NATS server.

use std::{path::Path, process::Output};

use serde_json::Value;
use testkit::{Nats, Running};

/// Runs `shippy` from the repository root, where the default consignment.json lives.
async fn shippy(nats_url: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_shippy"))
        .args(args)
        .env("NATS_URL", nats_url)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap())
        .output()
        .await
        .expect("run shippy")
}

fn json(output: &Output) -> Value {
    assert!(output.status.success(), "shippy failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

/// The one line shippy prints on failure, after checking it failed.
fn failure(output: &Output) -> String {
    assert!(!output.status.success(), "shippy succeeded: {}", String::from_utf8_lossy(&output.stdout));
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one line of reason: {stderr:?}");
    stderr.trim_end().to_owned()
}

type Worker = Running<Result<(), shared::service::Error>>;

async fn spawn_workers(nats: &Nats) -> (Worker, Worker) {
    let vessels = vessel_worker::start(&vessel_worker::Config::new(nats.url())).await.unwrap();
    let consignments = consignment_worker::start(&consignment_worker::Config::new(nats.url())).await.unwrap();
    (testkit::serve(vessels), testkit::serve(consignments))
}

#[tokio::test]
async fn create_prints_the_consignment_with_its_vessel() {
    let nats = Nats::start().await;
    let (vessels, consignments) = spawn_workers(&nats).await;

    let created = json(&shippy(nats.url(), &["create"]).await);
    assert_eq!(created["created"], true);
    assert_eq!(created["consignment"]["vessel_id"], "vessel001");
    assert_eq!(created["consignment"]["containers"].as_array().unwrap().len(), 3);

    let listed = json(&shippy(nats.url(), &["list"]).await);
    assert_eq!(listed["consignments"][0], created["consignment"]);

    let found = json(&shippy(nats.url(), &["find-vessel", "--capacity", "3", "--max-weight", "55000"]).await);
    assert_eq!(found["vessel"]["name"], "Boaty McBoatface");
    let fleet = json(&shippy(nats.url(), &["vessels"]).await);
    assert!(fleet["vessels"].as_array().unwrap().len() >= 2);

    consignments.stop().await.unwrap();
    vessels.stop().await.unwrap();
}

#[tokio::test]
async fn failures_exit_non_zero_with_a_one_line_reason() {
    let nats = Nats::start().await;

    let down = failure(&shippy("nats://127.0.0.1:1", &["list"]).await);
    assert!(down.starts_with("shippy: cannot reach NATS at nats://127.0.0.1:1"), "{down}");

    let missing = failure(&shippy(nats.url(), &["create", "no-such-file.json"]).await);
    assert!(missing.starts_with("shippy: cannot read no-such-file.json"), "{missing}");

    let nobody = failure(&shippy(nats.url(), &["create"]).await);
    assert_eq!(nobody, "shippy: no service is listening on consignment.create");

    // A consignment service that takes requests and never answers.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let _silent = client.subscribe(shared::subjects::consignment::LIST).await.unwrap();
    client.flush().await.unwrap();
    let slow = failure(&shippy(nats.url(), &["--timeout-ms", "300", "list"]).await);
    assert_eq!(slow, "shippy: consignment.list did not answer within 300ms");

    let (vessels, consignments) = spawn_workers(&nats).await;
    let unfit = failure(&shippy(nats.url(), &["find-vessel", "--capacity", "100000", "--max-weight", "1"]).await);
    assert_eq!(unfit, "shippy: no vessel available (code 404)");

    consignments.stop().await.unwrap();
    vessels.stop().await.unwrap();
}
