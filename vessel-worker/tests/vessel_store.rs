//! The fleet and its bookings live in JetStream: they survive the worker, are
//! shared by every instance, and a booking counts once per consignment.

use std::time::Duration;

use async_nats::Client;
use futures::{StreamExt as _, stream::FuturesUnordered};
use serde_json::{Value, json};
use shared::{
    ErrorCode,
    client::request,
    model::{Load, VesselList, VesselReply},
    subjects::vessel,
};
use testkit::{Nats, Process, service_error};

const TIMEOUT: Duration = Duration::from_secs(10);

async fn worker_process(nats: &Nats) -> Process {
    let env = [("NATS_URL", nats.url()), ("RUST_LOG", "info")];
    Process::start("vessel-worker", env!("CARGO_BIN_EXE_vessel-worker"), &env, "service ready").await
}

async fn ask<T: serde::de::DeserializeOwned>(client: &Client, subject: &str, body: &Value) -> T {
    request(client, subject, body.to_string().into(), TIMEOUT).await.unwrap()
}

async fn booked(client: &Client, id: &str) -> Load {
    let fleet: VesselList = ask(client, vessel::LIST, &json!({})).await;
    fleet.vessels.into_iter().find(|listed| listed.vessel.id == id).expect("listed").vessel.booked
}

#[tokio::test]
async fn vessels_and_bookings_survive_sigterm_and_sigkill_and_seeding_keeps_them() {
    let nats = Nats::start().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let worker = worker_process(&nats).await;

    let tug = json!({"id": "tug", "name": "Little Toot", "capacity": 10, "max_weight": 1_000});
    let _: Value = ask(&client, vessel::CREATE, &tug).await;
    let booking = json!({"capacity": 3, "max_weight": 55_000, "consignment_id": "c1"});
    let reply: VesselReply = ask(&client, vessel::FIND_AVAILABLE, &booking).await;
    assert_eq!(reply.vessel.id, "vessel001");

    assert!(worker.terminate().await, "exits 0 on SIGTERM");
    let worker = worker_process(&nats).await;
    assert_eq!(booked(&client, "vessel001").await, Load { containers: 3, weight: 55_000 }, "seeding kept the booking");
    let fleet: VesselList = ask(&client, vessel::LIST, &json!({})).await;
    assert!(fleet.vessels.iter().any(|listed| listed.vessel.id == "tug"), "the added vessel is still there");

    worker.kill().await;
    let worker = worker_process(&nats).await;
    assert_eq!(booked(&client, "vessel001").await, Load { containers: 3, weight: 55_000 }, "after SIGKILL");
    // A repeat of the same booking, after two restarts, still counts once.
    let again: VesselReply = ask(&client, vessel::FIND_AVAILABLE, &booking).await;
    assert_eq!(again.vessel.id, "vessel001");
    assert_eq!(again.vessel.booked, Load { containers: 3, weight: 55_000 });

    worker.kill().await;
}

#[tokio::test]
async fn one_consignment_booked_ten_times_on_two_instances_counts_once() {
    let nats = Nats::start().await;
    let workers = [
        testkit::serve(vessel_worker::start(&vessel_worker::Config::new(nats.url())).await.unwrap()),
        testkit::serve(vessel_worker::start(&vessel_worker::Config::new(nats.url())).await.unwrap()),
    ];
    let client = async_nats::connect(nats.url()).await.unwrap();

    let booking = json!({"capacity": 3, "max_weight": 55_000, "consignment_id": "same"});
    let replies: Vec<VesselReply> = (0..10)
        .map(|_| ask(&client, vessel::FIND_AVAILABLE, &booking))
        .collect::<FuturesUnordered<_>>()
        .collect()
        .await;
    assert!(replies.iter().all(|reply| reply.vessel.id == "vessel001"));
    assert_eq!(booked(&client, "vessel001").await, Load { containers: 3, weight: 55_000 });

    // A question without a consignment books nothing.
    for _ in 0..5 {
        let _: VesselReply = ask(&client, vessel::FIND_AVAILABLE, &json!({"capacity": 3, "max_weight": 55_000})).await;
    }
    assert_eq!(booked(&client, "vessel001").await, Load { containers: 3, weight: 55_000 });

    // Vessels fill: four more consignments of 55 t fit on vessel001 (200 t) only thrice in all.
    for n in 0..3 {
        let next = json!({"capacity": 3, "max_weight": 55_000, "consignment_id": format!("next-{n}")});
        let reply: VesselReply = ask(&client, vessel::FIND_AVAILABLE, &next).await;
        let expected = if n < 2 { "vessel001" } else { "vessel002" };
        assert_eq!(reply.vessel.id, expected, "booking {n}");
    }
    let full = json!({"capacity": 1, "max_weight": 1_000_000, "consignment_id": "too-heavy"});
    let error =
        service_error(request::<VesselReply>(&client, vessel::FIND_AVAILABLE, full.to_string().into(), TIMEOUT).await);
    assert_eq!(error.code, ErrorCode::NotFound);

    for worker in workers {
        worker.stop().await.unwrap();
    }
}
