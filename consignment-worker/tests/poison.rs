//! A seeded, bounded fuzz through real NATS: a few thousand random and mutated
//! requests to every endpoint of both running workers, each of which must get a
//! prompt reply (a JSON success, or a JSON error with both ADR-32 headers); then the
//! workers must still book the seed consignment.
//!
//! The same seed sends the same requests every run; set `SHIPPY_POISON_SEED` to
//! explore others, `SHIPPY_POISON_REQUESTS` to send more.

use std::time::Duration;

use async_nats::{Client, Message};
use fastrand::Rng;
use futures::{StreamExt as _, stream};
use serde_json::Value;
use shared::{
    client::request,
    error::{ERROR_CODE_HEADER, ERROR_HEADER, ErrorReply, MAX_HEADER_MESSAGE_BYTES},
    model::CreatedConsignment,
    subjects::{consignment, vessel},
};
use testkit::Nats;
use testkit::stack;

use testkit::SEED_CONSIGNMENT as SEED;
const DEFAULT_SEED: u64 = 0x5eed_0006;
const DEFAULT_REQUESTS: usize = 3_000;
/// Requests in flight at once.
const CONCURRENCY: usize = 32;
/// Every request must be answered within this.
const DEADLINE: Duration = Duration::from_secs(5);

/// Valid requests to mutate, per endpoint.
fn valid_bodies() -> [(&'static str, &'static str); 5] {
    [
        (vessel::FIND_AVAILABLE, r#"{"capacity":3,"max_weight":55000}"#),
        (vessel::CREATE, r#"{"id":"v","name":"Little Toot","capacity":1,"max_weight":100,"available":true}"#),
        (vessel::LIST, "{}"),
        (consignment::CREATE, SEED),
        (consignment::LIST, "{}"),
    ]
}

/// Bytes that break things: line ends, NUL, quotes, brackets, bytes that are never UTF-8.
const NASTY: &[&[u8]] = &[
    b"\r",
    b"\n",
    b"\r\n",
    b"\0",
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\\u0000",
    b"\\r\\n",
    b"\\ud800",
    b"NaN",
    b"-1",
    b"1e999",
    b"18446744073709551616",
    b"-99999999999999999999999999999999",
    b"null",
    b"\"a\\r\\nb\\u0000\":1,",
    b"\"\r\n\":0,",
];

/// One poison body: a mutation of a valid one, or something made from nothing.
fn poison(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let mut body = valid.to_vec();
    match rng.u8(0..10) {
        // Nasty bytes spliced in at random places.
        0..=2 => {
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(0..=body.len());
                body.splice(at..at, NASTY[rng.usize(0..NASTY.len())].iter().copied());
            }
        }
        // Truncated JSON.
        3 => body.truncate(rng.usize(0..body.len().max(1))),
        // A number replaced by a huge or invalid one.
        4 => {
            if let Some(at) = body.iter().position(u8::is_ascii_digit) {
                let end = body[at..].iter().position(|b| !b.is_ascii_digit()).map_or(body.len(), |n| at + n);
                let numbers: [&[u8]; 5] = [b"18446744073709551616", b"1e999", b"-0", b"4294967296", b"1.5"];
                body.splice(at..end, numbers[rng.usize(0..numbers.len())].iter().copied());
            }
        }
        // An extra key holding control characters, before the real ones.
        5 => {
            let key: &[u8] =
                [&b"\"a\\nb\":NaN,"[..], b"\"\\r\\n\\u0000\":1,", b"\"a\nb\":1,", b"\"\xff\":1,"][rng.usize(0..4)];
            body.splice(1..1, key.iter().copied());
        }
        // Deep nesting as a field's value, within and beyond serde's recursion limit.
        6 => {
            let depth = rng.usize(1..3_000);
            let nested = [vec![b'['; depth], vec![b']'; depth]].concat();
            let at = body.iter().position(|&b| b == b':').map_or(0, |n| n + 1);
            body.splice(at..at, nested.into_iter().chain(*b"0,"));
        }
        // Random bytes.
        7 => {
            let len = rng.usize(0..256);
            body = std::iter::repeat_with(|| rng.u8(..)).take(len).collect();
        }
        // Trailing bytes or a second document.
        8 => body.extend_from_slice([&b" xyz"[..], valid, b"\0", b"[]"][rng.usize(0..4)]),
        // Random bytes flipped.
        _ => {
            for _ in 0..rng.usize(1..8) {
                if !body.is_empty() {
                    let at = rng.usize(0..body.len());
                    body[at] = rng.u8(..);
                }
            }
        }
    }
    body
}

/// Checks a reply: JSON success, or a JSON error body with both ADR-32 headers.
fn check(subject: &str, body: &[u8], reply: &Message) {
    let context = || format!("{subject} {:?}", String::from_utf8_lossy(body));
    match &reply.headers {
        Some(headers) => {
            let code = headers.get(ERROR_CODE_HEADER).unwrap_or_else(|| panic!("{}: no error code header", context()));
            let message = headers.get(ERROR_HEADER).unwrap_or_else(|| panic!("{}: no error header", context()));
            assert!(message.as_str().len() <= MAX_HEADER_MESSAGE_BYTES, "{}", context());
            let ErrorReply { error } = serde_json::from_slice(&reply.payload)
                .unwrap_or_else(|e| panic!("{}: error body {:?} is not an error reply: {e}", context(), reply.payload));
            assert_eq!(code.as_str(), error.code.to_string(), "{}", context());
        }
        None => {
            serde_json::from_slice::<Value>(&reply.payload)
                .unwrap_or_else(|e| panic!("{}: success body is not JSON: {e}", context()));
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

async fn send(client: &Client, subject: &'static str, body: Vec<u8>) -> (&'static str, Vec<u8>, Message) {
    let reply = tokio::time::timeout(DEADLINE, client.request(subject, body.clone().into()))
        .await
        .unwrap_or_else(|_| panic!("{subject} {:?}: no reply within {DEADLINE:?}", String::from_utf8_lossy(&body)))
        .unwrap_or_else(|e| panic!("{subject} {:?}: {e}", String::from_utf8_lossy(&body)));
    (subject, body, reply)
}

#[tokio::test]
async fn thousands_of_poison_requests_each_get_a_reply_and_the_workers_keep_serving() {
    let seed = env_or("SHIPPY_POISON_SEED", DEFAULT_SEED);
    let count = env_or("SHIPPY_POISON_REQUESTS", DEFAULT_REQUESTS);
    let nats = Nats::start().await;
    // A vessel with room for whatever the valid requests among the poison book.
    let roomy = serde_json::json!([{"id":"vessel001","name":"Roomy","capacity":4_294_967_295_u32,"max_weight":18_446_744_073_709_551_615_u64}]);
    let vessels = stack::vessel_worker(&nats, Some(&roomy)).await;
    let consignments = stack::consignment_worker(&consignment_worker::Config::new(nats.url())).await;
    let client = async_nats::connect(nats.url()).await.unwrap();

    let mut rng = Rng::with_seed(seed);
    let requests: Vec<(&str, Vec<u8>)> = (0..count)
        .map(|_| {
            let (subject, valid) = valid_bodies()[rng.usize(0..5)];
            (subject, poison(&mut rng, valid.as_bytes()))
        })
        .collect();
    let mut errors = 0_usize;
    let mut replies =
        stream::iter(requests).map(|(subject, body)| send(&client, subject, body)).buffer_unordered(CONCURRENCY);
    while let Some((subject, body, reply)) = replies.next().await {
        check(subject, &body, &reply);
        errors += usize::from(reply.headers.is_some());
    }
    println!("seed {seed:#x}: {count} requests, {errors} error replies");
    assert!(errors > count / 2, "most poison is refused: {errors} of {count}");

    let created: CreatedConsignment =
        request(&client, consignment::CREATE, SEED.into(), DEADLINE).await.expect("the seed consignment is booked");
    assert_eq!(created.consignment.vessel_id, "vessel001");

    consignments.stop().await.unwrap();
    vessels.stop().await.unwrap();
}
