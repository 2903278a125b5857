//! The fleet is a projection of the event stream: it survives the worker, every
//! instance answers alike, a vessel is added once however many instances seed it,
//! and what the created events book counts against each vessel's room.

use std::time::Duration;

use async_nats::{Client, jetstream};
use serde_json::{Value, json};
use shared::{
    ErrorCode,
    client::request,
    model::{Consignment, ConsignmentsCreated, Container, CreatedEntry, Load, VesselReply},
    store::EVENTS_STREAM,
    subjects::{consignment, vessel},
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
    let fleet = testkit::list_vessels(client, TIMEOUT).await;
    fleet.into_iter().find(|listed| listed.vessel.id == id).expect("listed").vessel.booked
}

/// Appends a created event booking one consignment of `load` onto `vessel_id`, as
/// the consignment-worker does; returns its sequence.
async fn book(client: &Client, vessel_id: &str, load: Load) -> u64 {
    let container = Container { id: String::new(), customer_id: "c".into(), origin: "o".into(), user_id: "u".into() };
    let consignment = Consignment {
        id: uuid::Uuid::new_v4().to_string(),
        description: "d".into(),
        weight: load.weight,
        containers: vec![container; load.containers as usize],
        vessel_id: vessel_id.to_owned(),
    };
    let event = ConsignmentsCreated { consignments: vec![CreatedEntry { consignment, idempotency: None }] };
    let js = jetstream::new(client.clone());
    let ack = js.publish(consignment::created_event(vessel_id), shared::store::encode(&event)).await.unwrap();
    ack.await.unwrap().sequence
}

#[tokio::test]
async fn vessels_and_bookings_survive_sigterm_and_sigkill_and_seeding_keeps_them() {
    let nats = Nats::start().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let worker = worker_process(&nats).await;

    let tug = json!({"id": "tug", "name": "Little Toot", "capacity": 10, "max_weight": 1_000});
    let _: Value = ask(&client, vessel::CREATE, &tug).await;
    let sequence = book(&client, "vessel001", Load { containers: 3, weight: 55_000 }).await;
    let seen = json!({"capacity": 11, "max_weight": 1, "sequence": sequence});
    let reply: VesselReply = ask(&client, vessel::FIND_AVAILABLE, &seen).await;
    assert_eq!(reply.vessel.booked, Load { containers: 3, weight: 55_000 }, "the booking is taken in");

    assert!(worker.terminate().await, "exits 0 on SIGTERM");
    let worker = worker_process(&nats).await;
    assert_eq!(booked(&client, "vessel001").await, Load { containers: 3, weight: 55_000 }, "seeding kept the booking");
    let fleet = testkit::list_vessels(&client, TIMEOUT).await;
    assert!(fleet.iter().any(|listed| listed.vessel.id == "tug"), "the added vessel is still there");

    worker.kill().await;
    let worker = worker_process(&nats).await;
    assert_eq!(booked(&client, "vessel001").await, Load { containers: 3, weight: 55_000 }, "after SIGKILL");
    let js = jetstream::new(client.clone());
    let stored = js.get_stream(EVENTS_STREAM).await.unwrap().get_info().await.unwrap().state.messages;
    assert_eq!(stored, 4, "two vessels seeded once each, the tug, one booking: nothing added by a restart");

    worker.kill().await;
}

#[tokio::test]
async fn instances_seeding_at_once_add_each_vessel_once_and_see_every_booking() {
    let nats = Nats::start().await;
    let config = vessel_worker::Config::new(nats.url());
    let (one, two) = tokio::join!(vessel_worker::start(&config), vessel_worker::start(&config));
    let workers = [testkit::serve(one.unwrap()), testkit::serve(two.unwrap())];
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client.clone());
    let stored = js.get_stream(EVENTS_STREAM).await.unwrap().get_info().await.unwrap().state.messages;
    assert_eq!(stored, 2, "one event per vessel of the default fleet");

    // vessel001 takes 200 t: three consignments of 55 t, then vessel002 is the first fit.
    let mut sequence = 0;
    for _ in 0..3 {
        sequence = book(&client, "vessel001", Load { containers: 3, weight: 55_000 }).await;
    }
    for _ in 0..10 {
        let next = json!({"capacity": 3, "max_weight": 55_000, "sequence": sequence});
        let reply: VesselReply = ask(&client, vessel::FIND_AVAILABLE, &next).await;
        assert_eq!(reply.vessel.id, "vessel002", "every instance has taken the bookings in");
        assert_eq!(reply.vessel.booked, Load::default());
    }
    assert_eq!(booked(&client, "vessel001").await, Load { containers: 9, weight: 165_000 });
    let full = json!({"capacity": 1, "max_weight": 1_000_000, "sequence": sequence});
    let error =
        service_error(request::<VesselReply>(&client, vessel::FIND_AVAILABLE, full.to_string().into(), TIMEOUT).await);
    assert_eq!(error.code, ErrorCode::NotFound);

    for worker in workers {
        worker.stop().await.unwrap();
    }
}
