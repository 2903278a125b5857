//! State is the event stream in JetStream, and projections of it: consistent across
//! instances, durable across restarts and crashes, booked without overbooking,
//! created once per idempotency key, paged.

use std::{collections::HashMap, time::Duration};

use async_nats::{Client, HeaderMap, jetstream};
use futures::{StreamExt as _, TryStreamExt as _, stream::FuturesUnordered};
use serde_json::{Value, json};
use shared::{
    ErrorCode,
    client::{RequestError, decode_reply, request, request_with_headers},
    model::{
        Consignment, ConsignmentList, ConsignmentsCreated, CreatedConsignment, CreatedEntry, ListConsignments, Load,
    },
    store::EVENTS_STREAM,
    subjects::{consignment, vessel},
};
use testkit::{GUARD, Nats, Process, stack::TestStack};

const TIMEOUT: Duration = Duration::from_secs(20);
use testkit::SEED_CONSIGNMENT as SEED;

/// Room for 1,000 seed consignments.
static BIG_FLEET: std::sync::LazyLock<Value> = std::sync::LazyLock::new(
    || json!([{"id": "vessel001", "name": "Boaty McBoatface", "capacity": 3_000, "max_weight": 55_000_000}]),
);

use testkit::Worker;

use testkit::stack::vessel_worker;

fn consignment_config(nats: &Nats) -> consignment_worker::Config {
    consignment_worker::Config::new(nats.url())
}

async fn consignment_worker(nats: &Nats) -> Worker {
    testkit::stack::consignment_worker(&consignment_config(nats)).await
}

/// The consignment-worker binary, which the test can kill.
async fn consignment_process(nats: &Nats) -> Process {
    let env = [("NATS_URL", nats.url()), ("RUST_LOG", "info")];
    Process::start("consignment-worker", env!("CARGO_BIN_EXE_consignment-worker"), &env, "service ready").await
}

/// Creates `body` with idempotency key `key`, if given.
async fn create_with<T: serde::de::DeserializeOwned>(
    client: &Client,
    key: Option<&str>,
    body: String,
) -> Result<T, RequestError> {
    let headers = key.map(|key| {
        let mut headers = HeaderMap::new();
        headers.insert(consignment::IDEMPOTENCY_HEADER, key);
        headers
    });
    request_with_headers(client, consignment::CREATE, headers, body.into(), TIMEOUT).await
}

/// Creates the seed consignment with idempotency key `key`, if given.
async fn create(client: &Client, key: Option<&str>) -> Result<CreatedConsignment, RequestError> {
    create_with(client, key, SEED.to_owned()).await
}

/// Every page of `consignment.list`, `limit` at a time, checking that no reply is
/// larger than the server's `max_payload` and no page longer than `limit`.
async fn pages_within_max_payload(client: &Client, limit: u32) -> Vec<ConsignmentList> {
    let max_payload = client.server_info().max_payload;
    let mut query = ListConsignments { limit: Some(limit), ..ListConsignments::default() };
    let mut pages = Vec::new();
    loop {
        // Replies of up to 8 MB through a debug build: more time than the default 10 s.
        let ask = async_nats::Request::new().payload(serde_json::to_vec(&query).unwrap().into()).timeout(Some(GUARD));
        let reply = client.send_request(consignment::LIST, ask).await.unwrap();
        assert!(reply.payload.len() <= max_payload, "a reply of {} bytes over {max_payload}", reply.payload.len());
        let page: ConsignmentList = decode_reply(consignment::LIST, &reply).unwrap();
        assert!(page.consignments.len() <= limit as usize);
        query.cursor.clone_from(&page.next);
        let last = page.next.is_none();
        pages.push(page);
        if last {
            return pages;
        }
    }
}

/// Every stored consignment, following the pages.
async fn list_all(client: &Client, query: ListConsignments) -> Vec<Consignment> {
    testkit::list_all(client, query, TIMEOUT).await
}

async fn fleet(client: &Client) -> Vec<shared::model::ListedVessel> {
    testkit::list_vessels(client, TIMEOUT).await
}

/// Each vessel's booked load equals the load of the consignments stored on it:
/// nothing is booked twice, and no booking lacks its consignment.
async fn assert_bookings_match_consignments(client: &Client) {
    let consignments = list_all(client, ListConsignments::default()).await;
    let mut expected: HashMap<String, Load> = HashMap::new();
    for consignment in &consignments {
        let load = expected.entry(consignment.vessel_id.clone()).or_default();
        load.containers += u32::try_from(consignment.containers.len()).unwrap();
        load.weight += consignment.weight;
    }
    for listed in fleet(client).await {
        let vessel = listed.vessel;
        assert_eq!(vessel.booked, expected.remove(&vessel.id).unwrap_or_default(), "vessel {}", vessel.id);
        assert!(vessel.booked.containers <= vessel.capacity && vessel.booked.weight <= vessel.max_weight);
    }
    assert!(expected.is_empty(), "consignments on vessels not in the fleet: {expected:?}");
}

/// The ids of the consignments the created events store, in order: every entry
/// but a void one (an idempotency key that an earlier entry holds).
async fn event_ids(client: &Client) -> Vec<String> {
    let js = jetstream::new(client.clone());
    let stream = js.get_stream(EVENTS_STREAM).await.unwrap();
    let config = jetstream::consumer::pull::OrderedConfig {
        filter_subject: consignment::CREATED_EVENTS.to_owned(),
        ..Default::default()
    };
    let consumer = stream.create_consumer(config).await.unwrap();
    let pending = consumer.cached_info().num_pending;
    let messages = consumer.messages().await.unwrap().take(usize::try_from(pending).unwrap());
    let events: Vec<ConsignmentsCreated> =
        messages.map_ok(|message| serde_json::from_slice(&message.payload).unwrap()).try_collect().await.unwrap();
    let mut keys = std::collections::HashSet::new();
    events
        .into_iter()
        .flat_map(|event| event.consignments)
        .filter(|entry| entry.idempotency.as_ref().is_none_or(|idempotency| keys.insert(idempotency.key)))
        .map(|entry| entry.consignment.id)
        .collect()
}

/// Appends `count` copies of `seed` straight to the event stream, as the worker
/// stores them, `per_event` to an event, alternately on vessel001 and vessel002,
/// to keep the test fast.
async fn seed_consignments(client: &Client, count: usize, per_event: usize, seed: &Value) {
    let js = jetstream::new(client.clone());
    let seed: shared::model::NewConsignment = serde_json::from_value(seed.clone()).unwrap();
    let mut acks = FuturesUnordered::new();
    for (event, first) in (0..count).step_by(per_event).enumerate() {
        let vessel_id = if event % 2 == 0 { "vessel001" } else { "vessel002" };
        let consignments = (first..count.min(first + per_event))
            .map(|_| CreatedEntry {
                consignment: Consignment {
                    id: uuid::Uuid::new_v4().to_string(),
                    description: seed.description.clone(),
                    weight: seed.weight,
                    containers: seed.containers.clone(),
                    vessel_id: vessel_id.to_owned(),
                },
                idempotency: None,
            })
            .collect();
        let payload = shared::store::encode(&ConsignmentsCreated { consignments });
        acks.push(js.publish(consignment::created_event(vessel_id), payload).await.unwrap().into_future());
        if acks.len() >= 64 {
            acks.next().await.unwrap().unwrap();
        }
    }
    while let Some(ack) = acks.next().await {
        ack.unwrap();
    }
}

/// `creates` keyed creates (`<prefix>-<n>`), `in_flight` at a time, each sent again
/// with its key until acknowledged (bounded by [`GUARD`]); every acknowledged
/// consignment comes out of the receiver.
fn keyed_load(
    client: &Client,
    prefix: &'static str,
    creates: usize,
    in_flight: usize,
) -> (tokio::task::JoinHandle<()>, tokio::sync::mpsc::UnboundedReceiver<Consignment>) {
    let (acked_tx, acked) = tokio::sync::mpsc::unbounded_channel();
    let client = client.clone();
    let load = tokio::spawn(async move {
        futures::stream::iter(0..creates)
            .for_each_concurrent(in_flight, |n| {
                let (client, acked_tx) = (client.clone(), acked_tx.clone());
                async move {
                    let key = format!("{prefix}-{n}");
                    let deadline = tokio::time::Instant::now() + GUARD;
                    loop {
                        match create(&client, Some(&key)).await {
                            Ok(reply) => return acked_tx.send(reply.consignment).unwrap(),
                            Err(_) if tokio::time::Instant::now() < deadline => {
                                tokio::time::sleep(Duration::from_millis(50)).await; // client back-off
                            }
                            Err(error) => panic!("create {key} never acknowledged: {error}"),
                        }
                    }
                }
            })
            .await;
    });
    (load, acked)
}

/// Every one of `acknowledged` is stored, once, each key's consignment once, with
/// one stored entry in the events each; bookings equal the consignments.
async fn assert_stored_once(client: &Client, acknowledged: &[Consignment]) {
    let stored: HashMap<String, Consignment> =
        list_all(client, ListConsignments::default()).await.into_iter().map(|c| (c.id.clone(), c)).collect();
    for consignment in acknowledged {
        assert_eq!(stored.get(&consignment.id), Some(consignment), "every acknowledged create is stored");
    }
    assert_eq!(stored.len(), acknowledged.len(), "no duplicate: one consignment per key");
    let mut events = event_ids(client).await;
    events.sort();
    let mut ids: Vec<_> = stored.keys().cloned().collect();
    ids.sort();
    assert_eq!(events, ids, "one stored entry per consignment");
    assert_bookings_match_consignments(client).await;
}

#[tokio::test]
async fn two_instances_of_each_worker_answer_alike() {
    let nats = Nats::start().await;
    let workers = [
        vessel_worker(&nats, Some(&BIG_FLEET)).await,
        vessel_worker(&nats, Some(&BIG_FLEET)).await,
        consignment_worker(&nats).await,
        consignment_worker(&nats).await,
    ];
    let client = async_nats::connect(nats.url()).await.unwrap();

    for _ in 0..20 {
        create(&client, None).await.unwrap();
    }
    for _ in 0..10 {
        assert_eq!(list_all(&client, ListConsignments::default()).await.len(), 20, "every list is complete");
    }

    // A vessel added through one instance is found through every one, by a find
    // naming a sequence at or after the add (a find may lag by the follow delay).
    let big = json!({"id": "ever-given", "name": "Ever Given", "capacity": 20_000, "max_weight": 200_000_000});
    let _: Value = request(&client, vessel::CREATE, big.to_string().into(), TIMEOUT).await.unwrap();
    let js = jetstream::new(client.clone());
    let added = js.get_stream(EVENTS_STREAM).await.unwrap().cached_info().state.last_sequence;
    for _ in 0..10 {
        let found: Value = request(
            &client,
            vessel::FIND_AVAILABLE,
            json!({"capacity": 10_000, "max_weight": 1_000_000, "sequence": added}).to_string().into(),
            TIMEOUT,
        )
        .await
        .unwrap();
        assert_eq!(found["vessel"]["id"], "ever-given");
        let again = request::<Value>(&client, vessel::CREATE, big.to_string().into(), TIMEOUT).await;
        assert_eq!(testkit::service_error(again).code, ErrorCode::Conflict, "created once across instances");
    }
    assert_bookings_match_consignments(&client).await;

    for worker in workers {
        worker.stop().await.unwrap();
    }
}

#[tokio::test]
async fn three_hundred_creates_fill_a_fleet_with_room_for_exactly_one_hundred() {
    let nats = Nats::start().await;
    // The seed consignment is 3 containers of 55 t: room for 60 on one vessel, 40 on the other.
    let fleet = json!([
        {"id": "a", "name": "A", "capacity": 180, "max_weight": 100_000_000},
        {"id": "b", "name": "B", "capacity": 1_000_000, "max_weight": 40 * 55_000},
    ]);
    let vessel_workers = [vessel_worker(&nats, Some(&fleet)).await, vessel_worker(&nats, Some(&fleet)).await];
    let consignment_workers =
        [consignment_worker(&nats).await, consignment_worker(&nats).await, consignment_worker(&nats).await];
    let client = async_nats::connect(nats.url()).await.unwrap();

    let results: Vec<_> = (0..300).map(|_| create(&client, None)).collect::<FuturesUnordered<_>>().collect().await;
    let created = results.iter().filter(|result| result.is_ok()).count();
    for result in &results {
        if let Err(error) = result {
            assert!(
                matches!(error, RequestError::Service(error) if error.code == ErrorCode::NotFound && error.message.starts_with("no vessel available for 3 containers weighing 55000 kg: ")),
                "a clear 404, got {error:?}"
            );
        }
    }
    assert_eq!(created, 100, "exactly as many creates succeed as the fleet has room for");

    let stored = list_all(&client, ListConsignments::default()).await;
    assert_eq!(stored.len(), 100);
    let on = |vessel: &str| {
        let query = ListConsignments { vessel_id: Some(vessel.into()), limit: Some(7), ..ListConsignments::default() };
        list_all(&client, query)
    };
    assert_eq!((on("a").await.len(), on("b").await.len()), (60, 40));
    assert_bookings_match_consignments(&client).await;

    for worker in consignment_workers.into_iter().chain(vessel_workers) {
        worker.stop().await.unwrap();
    }
}

#[tokio::test]
async fn the_same_key_ten_times_on_two_instances_creates_one_consignment() {
    let mut stack = TestStack::start(None, 2).await;
    let client = &stack.client.clone();

    let replies: Vec<_> =
        (0..10).map(|_| stack.create(Some("order-42"))).collect::<FuturesUnordered<_>>().collect().await;
    let first = replies[0].as_ref().unwrap();
    assert!(replies.iter().all(|reply| reply.as_ref().unwrap() == first), "ten identical replies");
    assert_eq!(stack.list_all().await.len(), 1);
    assert_eq!(event_ids(client).await, std::slice::from_ref(&first.consignment.id));
    assert_bookings_match_consignments(client).await;

    // The key names that consignment; reusing it for another one is refused.
    let mut other: Value = serde_json::from_str(SEED).unwrap();
    other["weight"] = json!(1);
    let error = testkit::service_error(stack.create_body::<Value>(Some("order-42"), other.to_string()).await);
    assert_eq!(error.code, ErrorCode::Conflict);

    // Every worker killed and started again: the key still names that consignment.
    stack.kill().await;
    stack.restart().await;
    assert_eq!(stack.create(Some("order-42")).await.unwrap(), *first);
    assert_eq!(stack.list_all().await.len(), 1);

    stack.stop().await;
}

#[tokio::test]
async fn consignments_and_bookings_survive_sigterm_sigkill_and_a_nats_restart() {
    let nats = Nats::start().await;
    let vessels = vessel_worker(&nats, None).await;
    let client = async_nats::ConnectOptions::new().retry_on_initial_connect().connect(nats.url()).await.unwrap();

    let worker = consignment_process(&nats).await;
    for _ in 0..3 {
        create(&client, None).await.unwrap();
    }
    assert!(worker.terminate().await, "exits 0 on SIGTERM");
    let worker = consignment_process(&nats).await;
    assert_eq!(list_all(&client, ListConsignments::default()).await.len(), 3, "after SIGTERM");

    create(&client, None).await.unwrap();
    worker.kill().await;
    let worker = consignment_process(&nats).await;
    assert_eq!(list_all(&client, ListConsignments::default()).await.len(), 4, "after SIGKILL");

    nats.restart().await;
    let listed = tokio::time::timeout(GUARD, async {
        loop {
            // The workers reconnect on their own; until then a request finds no
            // responder. Both are asked: the fleet is read next.
            let body = serde_json::to_vec(&ListConsignments::default()).unwrap();
            let vessels =
                request::<shared::model::VesselList>(&client, shared::subjects::vessel::LIST, "".into(), TIMEOUT);
            if let Ok(page) = request::<ConsignmentList>(&client, consignment::LIST, body.into(), TIMEOUT).await
                && vessels.await.is_ok()
            {
                return page.consignments.len();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("served again after the NATS restart");
    assert_eq!(listed, 4, "after a NATS restart on the same store");
    assert_eq!(fleet(&client).await[0].vessel.booked, Load { containers: 9, weight: 165_000 });
    assert_bookings_match_consignments(&client).await;

    worker.kill().await;
    vessels.stop().await.unwrap();
}

#[tokio::test]
async fn creates_survive_a_worker_killed_mid_flow() {
    const CREATES: usize = 200;
    const IN_FLIGHT: usize = 8;
    let nats = Nats::start().await;
    let vessels = vessel_worker(&nats, Some(&BIG_FLEET)).await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut worker = consignment_process(&nats).await;

    let (load, mut acked) = keyed_load(&client, "crash", CREATES, IN_FLIGHT);

    // Kill the worker twice while creates are in flight, restarting it each time.
    let mut acknowledged = Vec::new();
    for kill_after in [50, 120] {
        while acknowledged.len() < kill_after {
            acknowledged.push(acked.recv().await.expect("creates go on"));
        }
        worker.kill().await;
        worker = consignment_process(&nats).await;
    }
    load.await.unwrap();
    while let Some(consignment) = acked.recv().await {
        acknowledged.push(consignment);
    }
    assert_eq!(acknowledged.len(), CREATES);

    assert_stored_once(&client, &acknowledged).await;

    worker.kill().await;
    vessels.stop().await.unwrap();
}

#[tokio::test]
async fn a_hundred_thousand_consignments_page_through_completely() {
    const STORED: usize = 100_000;
    let nats = Nats::start().await;
    let worker = consignment_worker(&nats).await;
    let client = async_nats::connect(nats.url()).await.unwrap();

    let seed: Value = serde_json::from_str(SEED).unwrap();
    seed_consignments(&client, STORED, 100, &seed).await;
    // Restarted, the worker rebuilds its projection from the 100,000 stored.
    worker.stop().await.unwrap();
    let worker = consignment_worker(&nats).await;

    let mut listed = std::collections::HashSet::new();
    for page in pages_within_max_payload(&client, 1_000).await {
        for consignment in page.consignments {
            assert!(listed.insert(consignment.id), "listed once");
        }
    }
    assert_eq!(listed.len(), STORED);

    let on_vessel002 =
        ListConsignments { vessel_id: Some("vessel002".into()), limit: Some(1_000), ..Default::default() };
    assert_eq!(list_all(&client, on_vessel002).await.len(), STORED / 2);

    worker.stop().await.unwrap();
}

#[tokio::test]
async fn pages_of_large_consignments_stay_within_max_payload() {
    let nats = Nats::start().await;
    let worker = consignment_worker(&nats).await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    // 1,000 consignments of 16 KiB: 16 MiB, twice what one reply may carry here.
    let mut seed: Value = serde_json::from_str(SEED).unwrap();
    seed["description"] = json!("x".repeat(16 * 1024));
    seed_consignments(&client, 1_000, 50, &seed).await;
    let worker = {
        worker.stop().await.unwrap();
        consignment_worker(&nats).await
    };

    let pages = pages_within_max_payload(&client, 1_000).await;
    let listed: usize = pages.iter().map(|page| page.consignments.len()).sum();
    assert_eq!(listed, 1_000);
    assert!(pages.len() >= 2, "the byte limit split the list");

    worker.stop().await.unwrap();
}

#[tokio::test]
async fn a_worker_killed_before_its_append_leaves_nothing_and_the_key_creates_once_after() {
    let nats = Nats::start().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    // This test stands in for the vessel service, so that it holds the lookup
    // while the worker dies: before its one append, nothing of the create exists.
    let mut lookups = client.queue_subscribe(vessel::FIND_AVAILABLE, vessel::QUEUE_GROUP.into()).await.unwrap();
    shared::nats::round_trip(&client).await.unwrap();
    let worker = consignment_process(&nats).await;

    let pending = tokio::spawn({
        let client = client.clone();
        async move { create(&client, Some("order-7")).await }
    });
    tokio::time::timeout(GUARD, lookups.next()).await.expect("a vessel lookup").unwrap();
    worker.kill().await;
    assert!(pending.await.unwrap().is_err(), "the caller of the interrupted create got no reply");
    assert!(event_ids(&client).await.is_empty(), "nothing stored before the append");

    // The real vessel service; the repeat with the same key creates it, once.
    lookups.unsubscribe().await.unwrap();
    let vessels = vessel_worker(&nats, None).await;
    let worker = consignment_process(&nats).await;
    let created = create(&client, Some("order-7")).await.unwrap();
    assert_eq!(create(&client, Some("order-7")).await.unwrap(), created);
    assert_eq!(event_ids(&client).await, std::slice::from_ref(&created.consignment.id));
    assert_eq!(list_all(&client, ListConsignments::default()).await, [created.consignment]);

    worker.kill().await;
    vessels.stop().await.unwrap();
}

#[tokio::test]
async fn the_same_key_at_once_with_two_bodies_gets_identical_replies_or_409_never_500() {
    const ROUNDS: usize = 20;
    let nats = Nats::start().await;
    let workers = [
        vessel_worker(&nats, Some(&BIG_FLEET)).await,
        consignment_worker(&nats).await,
        consignment_worker(&nats).await,
    ];
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut heavier: Value = serde_json::from_str(SEED).unwrap();
    heavier["weight"] = json!(56_000);
    let heavier = heavier.to_string();

    for round in 0..ROUNDS {
        let key = format!("race-{round}");
        let sends = (0..20).map(|n| {
            let body = if n % 2 == 0 { SEED.to_owned() } else { heavier.clone() };
            let (client, key) = (client.clone(), key.clone());
            async move { (body.clone(), create_with::<CreatedConsignment>(&client, Some(&key), body).await) }
        });
        let replies: Vec<_> = sends.collect::<FuturesUnordered<_>>().collect().await;
        let created: Vec<&CreatedConsignment> = replies.iter().filter_map(|(_, reply)| reply.as_ref().ok()).collect();
        let first = created.first().expect("one body wins");
        let winner = first.consignment.weight;
        for (body, reply) in &replies {
            match reply {
                Ok(reply) => assert_eq!(reply, *first, "round {round}: identical replies"),
                Err(RequestError::Service(error)) if error.code == ErrorCode::Conflict => {
                    let asked: Value = serde_json::from_str(body).unwrap();
                    assert_ne!(asked["weight"], json!(winner), "round {round}: a 409 only for the other body");
                }
                Err(error) => panic!("round {round}: {error:?}"),
            }
        }
    }
    let stored = list_all(&client, ListConsignments::default()).await;
    assert_eq!(stored.len(), ROUNDS, "one consignment per key");
    assert_eq!(event_ids(&client).await.len(), ROUNDS, "void repeats store nothing");
    assert_bookings_match_consignments(&client).await;

    for worker in workers {
        worker.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_get_or_a_list_right_after_a_write_finds_it_through_any_instance() {
    let nats = Nats::start().await;
    let workers = [
        vessel_worker(&nats, Some(&BIG_FLEET)).await,
        vessel_worker(&nats, Some(&BIG_FLEET)).await,
        consignment_worker(&nats).await,
        consignment_worker(&nats).await,
    ];
    let client = async_nats::connect(nats.url()).await.unwrap();
    // The queue group hands each read to either instance: half the time not the writer.
    for n in 1..=200 {
        let created = create(&client, None).await.unwrap().consignment;
        let body = json!({"id": created.id}).to_string();
        let got: shared::model::ConsignmentReply =
            request(&client, consignment::GET, body.into(), TIMEOUT).await.expect("found at once");
        assert_eq!(got.consignment, created);
        let listed = list_all(&client, ListConsignments::default()).await;
        assert_eq!((listed.len(), listed.last()), (n, Some(&created)), "listed at once");
    }
    for n in 0..50 {
        let id = format!("added-{n}");
        let added = json!({"id": id, "name": id, "capacity": 1, "max_weight": 1});
        let _: Value = request(&client, vessel::CREATE, added.to_string().into(), TIMEOUT).await.unwrap();
        assert!(fleet(&client).await.iter().any(|listed| listed.vessel.id == id), "{id} listed at once");
    }
    for worker in workers {
        worker.stop().await.unwrap();
    }
}

#[tokio::test]
async fn every_worker_killed_at_once_under_load_comes_back_to_a_consistent_state() {
    const CREATES: usize = 300;
    const IN_FLIGHT: usize = 16;
    let nats = Nats::start().await;
    let fleet = json!([
        {"id": "a", "name": "A", "capacity": 300, "max_weight": 100 * 55_000},
        {"id": "b", "name": "B", "capacity": 3_000, "max_weight": 1_000 * 55_000},
    ]);
    let client = async_nats::connect(nats.url()).await.unwrap();
    let start_all = || async {
        let vessels = [vessel_worker(&nats, Some(&fleet)).await, vessel_worker(&nats, Some(&fleet)).await];
        let consignments = [consignment_process(&nats).await, consignment_process(&nats).await];
        (vessels, consignments)
    };
    let (vessels, consignments) = start_all().await;

    let (load, mut acked) = keyed_load(&client, "all-down", CREATES, IN_FLIGHT);

    let mut acknowledged = Vec::new();
    while acknowledged.len() < 100 {
        acknowledged.push(acked.recv().await.expect("creates go on"));
    }
    // Every worker down at once: the consignment-workers by SIGKILL, the
    // vessel-workers' tasks aborted with their connections.
    let [one, two] = consignments;
    tokio::join!(one.kill(), two.kill(), async {
        for vessel in vessels {
            vessel.abort().await;
        }
    });
    let (vessels, consignments) = start_all().await;
    load.await.unwrap();
    while let Some(consignment) = acked.recv().await {
        acknowledged.push(consignment);
    }
    assert_eq!(acknowledged.len(), CREATES);

    assert_stored_once(&client, &acknowledged).await;

    for consignment in consignments {
        consignment.kill().await;
    }
    for vessel in vessels {
        vessel.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_hundred_thousand_vessels_find_create_and_list_in_pages() {
    const VESSELS: usize = 100_000;
    let nats = Nats::start().await;
    // None but the last takes the seed consignment (3 containers).
    let fleet: Vec<Value> = (0..VESSELS)
        .map(|n| {
            let capacity = if n + 1 == VESSELS { 1_000 } else { 2 };
            json!({"id": format!("v{n:06}"), "name": format!("Vessel {n}"), "capacity": capacity, "max_weight": 1_000_000})
        })
        .collect();
    let vessels = vessel_worker(&nats, Some(&Value::Array(fleet))).await;
    let consignments = consignment_worker(&nats).await;
    let client = async_nats::connect(nats.url()).await.unwrap();

    let found: shared::model::VesselReply = request(
        &client,
        vessel::FIND_AVAILABLE,
        json!({"capacity": 3, "max_weight": 55_000}).to_string().into(),
        TIMEOUT,
    )
    .await
    .unwrap();
    assert_eq!(found.vessel.id, format!("v{:06}", VESSELS - 1), "the one vessel with room, past 99,999 others");
    let created = create(&client, None).await.unwrap();
    assert_eq!(created.consignment.vessel_id, found.vessel.id);

    let max_payload = client.server_info().max_payload;
    let mut query = shared::model::ListVessels::default();
    let (mut listed, mut pages) = (0, 0);
    loop {
        let reply = client.request(vessel::LIST, shared::codec::encode(&query).into()).await.unwrap();
        assert!(reply.payload.len() <= max_payload, "a reply of {} bytes", reply.payload.len());
        let page: shared::model::VesselList = decode_reply(vessel::LIST, &reply).unwrap();
        listed += page.vessels.len();
        pages += 1;
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(listed, VESSELS);
    assert!(pages >= VESSELS / 1_000, "{pages} pages");

    consignments.stop().await.unwrap();
    vessels.stop().await.unwrap();
}
