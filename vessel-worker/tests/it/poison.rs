//! The requests that used to crash or fool vessel-worker, each answered with a JSON
//! error reply carrying both ADR-32 headers, the worker serving on.

use std::time::Duration;

use async_nats::Client;
use serde_json::Value;
use shared::{
    error::{ERROR_CODE_HEADER, ERROR_HEADER, MAX_HEADER_MESSAGE_BYTES},
    subjects::vessel,
};
use testkit::Nats;

const DEADLINE: Duration = Duration::from_secs(5);

/// The reply to `body` on `subject`: the JSON error body, checked against its headers.
async fn error_reply(client: &Client, subject: &str, body: &[u8]) -> (u16, String) {
    let reply = tokio::time::timeout(DEADLINE, client.request(subject.to_owned(), body.to_vec().into()))
        .await
        .unwrap_or_else(|_| panic!("{body:?}: no reply within {DEADLINE:?}"))
        .unwrap();
    let headers = reply.headers.as_ref().unwrap_or_else(|| panic!("{body:?}: no error headers"));
    let header = headers.get(ERROR_HEADER).expect("Nats-Service-Error").as_str().to_owned();
    assert!(header.len() <= MAX_HEADER_MESSAGE_BYTES && header.bytes().all(|b| b == b' ' || b.is_ascii_graphic()));
    let json: Value = serde_json::from_slice(&reply.payload).expect("a JSON error body");
    let code = u16::try_from(json["error"]["code"].as_u64().unwrap()).unwrap();
    assert_eq!(headers.get(ERROR_CODE_HEADER).expect("Nats-Service-Error-Code").as_str(), code.to_string());
    (code, json["error"]["message"].as_str().unwrap().to_owned())
}

async fn still_serving(client: &Client) {
    let reply = client.request(vessel::FIND_AVAILABLE, r#"{"capacity":3,"max_weight":55000}"#.into()).await.unwrap();
    assert!(reply.headers.is_none(), "{:?}", reply.payload);
}

#[tokio::test]
async fn poison_requests_get_json_errors_and_the_worker_keeps_serving() {
    let nats = Nats::start().await;
    let worker = testkit::stack::vessel_worker(&nats, None).await;
    let client = async_nats::connect(nats.url()).await.unwrap();

    let long_key = format!(r#"{{"capacity":3,"max_weight":1,"{}\n":NaN}}"#, "\u{e9}".repeat(5_000));
    for (subject, body, says) in [
        // The crash of issue 6: the error quotes a key holding a newline.
        (vessel::FIND_AVAILABLE, r#"{"capacity":3,"max_weight":55000,"a\nb":NaN}"#, "a\nb: expected value"),
        (vessel::FIND_AVAILABLE, "{\"capacity\":3,\"max_weight\":55000,\"a\r\n\0b\":NaN}", "control character"),
        (vessel::FIND_AVAILABLE, long_key.as_str(), "expected value"),
        (vessel::FIND_AVAILABLE, r#"{"capacity": 3, "max_weight": 55000} xyz"#, "more after the JSON object"),
        (
            vessel::FIND_AVAILABLE,
            r#"{"capacity":3,"max_weight":1}{"capacity":3,"max_weight":1}"#,
            "more after the JSON object",
        ),
        (vessel::FIND_AVAILABLE, "[3,55000]", "the body is an array"),
        // An id stands in the subject of its events: letters, digits, - and _ only.
        (vessel::CREATE, r#"{"id":"dup\nid","name":"x","capacity":1,"max_weight":1}"#, "id may hold only"),
        (vessel::CREATE, r#"{"name":"bell\u0007","capacity":1,"max_weight":1}"#, "control characters"),
    ] {
        let (code, message) = error_reply(&client, subject, body.as_bytes()).await;
        assert_eq!(code, 400, "{body:?}: {message}");
        assert!(message.contains(says), "{body:?}: {message:?}");
        still_serving(&client).await;
    }
    // Refused, not stored: the id is free, and never shows in the list.
    let list = client.request(vessel::LIST, "".into()).await.unwrap();
    assert!(!String::from_utf8_lossy(&list.payload).contains("dup"), "{:?}", list.payload);

    worker.stop().await.unwrap();
}
