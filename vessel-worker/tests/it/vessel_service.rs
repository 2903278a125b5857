//! vessel-worker against a real NATS server.

use std::time::Duration;

use async_nats::Client;
use futures::StreamExt as _;
use serde_json::{Value, json};
use shared::{
    ErrorCode, ServiceError,
    client::{RequestError, request},
    model::{CreatedVessel, VesselList, VesselReply},
    subjects::vessel,
};
use testkit::{Nats, Worker, service_error};

const TIMEOUT: Duration = Duration::from_secs(5);

async fn spawn_worker(nats: &Nats) -> Worker {
    testkit::stack::vessel_worker(nats, None).await
}

async fn ask<T: serde::de::DeserializeOwned>(client: &Client, subject: &str, body: Value) -> Result<T, RequestError> {
    request(client, subject, body.to_string().into(), TIMEOUT).await
}

/// Each instance's `$SRV.STATS` entry for the endpoint on `subject`, as `nats micro stats vessel` shows.
async fn endpoint_stats(client: &Client, instances: usize, subject: &str) -> Vec<Value> {
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.unwrap();
    client.publish_with_reply(format!("$SRV.STATS.{}", vessel::SERVICE), inbox, "".into()).await.unwrap();
    let mut stats = Vec::with_capacity(instances);
    while stats.len() < instances {
        let instance: Value = serde_json::from_slice(&replies.next().await.unwrap().payload).unwrap();
        let endpoints = instance["endpoints"].as_array().unwrap();
        stats.push(endpoints.iter().find(|endpoint| endpoint["subject"] == subject).unwrap().clone());
    }
    stats
}

#[tokio::test]
async fn finds_a_vessel_that_fits_or_says_none_is_available() {
    let nats = Nats::start().await;
    let worker = spawn_worker(&nats).await;
    let client = async_nats::connect(nats.url()).await.unwrap();

    let reply: VesselReply =
        ask(&client, vessel::FIND_AVAILABLE, json!({"capacity": 3, "max_weight": 55_000})).await.unwrap();
    assert_eq!(reply.vessel.id, "vessel001");
    assert_eq!(reply.vessel.name, "Boaty McBoatface");

    let error = service_error(
        ask::<VesselReply>(&client, vessel::FIND_AVAILABLE, json!({"capacity": 3, "max_weight": 10_000_000})).await,
    );
    // What was asked, the most room left (vessel002 has the most of both), and what to do.
    let full = "no vessel available for 3 containers weighing 10000000 kg: the most room left is on vessel002: \
                2000 containers and 560000 kg; add a vessel with `shippy vessel add`";
    assert_eq!(error, ServiceError::new(ErrorCode::NotFound, full));

    // Doing that: the vessel added takes the load.
    let big = json!({"id": "big", "name": "Big", "capacity": 10, "max_weight": 10_000_000});
    let _: CreatedVessel = ask(&client, vessel::CREATE, big).await.unwrap();
    let reply: VesselReply =
        ask(&client, vessel::FIND_AVAILABLE, json!({"capacity": 3, "max_weight": 10_000_000})).await.unwrap();
    assert_eq!(reply.vessel.id, "big");

    worker.stop().await.unwrap();
}

#[tokio::test]
async fn plain_request_without_headers_gets_plain_json_both_ways() {
    let nats = Nats::start().await;
    let worker = spawn_worker(&nats).await;
    let client = async_nats::connect(nats.url()).await.unwrap();

    // Exactly what `nats req vessel.find_available '{"capacity":3,"max_weight":55000}'` sends.
    let reply = client.request(vessel::FIND_AVAILABLE, r#"{"capacity":3,"max_weight":55000}"#.into()).await.unwrap();
    let body: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(body["vessel"]["id"], "vessel001");
    assert!(reply.headers.is_none(), "a success carries no headers");

    let reply = client.request(vessel::FIND_AVAILABLE, r#"{"capacity":9999,"max_weight":1}"#.into()).await.unwrap();
    let body: Value = serde_json::from_slice(&reply.payload).unwrap();
    let message = "no vessel available for 9999 containers weighing 1 kg: the most room left is on vessel002: \
                   2000 containers and 560000 kg; add a vessel with `shippy vessel add`";
    assert_eq!(body, json!({"error": {"code": 404, "message": message}}));
    let headers = reply.headers.expect("ADR-32 error headers");
    assert_eq!(headers.get("Nats-Service-Error-Code").unwrap().as_str(), "404");
    assert_eq!(headers.get("Nats-Service-Error").unwrap().as_str(), message);

    worker.stop().await.unwrap();
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_the_worker_keeps_serving() {
    let nats = Nats::start().await;
    let worker = spawn_worker(&nats).await;
    let client = async_nats::connect(nats.url()).await.unwrap();

    let cases: [(&str, Vec<u8>, ErrorCode, &str); 5] = [
        ("malformed JSON", b"{capacity: 3".to_vec(), ErrorCode::BadRequest, "invalid request: key must be a string"),
        (
            "missing field",
            br#"{"capacity":3}"#.to_vec(),
            ErrorCode::BadRequest,
            "invalid request: max_weight: missing field",
        ),
        (
            "negative weight",
            br#"{"capacity":3,"max_weight":-1}"#.to_vec(),
            ErrorCode::BadRequest,
            "max_weight: invalid value: integer `-1`",
        ),
        ("empty body", Vec::new(), ErrorCode::BadRequest, "invalid request: EOF while parsing"),
        ("2 MB payload", vec![b' '; 2 * 1024 * 1024], ErrorCode::PayloadTooLarge, "exceeds the limit of 65536 bytes"),
    ];
    for (case, payload, code, message) in cases {
        let error =
            service_error(request::<VesselReply>(&client, vessel::FIND_AVAILABLE, payload.into(), TIMEOUT).await);
        assert_eq!(error.code, code, "{case}: {error}");
        assert!(error.message.contains(message), "{case}: {error}");

        let reply: VesselReply =
            ask(&client, vessel::FIND_AVAILABLE, json!({"capacity": 1, "max_weight": 1})).await.unwrap();
        assert_eq!(reply.vessel.id, "vessel001", "still serving after {case}");
    }

    let [stats] = &endpoint_stats(&client, 1, vessel::FIND_AVAILABLE).await[..] else { unreachable!() };
    assert_eq!(stats["num_requests"], 10);
    assert_eq!(stats["num_errors"], 5, "error replies are counted: {stats}");
    assert!(stats["last_error"].as_str().unwrap().starts_with("413:"), "{stats}");

    worker.stop().await.unwrap();
}

#[tokio::test]
async fn created_vessels_are_listed_and_found() {
    let nats = Nats::start().await;
    let worker = spawn_worker(&nats).await;
    let client = async_nats::connect(nats.url()).await.unwrap();

    let big = json!({"name": "Ever Given", "capacity": 20_000, "max_weight": 200_000_000});
    let created: CreatedVessel = ask(&client, vessel::CREATE, big).await.unwrap();
    assert!(created.created);
    assert!(!created.vessel.id.is_empty(), "an id is assigned");

    let list: VesselList = ask(&client, vessel::LIST, json!({})).await.unwrap();
    assert!(list.vessels.iter().any(|v| v.vessel.id == created.vessel.id));

    let found: VesselReply =
        ask(&client, vessel::FIND_AVAILABLE, json!({"capacity": 10_000, "max_weight": 1_000_000})).await.unwrap();
    assert_eq!(found.vessel, created.vessel);

    let duplicate = json!({"id": "vessel001", "name": "Copy", "capacity": 1, "max_weight": 1});
    let error = service_error(ask::<CreatedVessel>(&client, vessel::CREATE, duplicate).await);
    assert_eq!(error.code, ErrorCode::Conflict);

    worker.stop().await.unwrap();
}

#[tokio::test]
async fn instances_in_the_queue_group_share_the_load() {
    const REQUESTS: usize = 100;
    let nats = Nats::start().await;
    let workers = [spawn_worker(&nats).await, spawn_worker(&nats).await];
    let client = async_nats::connect(nats.url()).await.unwrap();

    for _ in 0..REQUESTS {
        let _: VesselReply =
            ask(&client, vessel::FIND_AVAILABLE, json!({"capacity": 1, "max_weight": 1})).await.unwrap();
    }

    // Each instance reports what it served on $SRV.STATS.
    let stats = endpoint_stats(&client, workers.len(), vessel::FIND_AVAILABLE).await;
    assert!(stats.iter().all(|endpoint| endpoint["queue_group"] == vessel::QUEUE_GROUP));
    let served: Vec<u64> = stats.iter().map(|endpoint| endpoint["num_requests"].as_u64().unwrap()).collect();
    assert_eq!(served.iter().sum::<u64>(), REQUESTS as u64);
    assert!(served.iter().all(|&n| n > 0), "both instances served requests: {served:?}");

    for worker in workers {
        worker.stop().await.unwrap();
    }
}
