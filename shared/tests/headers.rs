//! Header blocks through a real NATS server, as the patched async-nats writes and
//! reads them (`vendor/async-nats/PATCHED.md`, "Cheaper messages with headers"):
//! every name, every value of a repeated name in order, and values with spaces,
//! colons and non-ASCII text arrive as sent; names and values NATS cannot carry
//! are refused.

use std::str::FromStr as _;

use async_nats::{HeaderMap, HeaderName, HeaderValue};
use futures::StreamExt as _;
use testkit::{GUARD, Nats};

#[tokio::test]
async fn a_header_block_arrives_as_sent() {
    let nats = Nats::start().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut subscriber = client.subscribe("headers.probe").await.unwrap();
    client.flush().await.unwrap();

    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", "one");
    headers.insert("traceparent", traceparent);
    headers.append("Shippy-Tag", "first");
    headers.append("Shippy-Tag", "second: with a colon");
    headers.append("Shippy-Tag", "dritte Größe");
    client.publish_with_headers("headers.probe", headers, "payload".into()).await.unwrap();

    let message = tokio::time::timeout(GUARD, subscriber.next()).await.unwrap().unwrap();
    let received = message.headers.expect("the message has headers");
    let values =
        |name: &str| -> Vec<String> { received.get_all(name).map(|value| value.as_str().to_owned()).collect() };
    assert_eq!(values("Nats-Msg-Id"), ["one"]);
    assert_eq!(values("traceparent"), [traceparent]);
    assert_eq!(values("Shippy-Tag"), ["first", "second: with a colon", "dritte Größe"]);
    assert_eq!(received.iter().count(), 3, "no other names: {received:?}");
    assert_eq!(&message.payload[..], b"payload");
}

#[test]
fn names_and_values_nats_cannot_carry_are_refused() {
    for name in ["Shippy-Tag", "traceparent", "Nats-Msg-Id", "x"] {
        assert!(HeaderName::from_str(name).is_ok(), "{name:?}");
    }
    for name in ["a:b", "a b", "tab\there", "größe", "line\nbreak", "\u{7f}"] {
        assert!(HeaderName::from_str(name).is_err(), "{name:?}");
    }
    for value in ["", "a b: c", "größe", "\t"] {
        assert!(HeaderValue::from_str(value).is_ok(), "{value:?}");
    }
    for value in ["a\rb", "a\nb", "\r\n", "größe\n"] {
        assert!(HeaderValue::from_str(value).is_err(), "{value:?}");
    }
}
