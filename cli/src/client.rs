//! The one way the CLI talks to the services: typed request-reply over one connection.
//!
//! Every command and the bench send through [`Services::request`], which wraps
//! [`shared::client::request`], or, to create, through [`Services::create`], which
//! sends the `Nats-Msg-Id` header (the idempotency key) and retries within a deadline.
//!
//! The server reports a publish or subscribe it refuses on the connection, not to
//! the request, which would otherwise wait out its timeout: each request also
//! watches the connection's permission violations and fails at once with
//! [`RequestError::Denied`] when one concerns it. A login NATS refuses, or a TLS
//! handshake that fails, is reported with the setting to change ([`connect_failure`]).

use std::{
    path::Path,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use async_nats::{ConnectErrorKind, Event, HeaderMap, ServerError};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use shared::{
    client::{RequestError, backoff},
    codec::encode,
    model::{CreatedConsignment, NewConsignment},
    nats::NatsConfig,
    roles::{self, Role},
    subjects::consignment,
};
use tokio::sync::broadcast;

/// Permission violations a connection has heard of and not yet matched, at most.
const DENIALS_KEPT: usize = 64;

/// A connection to NATS and the timeout each reply is given.
#[derive(Debug, Clone)]
pub struct Services {
    nats: async_nats::Client,
    timeout: Duration,
    /// The permission violations the server reports on this connection.
    denials: broadcast::Sender<Denial>,
    /// Who the connection is logged in as, for messages: `logged in as monitor`.
    login: Arc<str>,
    /// What every reply inbox of this connection starts with.
    inbox_prefix: Arc<str>,
    /// The server's refusal of the subscription to this connection's reply inbox,
    /// once it has reported one: it is reported once a connection, and no reply
    /// reaches the connection after it, so every later request fails with it at once.
    inbox_denied: Arc<OnceLock<Denial>>,
}

/// A publish or subscribe the server refused: `Permissions Violation for Publish to "vessel.list"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// `publish to` or `subscribe to`.
    pub action: &'static str,
    pub subject: String,
}

impl Denial {
    /// The denial a server error reports, if it is a permissions violation.
    pub fn parse(error: &str) -> Option<Self> {
        let (_, what) = error.split_once("Permissions Violation for ")?;
        let action = if what.starts_with("Publish") {
            "publish to"
        } else if what.starts_with("Subscription") {
            "subscribe to"
        } else {
            return None;
        };
        let subject = what.split('"').nth(1)?.to_owned();
        Some(Self { action, subject })
    }
}

/// Retries of a create: how long, how many, and the waits between them.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// No retry is sent later than this after the first send.
    pub within: Duration,
    /// At most this many retries; `None`: as many as fit in `within`.
    pub most: Option<u32>,
}

/// How long a create is retried while no service listens on its subject, at most,
/// whatever `--retry-for` says: long enough to cover a worker restarting, short
/// enough that a create with no worker running fails soon. Timeouts and error
/// replies that may pass (500, 503, 504) are retried for all of `--retry-for`.
pub const NO_RESPONDERS_FOR: Duration = Duration::from_secs(5);

/// Whether this process has said that it retries a create nobody listens to: once
/// a process, not once a consignment.
static SAID_NO_RESPONDERS: std::sync::Once = std::sync::Once::new();

impl Services {
    /// Connects as the role of the key given (the client's by default), failing at
    /// once if NATS is not there or refuses the login.
    pub async fn connect(config: &NatsConfig, timeout: Duration) -> anyhow::Result<Self> {
        Self::connect_named(config, "shippy-cli", timeout).await
    }

    /// [`Services::connect`] under connection name `name`.
    pub async fn connect_named(config: &NatsConfig, name: &str, timeout: Duration) -> anyhow::Result<Self> {
        let role = role_of(config).unwrap_or(roles::CLIENT);
        let (denials, _) = broadcast::channel(DENIALS_KEPT);
        let heard = denials.clone();
        let inbox_prefix: Arc<str> = config.inbox_prefix.as_deref().unwrap_or(role.inbox_prefix).into();
        let inbox_denied = Arc::new(OnceLock::new());
        let (inbox, denied) = (Arc::clone(&inbox_prefix), Arc::clone(&inbox_denied));
        let options = config.options(name, role).await?.connection_timeout(timeout).event_callback(move |event| {
            if let Event::ServerError(ServerError::Other(error)) = &event
                && let Some(denial) = Denial::parse(error)
            {
                if denial.action == "subscribe to" && denial.subject.starts_with(&*inbox) {
                    let _ = denied.set(denial.clone());
                }
                // No receiver: no request is waiting to hear it.
                let _ = heard.send(denial);
            }
            async {}
        });
        let nats = options
            .connect(shared::nats::servers(&config.url))
            .await
            .map_err(|error| connect_failure(config, &error))?;
        Ok(Self { nats, timeout, denials, login: login(config).into(), inbox_prefix, inbox_denied })
    }

    /// Sends `payload` to `subject` and decodes the reply as `T` (or the error reply).
    pub async fn request<T: DeserializeOwned>(&self, subject: &str, payload: Bytes) -> Result<T, RequestError> {
        self.unless_denied(subject, shared::client::request(&self.nats, subject, payload, self.timeout)).await
    }

    /// Runs `request` to `subject`, unless the server first refuses to let it out
    /// (a publish to `subject`) or its reply in (a subscription to our inboxes).
    async fn unless_denied<T>(
        &self,
        subject: &str,
        request: impl Future<Output = Result<T, RequestError>>,
    ) -> Result<T, RequestError> {
        // Listening before `request` is first polled, so before anything is sent.
        let mut denials = self.denials.subscribe();
        // Its reply inbox refused earlier: no reply can come, and the server does not say so again.
        if let Some(denial) = self.inbox_denied.get() {
            return Err(self.denied(denial.clone()));
        }
        let denied = async {
            loop {
                match denials.recv().await {
                    Ok(denial)
                        if (denial.action == "publish to" && denial.subject == subject)
                            || (denial.action == "subscribe to" && denial.subject.starts_with(&*self.inbox_prefix)) =>
                    {
                        return denial;
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    // The connection is gone; the request reports that.
                    Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
                }
            }
        };
        tokio::select! {
            biased;
            result = request => result,
            denial = denied => Err(self.denied(denial)),
        }
    }

    fn denied(&self, denial: Denial) -> RequestError {
        RequestError::Denied {
            action: denial.action.to_owned(),
            subject: denial.subject,
            login: self.login.to_string(),
        }
    }

    /// Creates a consignment once under idempotency key `key`, sending it again
    /// with the same key, after a growing wait ([`backoff`]), while it fails for a
    /// passing reason and `retry` allows.
    ///
    /// The deadline is `retry.within` after the call (just before the first send).
    /// No send goes out past it, and none after a failure that came back past it,
    /// so a send going out less than one timeout before the deadline may be the
    /// last. Unless `retry.most` or a failure that does not pass ends it sooner, the
    /// sends therefore span at least `retry.within` less one timeout (and less the
    /// first send's wait for its reply subscription), and the create fails no
    /// sooner than the deadline and no later than one timeout after it. While no
    /// service listens
    /// ([`RequestError::NoResponders`]), it is retried for at most
    /// [`NO_RESPONDERS_FOR`] in a row, and the first such retry of the process says
    /// so on stderr.
    pub async fn create(
        &self,
        new: &NewConsignment,
        key: &str,
        retry: Retry,
    ) -> Result<CreatedConsignment, RequestError> {
        let mut headers = HeaderMap::new();
        headers.insert(consignment::IDEMPOTENCY_HEADER, key);
        let deadline = Instant::now() + retry.within;
        let mut retries = 0;
        // When the current run of no-responders failures began.
        let mut nobody_since: Option<Instant> = None;
        loop {
            let send = shared::client::request_with_headers(
                &self.nats,
                consignment::CREATE,
                Some(headers.clone()),
                encode(new).into(),
                self.timeout,
            );
            let result = self.unless_denied(consignment::CREATE, send).await;
            let now = Instant::now();
            let mut left = deadline.saturating_duration_since(now);
            if let Err(RequestError::NoResponders { subject }) = &result {
                let since = *nobody_since.get_or_insert(now);
                let nobody_left = (since + NO_RESPONDERS_FOR).saturating_duration_since(now);
                if !left.is_zero() && !nobody_left.is_zero() && retry.most.is_none_or(|most| retries < most) {
                    SAID_NO_RESPONDERS.call_once(|| {
                        eprintln!(
                            "shippy: {subject}: no service is listening; retrying for up to {} (--retry-for)",
                            humantime::format_duration(retry.within.min(NO_RESPONDERS_FOR))
                        );
                    });
                }
                left = left.min(nobody_left);
            } else {
                nobody_since = None;
            }
            match result {
                Err(error) if error.is_passing() && !left.is_zero() && retry.most.is_none_or(|most| retries < most) => {
                    tokio::time::sleep(backoff(retries).min(left)).await;
                    retries += 1;
                }
                other => return other,
            }
        }
    }

    /// The underlying connection.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// How long each request waits for its reply.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// The role whose key `config` logs in with, told by its file name (`<role>.nk`),
/// or, for a file named `nkey`, by its folder as `shippy auth init` writes it
/// (`nats-auth/<role>/nkey`).
pub fn role_of(config: &NatsConfig) -> Option<Role> {
    let path = config.nkey.as_deref()?;
    let name = path.file_name().and_then(|name| name.to_str())?;
    if name == "nkey" {
        let directory = path.parent().and_then(Path::file_name).and_then(|name| name.to_str())?;
        roles::named(directory)
    } else {
        name.strip_suffix(".nk").and_then(roles::named)
    }
}

/// Who `config` logs in as, for messages: `logged in as monitor`.
fn login(config: &NatsConfig) -> String {
    if let Some(role) = role_of(config) {
        format!("logged in as {}", role.name)
    } else if let Some(path) = &config.nkey {
        format!("logged in with the nkey in {}", path.display())
    } else if let Some(path) = &config.creds {
        format!("logged in with {}", path.display())
    } else if let Some(user) = &config.user {
        format!("logged in as user {user}")
    } else {
        "not logged in".to_owned()
    }
}

/// Why connecting failed, naming the setting to change: a login NATS refused
/// (`NATS_NKEY`), a server certificate not trusted (`NATS_CA`), or NATS not reached.
pub fn connect_failure(config: &NatsConfig, error: &async_nats::ConnectError) -> anyhow::Error {
    let url = config.redacted_url();
    // async-nats words a failed handshake (`invalid peer certificate: UnknownIssuer`)
    // as an I/O error, so the text tells TLS apart too.
    let text = error.to_string();
    let tls = error.kind() == ConnectErrorKind::Tls
        || ["certificate", "tls", "handshake"].iter().any(|word| text.to_lowercase().contains(word));
    match error.kind() {
        ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
            let hint = if let Some(path) = &config.nkey {
                format!(
                    "NATS at {url} does not accept the key in {} (a key of another deployment, or one \
                     replaced by `shippy auth init --rotate`): set NATS_NKEY to a current seed file, such as \
                     nats-auth/client/nkey",
                    path.display()
                )
            } else if config.creds.is_some() || config.user.is_some() || config.url.contains('@') {
                format!(
                    "NATS at {url} refused the login ({}): check NATS_CREDS or NATS_USER/NATS_PASSWORD",
                    login(config)
                )
            } else {
                format!(
                    "NATS at {url} wants a login: set NATS_NKEY to your role's seed file, such as \
                     nats-auth/client/nkey (`shippy auth init` makes them)"
                )
            };
            anyhow::anyhow!("{hint} ({text})")
        }
        _ if tls => match &config.ca {
            None => anyhow::anyhow!(
                "TLS with NATS at {url} failed ({text}): set NATS_CA to the CA certificate that signed the \
                 server's, such as tls/ca.pem"
            ),
            Some(ca) => anyhow::anyhow!(
                "TLS with NATS at {url} failed ({text}): is NATS_CA ({}) the CA that signed the server's \
                 certificate, and does the server speak TLS?",
                ca.display()
            ),
        },
        _ => anyhow::anyhow!("cannot reach NATS at {url}: {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_violations_are_read_from_the_server_error() {
        assert_eq!(
            Denial::parse(r#"Permissions Violation for Publish to "vessel.list""#),
            Some(Denial { action: "publish to", subject: "vessel.list".into() })
        );
        assert_eq!(
            Denial::parse(
                r#"nats: permissions violation: Permissions Violation for Subscription to "_INBOX_client.x.*""#
            ),
            Some(Denial { action: "subscribe to", subject: "_INBOX_client.x.*".into() })
        );
        assert_eq!(Denial::parse("Maximum Payload Violation"), None);
    }

    #[test]
    fn the_role_is_told_by_the_key_file() {
        let with = |path: &str| NatsConfig { nkey: Some(path.into()), ..NatsConfig::default() };
        assert_eq!(role_of(&with("nats-auth/monitor/nkey")), Some(roles::MONITOR));
        assert_eq!(role_of(&with("/home/me/admin.nk")), Some(roles::ADMIN));
        assert_eq!(role_of(&with("/home/me/mine.nk")), None);
        // The file's name first: the folder tells only for a file named `nkey`.
        assert_eq!(role_of(&with("/home/me/keys/admin/client.nk")), Some(roles::CLIENT));
        assert_eq!(role_of(&with("/home/me/keys/admin/mine.nk")), None);
        assert_eq!(role_of(&with("/home/me/admin/seed")), None);
        assert_eq!(role_of(&with("admin/nkey")), Some(roles::ADMIN));
        assert_eq!(login(&with("/home/me/mine.nk")), "logged in with the nkey in /home/me/mine.nk");
        assert_eq!(login(&with("nats-auth/monitor/nkey")), "logged in as monitor");
        assert_eq!(login(&NatsConfig::default()), "not logged in");
    }
}
