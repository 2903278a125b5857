//! The one way the CLI talks to the services: typed request-reply over one connection.
//!
//! Every command and the bench send through [`Services::request`], which wraps
//! [`shared::client::request`]; a header every request should carry is added here.
//!
//! The server reports a publish or subscribe it refuses on the connection, not to
//! the request, which would otherwise wait out its timeout: each request also
//! watches the connection's permission violations and fails at once with
//! [`RequestError::Denied`] when one concerns it. A login NATS refuses, or a TLS
//! handshake that fails, is reported with the setting to change ([`connect_failure`]).

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use async_nats::{ConnectErrorKind, Event, HeaderMap, ServerError};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use shared::{
    client::RequestError,
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

/// The first wait before a retry; each next one doubles, up to [`LONGEST_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two retries.
pub const LONGEST_BACKOFF: Duration = Duration::from_secs(2);

/// The wait before retry `retry` (0 for the first): exponential from
/// [`FIRST_BACKOFF`] to [`LONGEST_BACKOFF`], of which the first half is fixed and
/// the second random (jitter), so that clients failed by the same fault spread out.
pub fn backoff(retry: u32) -> Duration {
    let full = FIRST_BACKOFF.saturating_mul(1 << retry.min(16)).min(LONGEST_BACKOFF);
    full / 2 + (full / 2).mul_f64(fastrand::f64())
}

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
        let options = config.options(name, role).await?.connection_timeout(timeout).event_callback(move |event| {
            if let Event::ServerError(ServerError::Other(error)) = &event
                && let Some(denial) = Denial::parse(error)
            {
                // No receiver: no request is waiting to hear it.
                let _ = heard.send(denial);
            }
            async {}
        });
        let nats = options
            .connect(shared::nats::servers(&config.url))
            .await
            .map_err(|error| connect_failure(config, &error))?;
        let inbox_prefix = config.inbox_prefix.as_deref().unwrap_or(role.inbox_prefix).into();
        Ok(Self { nats, timeout, denials, login: login(config).into(), inbox_prefix })
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
            denial = denied => Err(RequestError::Denied {
                action: denial.action.to_owned(),
                subject: denial.subject,
                login: self.login.to_string(),
            }),
        }
    }

    /// Creates a consignment once under idempotency key `key`, sending it again
    /// with the same key, after a growing wait ([`backoff`]), while it fails for a
    /// passing reason and `retry` allows. The last retry goes out at the latest
    /// `retry.within` after the first send, and waits its timeout for the reply.
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
        loop {
            let send = shared::client::request_with_headers(
                &self.nats,
                consignment::CREATE,
                Some(headers.clone()),
                encode(new).into(),
                self.timeout,
            );
            let result = self.unless_denied(consignment::CREATE, send).await;
            let left = deadline.saturating_duration_since(Instant::now());
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

/// The role whose key `config` logs in with, told by its path as `shippy auth init`
/// writes it (`nats-auth/<role>/nkey`) or by its name (`<role>.nk`).
pub fn role_of(config: &NatsConfig) -> Option<Role> {
    let path = config.nkey.as_deref()?;
    let directory = path.parent().and_then(Path::file_name).and_then(|name| name.to_str());
    let stem = path.file_stem().and_then(|name| name.to_str());
    directory.and_then(roles::named).or_else(|| stem.and_then(roles::named))
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
        assert_eq!(login(&with("/home/me/mine.nk")), "logged in with the nkey in /home/me/mine.nk");
        assert_eq!(login(&with("nats-auth/monitor/nkey")), "logged in as monitor");
        assert_eq!(login(&NatsConfig::default()), "not logged in");
    }

    #[test]
    fn backoff_grows_with_jitter_to_its_cap() {
        for retry in 0..20 {
            let full = FIRST_BACKOFF.saturating_mul(1 << retry.min(16)).min(LONGEST_BACKOFF);
            for _ in 0..100 {
                let wait = backoff(retry);
                assert!(wait >= full / 2 && wait <= full, "retry {retry}: {wait:?} outside {full:?}/2..={full:?}");
            }
        }
        assert_eq!(FIRST_BACKOFF.saturating_mul(1 << 5).min(LONGEST_BACKOFF), LONGEST_BACKOFF);
    }
}
