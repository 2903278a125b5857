//! Connecting to NATS: where, as whom, and over what.
//!
//! Every shippy process reads its connection settings the way the `nats` CLI and the
//! other NATS tools do: `NATS_URL` (credentials in the URL work too), then
//! `NATS_USER`/`NATS_PASSWORD`, `NATS_CREDS` (a `.creds` file), `NATS_NKEY` (a seed
//! file), and `NATS_CA` (with `NATS_CERT`/`NATS_KEY` for a client certificate) for TLS;
//! `tls://` URLs require TLS. Each process also replies on an inbox prefix of its own
//! role ([`crate::roles`]), which `NATS_INBOX_PREFIX` overrides. `NATS_URL` may list
//! the nodes of a cluster, and connections are pinged often enough ([`PING_INTERVAL`])
//! to leave a lost node within seconds.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

/// Environment variable naming the NATS server(s), as every NATS tool reads it:
/// one URL, or several separated by commas (the nodes of a cluster).
pub const URL_ENV: &str = "NATS_URL";
/// Where to find NATS when [`URL_ENV`] is unset.
pub const DEFAULT_URL: &str = "nats://localhost:4222";

pub use async_nats::Client;

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

/// Where a process finds NATS and how it proves who it is: flags or the
/// environment variables the NATS tools read.
#[derive(Clone, Default, clap::Args)]
pub struct NatsConfig {
    /// NATS server(s) to connect to, comma-separated; `tls://` requires TLS, and
    /// `nats://user:password@host` logs in.
    #[arg(global = true, long = "nats-url", env = URL_ENV, default_value = DEFAULT_URL)]
    pub url: String,
    /// User name to log in with (with `--nats-password`).
    #[arg(global = true, long = "nats-user", env = "NATS_USER")]
    pub user: Option<String>,
    /// Password of `--nats-user`.
    #[arg(global = true, long = "nats-password", env = "NATS_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Credentials file (user JWT and nkey seed), as `nsc` makes them.
    #[arg(global = true, long = "nats-creds", env = "NATS_CREDS", value_parser = file("NATS_CREDS"))]
    pub creds: Option<PathBuf>,
    /// Nkey seed file to log in with, as `shippy auth init` makes them.
    #[arg(global = true, long = "nats-nkey", env = "NATS_NKEY", value_parser = file("NATS_NKEY"))]
    pub nkey: Option<PathBuf>,
    /// CA certificate(s) to verify the server's TLS certificate with; turns TLS on.
    #[arg(global = true, long = "nats-ca", env = "NATS_CA", value_parser = file("NATS_CA"))]
    pub ca: Option<PathBuf>,
    /// Client certificate for TLS (with `--nats-key`), when the server asks for one.
    #[arg(global = true, long = "nats-cert", env = "NATS_CERT", requires = "key", value_parser = file("NATS_CERT"))]
    pub cert: Option<PathBuf>,
    /// Private key of `--nats-cert`.
    #[arg(global = true, long = "nats-key", env = "NATS_KEY", requires = "cert", value_parser = file("NATS_KEY"))]
    pub key: Option<PathBuf>,
    /// Prefix of this process's reply inboxes; by default its role's
    /// (`_INBOX_<role>`), the one prefix `nats.conf` lets it subscribe to.
    #[arg(global = true, long = "nats-inbox-prefix", env = "NATS_INBOX_PREFIX")]
    pub inbox_prefix: Option<String>,
}

/// Parses a file named by flag or by `variable`, refusing an empty name (as
/// `NATS_NKEY=` gives) with a reason that names the variable to set.
fn file(variable: &'static str) -> impl Fn(&str) -> Result<PathBuf, String> + Clone + Send + Sync + 'static {
    move |value: &str| {
        if value.is_empty() {
            Err(format!("empty: set {variable} to a file, or unset it"))
        } else {
            Ok(PathBuf::from(value))
        }
    }
}

/// Shows no secret: the URL's password and `--nats-password` print as `***`.
impl std::fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsConfig")
            .field("url", &self.redacted_url())
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("creds", &self.creds)
            .field("nkey", &self.nkey)
            .field("ca", &self.ca)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("inbox_prefix", &self.inbox_prefix)
            .finish()
    }
}

/// Why a connection could not be set up or made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read {what} {}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no nkey seed in {}", path.display())]
    NoSeed { path: PathBuf },
    #[error("invalid NATS URL {url}: {reason}")]
    Url { url: String, reason: String },
    #[error(transparent)]
    Connect(#[from] async_nats::ConnectError),
}

impl NatsConfig {
    /// Connecting to `url`, with no credentials.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), ..Self::default() }
    }

    /// The URL(s) with any password replaced by `***`, for logs and reports.
    pub fn redacted_url(&self) -> String {
        servers(&self.url)
            .into_iter()
            .map(|server| match url::Url::parse(server) {
                Ok(mut parsed) if parsed.password().is_some() => {
                    let _ = parsed.set_password(Some("***"));
                    parsed.to_string()
                }
                _ => server.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Connection options for `role` under connection name `name`: credentials, TLS
    /// and the inbox prefix, from this configuration.
    pub async fn options(
        &self,
        name: &str,
        role: crate::roles::Role,
    ) -> Result<async_nats::ConnectOptions, ConnectError> {
        let mut options = match &self.creds {
            Some(path) => async_nats::ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|source| ConnectError::Read { what: "NATS credentials file", path: path.clone(), source })?,
            None => async_nats::ConnectOptions::new(),
        };
        if let Some(path) = &self.nkey {
            options = options.nkey(read_seed(path)?);
        }
        if let Some((user, password)) = self.user_and_password()? {
            options = options.user_and_password(user, password);
        }
        if let Some(ca) = &self.ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        let inbox_prefix = self.inbox_prefix.as_deref().unwrap_or(role.inbox_prefix);
        Ok(options.name(name).custom_inbox_prefix(inbox_prefix).ping_interval(PING_INTERVAL))
    }

    /// `--nats-user`/`--nats-password`, or else the first user in the URL(s).
    fn user_and_password(&self) -> Result<Option<(String, String)>, ConnectError> {
        if let Some(user) = &self.user {
            return Ok(Some((user.clone(), self.password.clone().unwrap_or_default())));
        }
        for server in servers(&self.url) {
            // A bare `host:port` has no user in it.
            if !server.contains("://") {
                continue;
            }
            let parsed = url::Url::parse(server)
                .map_err(|error| ConnectError::Url { url: self.redacted_url(), reason: error.to_string() })?;
            if !parsed.username().is_empty() {
                let decode = |part: &str| percent_encoding::percent_decode_str(part).decode_utf8_lossy().into_owned();
                return Ok(Some((decode(parsed.username()), decode(parsed.password().unwrap_or_default()))));
            }
        }
        Ok(None)
    }
}

/// The seed in an nkey seed file: its first line that is not blank or a comment,
/// as the NATS tools read these files.
fn read_seed(path: &std::path::Path) -> Result<String, ConnectError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConnectError::Read {
        what: "nkey seed file",
        path: path.to_owned(),
        source,
    })?;
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with("//"))
        .map(str::to_owned)
        .ok_or_else(|| ConnectError::NoSeed { path: path.to_owned() })
}

/// Connects a long-running worker acting as `role`.
///
/// The initial connect is retried in the background like any reconnect, so a
/// worker started before its NATS server (as `docker compose up` does) waits for
/// it instead of exiting. Requests made before the connection is up wait too.
/// async-nats logs connection events (connected, disconnected, ...) through `tracing`;
/// reconnects and slow consumers are counted ([`crate::meter`]).
pub async fn connect_worker(config: &NatsConfig, role: crate::roles::Role) -> Result<Client, ConnectError> {
    let connected = Arc::new(AtomicBool::new(false));
    let options = config.options(role.name, role).await?.retry_on_initial_connect().event_callback(move |event| {
        let reconnect = matches!(event, async_nats::Event::Connected) && connected.swap(true, Ordering::Relaxed);
        // async-nats logs the event itself.
        crate::meter::nats_event(&event, reconnect);
        std::future::ready(())
    });
    Ok(options.connect(servers(&config.url)).await?)
}

/// Connects a short-lived client acting as `role`, such as the CLI: fails at once
/// if NATS is not reachable, and bounds the wait for the connection.
pub async fn connect_client(
    config: &NatsConfig,
    name: &str,
    role: crate::roles::Role,
    timeout: Duration,
) -> Result<Client, ConnectError> {
    let options = config.options(name, role).await?.connection_timeout(timeout);
    Ok(options.connect(servers(&config.url)).await?)
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

    #[test]
    fn credentials_in_the_url_log_in_and_are_never_shown() {
        let config = NatsConfig::new("nats://ops:s%40cret@nats-1:4222, nats://nats-2:4222");
        assert_eq!(config.user_and_password().unwrap(), Some(("ops".to_owned(), "s@cret".to_owned())));
        assert_eq!(config.redacted_url(), "nats://ops:***@nats-1:4222,nats://nats-2:4222");
        assert!(!format!("{config:?}").contains("cret"));

        let flags = NatsConfig { user: Some("me".into()), password: Some("pw".into()), ..config };
        assert_eq!(flags.user_and_password().unwrap(), Some(("me".to_owned(), "pw".to_owned())));
        assert!(!format!("{flags:?}").contains("pw\""));
        assert_eq!(NatsConfig::new("localhost:4222").user_and_password().unwrap(), None);
    }

    #[test]
    fn a_seed_file_may_hold_comments() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "# the client key\n\n  SUAFAKE  \n").unwrap();
        assert_eq!(read_seed(file.path()).unwrap(), "SUAFAKE");
        std::fs::write(file.path(), "# nothing\n").unwrap();
        assert!(matches!(read_seed(file.path()), Err(ConnectError::NoSeed { .. })));
        let gone = file.path().to_owned();
        drop(file);
        assert!(matches!(read_seed(&gone), Err(ConnectError::Read { .. })));
    }
}
