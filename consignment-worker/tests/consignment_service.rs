//! consignment-worker with a real vessel-worker, against a real NATS server.

use std::time::Duration;

use async_nats::Client;
use futures::StreamExt as _;
use serde_json::{Value, json};
use shared::{
    ErrorCode, ServiceError,
    client::{RequestError, request},
    model::{Consignment, ConsignmentList, CreatedConsignment},
    subjects::consignment,
};
use testkit::{Nats, service_error};

const TIMEOUT: Duration = Duration::from_secs(10);
/// The consignment the CLI sends by default.
use testkit::SEED_CONSIGNMENT as SEED;

use testkit::Worker;

async fn spawn_consignment_worker(config: consignment_worker::Config) -> Worker {
    testkit::stack::consignment_worker(&config).await
}

async fn spawn_vessel_worker(nats: &Nats) -> Worker {
    testkit::stack::vessel_worker(nats, None).await
}

async fn create(client: &Client, body: impl Into<bytes::Bytes>) -> Result<CreatedConsignment, RequestError> {
    request(client, consignment::CREATE, body.into(), TIMEOUT).await
}

async fn list(client: &Client) -> Vec<Consignment> {
    let list: ConsignmentList = request(client, consignment::LIST, "".into(), TIMEOUT).await.unwrap();
    list.consignments
}

#[tokio::test]
async fn create_books_a_vessel_stores_and_announces_the_consignment() {
    let nats = Nats::start().await;
    let vessels = spawn_vessel_worker(&nats).await;
    let consignments = spawn_consignment_worker(consignment_worker::Config::new(nats.url())).await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut events = client.subscribe(consignment::CREATED_EVENTS).await.unwrap();
    shared::nats::round_trip(&client).await.unwrap();

    let created = create(&client, SEED).await.unwrap();
    assert!(created.created);
    let booked = created.consignment;
    assert_eq!(booked.vessel_id, "vessel001");
    assert!(uuid::Uuid::parse_str(&booked.id).is_ok(), "id is a uuid: {}", booked.id);
    assert_eq!(
        (booked.description.as_str(), booked.weight, booked.containers.len()),
        ("This is a test consignment", 55_000, 3)
    );

    assert_eq!(list(&client).await, vec![booked.clone()]);
    let event = events.next().await.unwrap();
    assert_eq!(event.subject.as_str(), consignment::created_event("vessel001"));
    let event: shared::model::ConsignmentsCreated = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!(event.consignments.len(), 1);
    assert_eq!(event.consignments[0].consignment, booked);

    consignments.stop().await.unwrap();
    vessels.stop().await.unwrap();
}

#[tokio::test]
async fn consignment_no_vessel_can_carry_is_refused_and_not_stored() {
    let nats = Nats::start().await;
    let vessels = spawn_vessel_worker(&nats).await;
    let consignments = spawn_consignment_worker(consignment_worker::Config::new(nats.url())).await;
    let client = async_nats::connect(nats.url()).await.unwrap();

    let mut heavy: Value = serde_json::from_str(SEED).unwrap();
    heavy["weight"] = json!(999_999_999);
    let error = service_error(create(&client, heavy.to_string()).await);
    // The vessel service's answer, as it gave it: what was asked, the most room left,
    // what to do.
    let message = "no vessel available for 3 containers weighing 999999999 kg: the most room left is on \
                   vessel002: 2000 containers and 560000 kg; add a vessel with `shippy vessel add`";
    assert_eq!(error, ServiceError::new(ErrorCode::NotFound, message));
    assert!(list(&client).await.is_empty());

    // With a vessel that carries it added, the same create goes through.
    let big = json!({"id": "big", "name": "Big", "capacity": 3, "max_weight": 999_999_999});
    let _: shared::model::CreatedVessel =
        shared::client::request(&client, shared::subjects::vessel::CREATE, big.to_string().into(), TIMEOUT)
            .await
            .unwrap();
    assert_eq!(create(&client, heavy.to_string()).await.unwrap().consignment.vessel_id, "big");

    consignments.stop().await.unwrap();
    vessels.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_vessel_worker_create_fails_fast_with_503() {
    let nats = Nats::start().await;
    // A vessel timeout far beyond the client's: only NATS's immediate "no responders"
    // can produce the 503 before the client gives up.
    let config =
        consignment_worker::Config { vessel_timeout_ms: 600_000, ..consignment_worker::Config::new(nats.url()) };
    let consignments = spawn_consignment_worker(config).await;
    let client = async_nats::connect(nats.url()).await.unwrap();

    let error = service_error(create(&client, SEED).await);
    assert_eq!(error, ServiceError::new(ErrorCode::Unavailable, "vessel service unavailable"));
    assert!(list(&client).await.is_empty());

    consignments.stop().await.unwrap();
}

#[tokio::test]
async fn no_more_than_max_in_flight_requests_are_handled_at_once() {
    let nats = Nats::start().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    // This test stands in for the vessel service and holds the lookups it gets.
    let mut lookups = client.subscribe(shared::subjects::vessel::FIND_AVAILABLE).await.unwrap();
    shared::nats::round_trip(&client).await.unwrap();
    let mut config = consignment_worker::Config::new(nats.url());
    config.worker.max_in_flight = std::num::NonZeroUsize::new(2).unwrap();
    let consignments = spawn_consignment_worker(config).await;

    let creates: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { create(&client, SEED).await })
        })
        .collect();
    // Bounded, so that a stall fails the test instead of hanging it.
    let first = tokio::time::timeout(testkit::GUARD, lookups.next()).await.expect("a first lookup").unwrap();
    let second = tokio::time::timeout(testkit::GUARD, lookups.next()).await.expect("a second lookup").unwrap();
    // A third create is waiting in NATS, not in the worker: no third lookup comes.
    let third = tokio::time::timeout(Duration::from_millis(300), lookups.next()).await;
    assert!(third.is_err(), "a third request was taken while two were in flight");

    let vessel = r#"{"vessel":{"id":"vessel001","capacity":500,"max_weight":200000,"name":"Boaty McBoatface"}}"#;
    client.publish(first.reply.unwrap(), vessel.into()).await.unwrap();
    let third = tokio::time::timeout(testkit::GUARD, lookups.next()).await.expect("a third lookup").unwrap();
    for lookup in [second, third] {
        client.publish(lookup.reply.unwrap(), vessel.into()).await.unwrap();
    }
    for create in creates {
        let booked = tokio::time::timeout(testkit::GUARD, create).await.expect("answered").unwrap().unwrap();
        assert_eq!(booked.consignment.vessel_id, "vessel001");
    }

    consignments.stop().await.unwrap();
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_the_worker_keeps_serving() {
    let nats = Nats::start().await;
    let vessels = spawn_vessel_worker(&nats).await;
    let consignments = spawn_consignment_worker(consignment_worker::Config::new(nats.url())).await;
    let client = async_nats::connect(nats.url()).await.unwrap();

    let seed_with = |field: &str, value: Value| {
        let mut body: Value = serde_json::from_str(SEED).unwrap();
        body[field] = value;
        body.to_string().into_bytes()
    };
    let cases: Vec<(&str, Vec<u8>, ErrorCode, &str)> = vec![
        (
            "malformed JSON",
            b"{\"description\": ".to_vec(),
            ErrorCode::BadRequest,
            "invalid request: description: EOF while parsing a value",
        ),
        (
            "not an object",
            br#""hello""#.to_vec(),
            ErrorCode::BadRequest,
            "invalid request: invalid type: string \"hello\", expected struct NewConsignment",
        ),
        (
            "missing field",
            br#"{"description":"d","weight":1}"#.to_vec(),
            ErrorCode::BadRequest,
            "invalid request: containers: missing field",
        ),
        (
            "negative weight",
            seed_with("weight", json!(-55_000)),
            ErrorCode::BadRequest,
            "weight: invalid value: integer `-55000`",
        ),
        (
            "missing field in a container",
            seed_with(
                "containers",
                json!([{"customer_id": "c", "origin": "o", "user_id": "u"}, {"customer_id": "c", "origin": "o"}]),
            ),
            ErrorCode::BadRequest,
            "invalid request: containers[1].user_id: missing field",
        ),
        ("zero weight", seed_with("weight", json!(0)), ErrorCode::BadRequest, "weight must be greater than zero"),
        ("no containers", seed_with("containers", json!([])), ErrorCode::BadRequest, "at least one container"),
        (
            "blank description",
            seed_with("description", json!(" ")),
            ErrorCode::BadRequest,
            "description must not be empty",
        ),
        ("2 MB payload", vec![b' '; 2 * 1024 * 1024], ErrorCode::PayloadTooLarge, "exceeds the limit of 65536 bytes"),
    ];
    for (case, payload, code, message) in cases {
        let error = service_error(create(&client, payload).await);
        assert_eq!(error.code, code, "{case}: {error}");
        assert!(error.message.contains(message), "{case}: {error}");

        // Still serving: the seed consignment is booked (vessel001 takes three of them, vessel002 the rest).
        let created = create(&client, SEED).await.unwrap_or_else(|error| panic!("after {case}: {error}"));
        assert!(created.consignment.vessel_id.starts_with("vessel00"), "still serving after {case}");
    }

    consignments.stop().await.unwrap();
    vessels.stop().await.unwrap();
}
