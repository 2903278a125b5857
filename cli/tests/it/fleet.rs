//! `shippy vessel add`, full vessels in `shippy vessels`, and what a full fleet and a
//! malformed consignment say: the `shippy` binary against real workers and NATS.

use crate::common::{failure, poll, shippy, shippy_with_stdin, spawn_workers, stdout};
use serde_json::Value;
use testkit::Nats;

/// A consignment of `containers` containers weighing `weight` kg in all.
fn consignment(containers: usize, weight: u64) -> String {
    let container = serde_json::json!({"customer_id": "c1", "user_id": "u1", "origin": "Hull"});
    serde_json::json!({"description": "cargo", "weight": weight, "containers": vec![container; containers]}).to_string()
}

/// The AVAILABLE cell of `id`'s row in a `shippy vessels -o table`.
fn available(table: &str, id: &str) -> String {
    let row = table.lines().find(|line| line.starts_with(&format!("{id} "))).unwrap_or_else(|| panic!("{id}: {table}"));
    // The column starts where its header does.
    let column = table.lines().next().unwrap().find("AVAILABLE").unwrap();
    row[column..].split_whitespace().next().unwrap().to_owned()
}

#[tokio::test]
async fn a_full_fleet_says_what_was_asked_and_what_is_left_and_a_vessel_added_takes_the_load() {
    let nats = Nats::start().await;
    let (vessels, consignments) = spawn_workers(&nats).await;
    let url = nats.url();

    // A small vessel, first in id order, so the next create fills it.
    let added = stdout(
        &shippy(url, &["vessel", "add", "--id", "0-tiny", "--capacity", "3", "--max-weight", "55000", "-o", "json"])
            .await,
    );
    let added: Value = serde_json::from_str(&added).unwrap();
    assert_eq!(added["remaining"]["containers"], 3, "printed as `shippy vessels` prints it: {added}");
    assert_eq!(added["id"], "0-tiny");
    assert_eq!(added["name"], "0-tiny", "the name defaults to the id");
    let table = stdout(&shippy(url, &["vessels", "-o", "table"]).await);
    assert_eq!(available(&table, "0-tiny"), "yes", "{table}");

    let created: Value = serde_json::from_str(&stdout(
        &shippy_with_stdin(url, &["create", "-", "-o", "json"], &consignment(3, 55_000)).await,
    ))
    .unwrap();
    assert_eq!(created["consignment"]["vessel_id"], "0-tiny");
    // Full once the vessel-worker has followed the create (polled: it may lag by its follow delay).
    let table = poll(
        || async { stdout(&shippy(url, &["vessels", "-o", "table"]).await) },
        |table| available(table, "0-tiny") == "full",
    )
    .await;
    assert_eq!(available(&table, "vessel001"), "yes", "{table}");

    // Nothing carries 10,000 t in 3 containers: find-vessel and create both say what was
    // asked, the most room any vessel has left, and what to do.
    let told = "no vessel available for 3 containers weighing 10000000 kg: the most room left is on vessel002: \
                2000 containers and 560000 kg; add a vessel with `shippy vessel add` (code 404)";
    let find = ["find-vessel", "--capacity", "3", "--max-weight", "10000000"];
    let unfit = failure(&shippy(url, &find).await);
    assert!(unfit.contains(told), "{unfit}");
    let unfit = failure(&shippy_with_stdin(url, &["create", "-"], &consignment(3, 10_000_000)).await);
    assert!(unfit.contains(told), "{unfit}");

    // Doing what it says.
    let add = ["vessel", "add", "--id", "ever-given", "--capacity", "20000", "--max-weight", "200000000"];
    let table = stdout(&shippy(url, &[&add[..], &["--name", "Ever_Given", "-o", "table"]].concat()).await);
    assert!(table.lines().nth(1).unwrap().starts_with("ever-given  Ever_Given"), "{table}");
    assert_eq!(available(&table, "ever-given"), "yes", "{table}");
    let found: Value = serde_json::from_str(&stdout(&shippy(url, &find).await)).unwrap();
    assert_eq!(found["id"], "ever-given");
    let created: Value =
        serde_json::from_str(&stdout(&shippy_with_stdin(url, &["create", "-"], &consignment(3, 10_000_000)).await))
            .unwrap();
    assert_eq!(created["consignment"]["vessel_id"], "ever-given");

    // An id taken, a vessel that carries nothing: refused with the reason.
    let taken = failure(&shippy(url, &add).await);
    assert!(taken.contains("vessel ever-given exists already (code 409)"), "{taken}");
    let empty = failure(&shippy(url, &["vessel", "add", "--id", "x", "--capacity", "0", "--max-weight", "1"]).await);
    assert!(empty.contains("invalid vessel: capacity must be greater than zero (code 400)"), "{empty}");

    consignments.stop().await.unwrap();
    vessels.stop().await.unwrap();
}

#[tokio::test]
async fn a_malformed_consignment_is_named_by_the_path_of_its_field() {
    let nats = Nats::start().await;
    let (vessels, consignments) = spawn_workers(&nats).await;

    let second_without_user = r#"{"description":"d","weight":1,"containers":[
        {"customer_id":"c","origin":"o","user_id":"u"},{"customer_id":"c","origin":"o"}]}"#;
    let refused = failure(&shippy_with_stdin(nats.url(), &["create", "-"], second_without_user).await);
    assert!(refused.contains("stdin is not a consignment: containers[1].user_id: missing field"), "{refused}");

    // In JSON Lines, each bad line says where; the good one is still created.
    let lines = format!("{}\n{}\n", consignment(1, 5), consignment(1, 5).replace("\"weight\":5", "\"weight\":-5"));
    let output = shippy_with_stdin(nats.url(), &["create", "-", "-o", "table"], &lines).await;
    let summary = String::from_utf8(output.stdout.clone()).unwrap();
    assert!(summary.contains("line 2: weight: invalid value: integer `-5`, expected u64"), "{summary}");
    assert!(summary.starts_with("created 1 of 2 consignments"), "{summary}");

    consignments.stop().await.unwrap();
    vessels.stop().await.unwrap();
}
