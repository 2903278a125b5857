//! Typed request-reply against shippy endpoints, used by workers and the CLI alike.

use std::time::Duration;

use async_nats::{Client, HeaderMap, Message, RequestErrorKind};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::{ERROR_CODE_HEADER, ERROR_HEADER, ErrorCode, ErrorReply, ServiceError};

/// Why a request got no usable reply.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Nobody subscribes to the subject: NATS says so at once.
    #[error("no service is listening on {subject}")]
    NoResponders { subject: String },
    /// A responder exists but did not answer in time.
    #[error("{subject} did not answer within {timeout:?}")]
    TimedOut { subject: String, timeout: Duration },
    /// The service answered with an error reply.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The request could not be sent (connection closed, payload over the server's limit, ...).
    #[error("request to {subject} failed: {source}")]
    Transport {
        subject: String,
        #[source]
        source: async_nats::RequestError,
    },
    /// The server refused what the request needs (publishing to the subject, or
    /// subscribing to the reply inbox) to the login in use: no reply will come.
    #[error("permission denied: {action} {subject} ({login})")]
    Denied {
        /// `publish to` or `subscribe to`.
        action: String,
        subject: String,
        /// Who the connection is logged in as, such as `logged in as monitor`.
        login: String,
    },
    /// The reply was not the JSON expected.
    #[error("unexpected reply from {subject}: {source}")]
    InvalidReply {
        subject: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Sends `payload` to `subject` and decodes the reply as `T`, or as the error
/// reply if the service sent one.
pub async fn request<T: DeserializeOwned>(
    client: &Client,
    subject: &str,
    payload: Bytes,
    timeout: Duration,
) -> Result<T, RequestError> {
    request_with_headers(client, subject, None, payload, timeout).await
}

/// [`request`], carrying `headers` (such as `Nats-Msg-Id`) if given.
pub async fn request_with_headers<T: DeserializeOwned>(
    client: &Client,
    subject: &str,
    headers: Option<HeaderMap>,
    payload: Bytes,
    timeout: Duration,
) -> Result<T, RequestError> {
    let span = crate::telemetry::client_span(subject);
    let mut headers = headers;
    span.inject(&mut headers);
    let mut request = async_nats::Request::new().payload(payload).timeout(Some(timeout));
    if let Some(headers) = headers {
        request = request.headers(headers);
    }
    let started = std::time::Instant::now();
    let result = span
        .run(async {
            let reply = client
                .send_request(subject.to_owned(), request)
                .await
                .map_err(|source| RequestError::from_send(subject, timeout, source))?;
            decode_reply(subject, &reply)
        })
        .await;
    let outcome = match &result {
        Err(RequestError::TimedOut { .. }) => crate::meter::Outcome::TimedOut,
        Err(RequestError::NoResponders { .. }) => crate::meter::Outcome::NoResponders,
        _ => crate::meter::Outcome::Answered,
    };
    crate::meter::client_request(subject, started.elapsed(), outcome);
    if let Err(error) = &result {
        span.record_error(&error.kind());
    }
    result
}

/// The first wait before a retry; each next one doubles, up to [`LONGEST_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two retries.
pub const LONGEST_BACKOFF: Duration = Duration::from_secs(2);

/// The wait before retry `retry` (0 for the first): [`FIRST_BACKOFF`] doubling up
/// to [`LONGEST_BACKOFF`], each wait 50–100 % of that (its first half fixed, the
/// second random), so that clients failed by the same fault spread out.
pub fn backoff(retry: u32) -> Duration {
    let full = FIRST_BACKOFF.saturating_mul(1 << retry.min(16)).min(LONGEST_BACKOFF);
    full / 2 + (full / 2).mul_f64(fastrand::f64())
}

impl RequestError {
    /// The failure's kind, short enough for a table and stable enough to count:
    /// the code and the first clause of an error reply (up to its first `:` or `;`,
    /// before the ids, keys and figures of the details), else the variant.
    pub fn kind(&self) -> String {
        match self {
            Self::Service(error) => {
                let message = error.message.split([':', ';']).next().unwrap_or_default();
                format!("{} {message}", error.code)
            }
            Self::TimedOut { .. } => "timeout".to_owned(),
            Self::NoResponders { .. } => "no responders".to_owned(),
            Self::Transport { source, .. } => format!("transport: {source}"),
            Self::InvalidReply { .. } => "invalid reply".to_owned(),
            Self::Denied { action, subject, .. } => format!("permission denied: {action} {subject}"),
        }
    }

    /// Whether the same request may pass if sent again: nothing answered, or the
    /// service said it could not finish for now (500, 503, 504). A create repeated
    /// with the same `Nats-Msg-Id` is safe to send again whatever the error.
    pub fn is_passing(&self) -> bool {
        match self {
            Self::NoResponders { .. } | Self::TimedOut { .. } | Self::Transport { .. } => true,
            Self::Service(error) => {
                matches!(error.code, ErrorCode::Internal | ErrorCode::Unavailable | ErrorCode::Timeout)
            }
            Self::InvalidReply { .. } | Self::Denied { .. } => false,
        }
    }

    /// Why a request to `subject`, waiting `timeout` for its reply, got none.
    pub fn from_send(subject: &str, timeout: Duration, source: async_nats::RequestError) -> Self {
        match source.kind() {
            RequestErrorKind::NoResponders => Self::NoResponders { subject: subject.to_owned() },
            RequestErrorKind::TimedOut => Self::TimedOut { subject: subject.to_owned(), timeout },
            _ => Self::Transport { subject: subject.to_owned(), source },
        }
    }
}

/// Decodes a reply message: an error reply (flagged by the ADR-32 headers) becomes
/// [`RequestError::Service`], anything else is parsed as `T`.
pub fn decode_reply<T: DeserializeOwned>(subject: &str, reply: &Message) -> Result<T, RequestError> {
    if let Some(error) = service_error(reply) {
        return Err(RequestError::Service(error));
    }
    serde_json::from_slice(&reply.payload)
        .map_err(|source| RequestError::InvalidReply { subject: subject.to_owned(), source })
}

fn service_error(reply: &Message) -> Option<ServiceError> {
    let headers = reply.headers.as_ref()?;
    let code = headers.get(ERROR_CODE_HEADER)?;
    // Prefer the JSON body; fall back to the headers for services that only send those.
    if let Ok(ErrorReply { error }) = serde_json::from_slice(&reply.payload) {
        return Some(error);
    }
    let code = code
        .as_str()
        .parse::<u16>()
        .ok()
        .and_then(|code| ErrorCode::try_from(code).ok())
        .unwrap_or(ErrorCode::Internal);
    let message = headers.get(ERROR_HEADER).map_or("unknown error", |value| value.as_str());
    Some(ServiceError::new(code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_each_wait_half_to_all_of_it() {
        for retry in 0..20 {
            let full = FIRST_BACKOFF.saturating_mul(1 << retry.min(16)).min(LONGEST_BACKOFF);
            for _ in 0..100 {
                let wait = backoff(retry);
                assert!(wait >= full / 2 && wait <= full, "retry {retry}: {wait:?} outside {full:?}/2..={full:?}");
            }
        }
        assert!(backoff(0) <= FIRST_BACKOFF && backoff(0) >= FIRST_BACKOFF / 2);
        assert_eq!(FIRST_BACKOFF.saturating_mul(1 << 5).min(LONGEST_BACKOFF), LONGEST_BACKOFF);
    }

    #[test]
    fn a_kind_is_the_first_clause_of_an_error_reply() {
        let service = |code, message: &str| RequestError::Service(ServiceError::new(code, message));
        let unfit = "no vessel available for 3 containers weighing 55000 kg: the most room left is on vessel002: \
                     2 containers and 40000 kg; add a vessel with `shippy vessel add`";
        assert_eq!(
            service(ErrorCode::NotFound, unfit).kind(),
            "404 no vessel available for 3 containers weighing 55000 kg"
        );
        assert_eq!(service(ErrorCode::Unavailable, "busy; try again").kind(), "503 busy");
        assert_eq!(service(ErrorCode::Conflict, "taken").kind(), "409 taken");
        assert_eq!(RequestError::NoResponders { subject: "x".into() }.kind(), "no responders");
        assert_eq!(RequestError::TimedOut { subject: "x".into(), timeout: Duration::from_secs(1) }.kind(), "timeout");
    }
}
