//! Both services answer `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS` (at `$SRV.VERB`,
//! `$SRV.VERB.name` and `$SRV.VERB.name.id`) as the official ADR-32 JSON schemas say,
//! and `$SRV.STATS` counts error replies in `num_errors` / `last_error`.
//!
//! The schemas are copied from the NATS project: `tests/schemas/micro/v1/SOURCE.md`.

use std::time::Duration;

use async_nats::Client;
use futures::StreamExt as _;
use serde_json::Value;
use shared::subjects::{consignment, vessel};
use testkit::Nats;

const GUARD: Duration = Duration::from_secs(10);

fn validator(name: &str) -> jsonschema::Validator {
    let path = format!("{}/tests/schemas/micro/v1/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let schema: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    jsonschema::options().should_validate_formats(true).build(&schema).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The one reply to `subject` (one instance of each service runs).
async fn ask(client: &Client, subject: &str) -> Value {
    let reply = tokio::time::timeout(GUARD, client.request(subject.to_owned(), "".into()))
        .await
        .unwrap_or_else(|_| panic!("{subject}: no reply within {GUARD:?}"))
        .unwrap_or_else(|error| panic!("{subject}: {error}"));
    serde_json::from_slice(&reply.payload).unwrap()
}

/// Every reply to `$SRV.<verb>` (no name: both services answer), until both have.
async fn ask_all(client: &Client, verb: &str) -> Vec<Value> {
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.unwrap();
    client.publish_with_reply(format!("$SRV.{verb}"), inbox, "".into()).await.unwrap();
    let mut all = Vec::new();
    while all.len() < 2 {
        let reply = tokio::time::timeout(GUARD, replies.next()).await.expect("both services answer").unwrap();
        all.push(serde_json::from_slice(&reply.payload).unwrap());
    }
    all
}

fn assert_valid(validator: &jsonschema::Validator, subject: &str, reply: &Value) {
    let errors: Vec<String> = validator.iter_errors(reply).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{subject}: {reply}\n{}", errors.join("\n"));
}

#[tokio::test]
async fn discovery_replies_of_both_services_follow_the_adr32_schemas() {
    let nats = Nats::start().await;
    let vessels = testkit::stack::vessel_worker(&nats, None).await;
    let consignments = testkit::stack::consignment_worker(&consignment_worker::Config::new(nats.url())).await;
    let client = async_nats::connect(nats.url()).await.unwrap();

    // Two error replies and a success on each service, so that STATS has counts to show.
    for (subject, body) in [
        (vessel::FIND_AVAILABLE, "[3,55000]"),
        (vessel::FIND_AVAILABLE, r#"{"capacity":3,"max_weight":55000,"a\nb":NaN}"#),
        (vessel::FIND_AVAILABLE, r#"{"capacity":3,"max_weight":55000}"#),
        (consignment::CREATE, "{} {}"),
        (consignment::CREATE, r#"{"description":"d\r\n","weight":0,"containers":[]}"#),
        (consignment::CREATE, testkit::SEED_CONSIGNMENT),
    ] {
        client.request(subject, body.into()).await.unwrap();
    }

    let schemas = [
        ("PING", validator("ping_response")),
        ("INFO", validator("info_response")),
        ("STATS", validator("stats_response")),
    ];
    for service in [vessel::SERVICE, consignment::SERVICE] {
        let id = ask(&client, &format!("$SRV.PING.{service}")).await["id"].as_str().unwrap().to_owned();
        for (verb, validator) in &schemas {
            for subject in [format!("$SRV.{verb}.{service}"), format!("$SRV.{verb}.{service}.{id}")] {
                let reply = ask(&client, &subject).await;
                assert_valid(validator, &subject, &reply);
                assert_eq!(
                    (reply["name"].as_str(), reply["id"].as_str()),
                    (Some(service), Some(id.as_str())),
                    "{subject}"
                );
            }
        }
    }
    for (verb, validator) in &schemas {
        for reply in ask_all(&client, verb).await {
            assert_valid(validator, &format!("$SRV.{verb}"), &reply);
        }
    }

    // The errors are in the standard fields, where `nats micro stats` reads them.
    // The seed consignment's create asked vessel.find_available once more.
    for (service, subject, requests, last_error) in [
        (vessel::SERVICE, vessel::FIND_AVAILABLE, 4, r"400:invalid request: a\nb: expected value"),
        (consignment::SERVICE, consignment::CREATE, 3, "400:weight must be greater than zero"),
    ] {
        let stats = ask(&client, &format!("$SRV.STATS.{service}")).await;
        let endpoint = stats["endpoints"].as_array().unwrap().iter().find(|e| e["subject"] == subject).unwrap();
        assert_eq!(endpoint["num_requests"], requests, "{endpoint}");
        assert_eq!(endpoint["num_errors"], 2, "{endpoint}");
        assert!(endpoint["last_error"].as_str().unwrap().starts_with(last_error), "{endpoint}");
    }
    let info = ask(&client, &format!("$SRV.INFO.{}", vessel::SERVICE)).await;
    assert!(info["endpoints"].as_array().unwrap().iter().all(|e| e["queue_group"] == vessel::QUEUE_GROUP), "{info}");

    consignments.stop().await.unwrap();
    vessels.stop().await.unwrap();
}
