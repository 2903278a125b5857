//! Connecting to NATS.

use std::time::Duration;

/// Environment variable naming the NATS server(s), as every NATS tool reads it.
pub const URL_ENV: &str = "NATS_URL";
/// Where to find NATS when [`URL_ENV`] is unset.
pub const DEFAULT_URL: &str = "nats://localhost:4222";

pub use async_nats::{Client, ConnectError};

/// Connects a long-running worker.
///
/// The initial connect is retried in the background like any reconnect, so a
/// worker started before its NATS server (as `docker compose up` does) waits for
/// it instead of exiting. Requests made before the connection is up wait too.
/// async-nats logs connection events (connected, disconnected, ...) through `tracing`.
pub async fn connect_worker(url: &str, name: &str) -> Result<Client, ConnectError> {
    async_nats::ConnectOptions::new().name(name).retry_on_initial_connect().connect(url).await
}

/// Connects a short-lived client, such as the CLI: fails at once if NATS is not
/// reachable, and bounds the wait for the connection.
pub async fn connect_client(url: &str, name: &str, timeout: Duration) -> Result<Client, ConnectError> {
    async_nats::ConnectOptions::new().name(name).connection_timeout(timeout).connect(url).await
}

/// Why [`round_trip`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RoundTripError {
    #[error("could not subscribe: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
    #[error("could not publish: {0}")]
    Publish(#[from] async_nats::PublishError),
    #[error("the connection closed")]
    Closed,
}

/// Returns once the server has processed everything this client sent before the
/// call, subscriptions included: a message to a fresh inbox of our own comes back
/// only after the server has handled what preceded it on the connection.
///
/// `Client::flush` is not that: in async-nats 0.51 it writes the buffered
/// protocol to the socket and returns, without waiting for the server.
pub async fn round_trip(client: &Client) -> Result<(), RoundTripError> {
    use futures::StreamExt as _;

    let inbox = client.new_inbox();
    let mut echo = client.subscribe(inbox.clone()).await?;
    client.publish(inbox, bytes::Bytes::new()).await?;
    echo.next().await.ok_or(RoundTripError::Closed)?;
    // Dropping the subscriber unsubscribes it.
    Ok(())
}
