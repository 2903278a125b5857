//! Connecting to NATS.

use std::time::Duration;

/// Environment variable naming the NATS server(s), as every NATS tool reads it:
/// one URL, or several separated by commas (the nodes of a cluster).
pub const URL_ENV: &str = "NATS_URL";
/// Where to find NATS when [`URL_ENV`] is unset.
pub const DEFAULT_URL: &str = "nats://localhost:4222";

pub use async_nats::{Client, ConnectError};

/// How often a connection is checked with a PING; after two unanswered ones the
/// client takes the server for lost and reconnects, to another node of a cluster
/// if there is one. The async-nats default (60 s) leaves a connection to a node cut
/// off by a network partition dead for up to three minutes, with no error.
pub const PING_INTERVAL: Duration = Duration::from_secs(2);

/// The servers in `url`: one URL, or several separated by commas as in `NATS_URL`
/// (`nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222`). async-nats parses a
/// single string as one URL, so the list is split here.
pub fn servers(url: &str) -> Vec<&str> {
    url.split(',').map(str::trim).filter(|server| !server.is_empty()).collect()
}

fn options(name: &str) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::new().name(name).ping_interval(PING_INTERVAL)
}

/// Connects a long-running worker to the server(s) in `url` (see [`servers`]).
///
/// The initial connect is retried in the background like any reconnect, so a
/// worker started before its NATS server (as `docker compose up` does) waits for
/// it instead of exiting. Requests made before the connection is up wait too.
/// async-nats logs connection events (connected, disconnected, ...) through `tracing`.
pub async fn connect_worker(url: &str, name: &str) -> Result<Client, ConnectError> {
    options(name).retry_on_initial_connect().connect(servers(url)).await
}

/// Connects a short-lived client, such as the CLI, to the server(s) in `url`: fails
/// at once if NATS is not reachable, and bounds the wait for the connection.
pub async fn connect_client(url: &str, name: &str, timeout: Duration) -> Result<Client, ConnectError> {
    options(name).connection_timeout(timeout).connect(servers(url)).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_split_on_commas() {
        assert_eq!(servers("nats://localhost:4222"), ["nats://localhost:4222"]);
        assert_eq!(
            servers("nats://nats-1:4222, nats://nats-2:4222,nats://nats-3:4222,"),
            ["nats://nats-1:4222", "nats://nats-2:4222", "nats://nats-3:4222"]
        );
    }
}
