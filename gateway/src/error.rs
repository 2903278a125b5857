//! Why a request failed, and how each failure reads over HTTP.
//!
//! Every error response has the services' error body, `{"error":{"code","message"}}`
//! ([`shared::error::ErrorReply`]), with the HTTP status as its code. A service's
//! error keeps its code and message; the gateway's own (401, 415, 429, ...) are
//! codes [`shared::ErrorCode`] has no name for, so [`ErrorBody`] holds a plain number.

use axum::{
    Json,
    extract::rejection::{BytesRejection, PathRejection, QueryRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use shared::{ServiceError, client::RequestError};

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: the HTTP status, and a message meant for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: u16,
    pub message: String,
}

impl ErrorBody {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { error: ErrorDetail { code: status.as_u16(), message: message.into() } }
    }
}

/// A request the gateway could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The service answered with an error: its status and message, as they are.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The request itself is wrong (a query parameter, a header).
    #[error("{0}")]
    BadRequest(String),
    /// No route has this path.
    #[error("no route {0}")]
    NoRoute(String),
    /// The route exists, but not for this method.
    #[error("method {0} not allowed here")]
    MethodNotAllowed(String),
    /// The body is not `application/json`.
    #[error("expected a body of Content-Type application/json")]
    UnsupportedMediaType,
    /// The body is larger than the gateway accepts.
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// No valid bearer token.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The token made too many requests; it may try again after this many seconds.
    #[error("too many requests: try again in {0} s")]
    TooManyRequests(u64),
    /// The gateway has no connection to NATS.
    #[error("NATS is not reachable from the gateway; try again later")]
    NatsUnavailable,
    /// No instance of the service runs.
    #[error("no service is listening on {0}; try again later")]
    NoResponders(String),
    /// The service did not answer in time.
    #[error("{0} did not answer in time")]
    Timeout(String),
    /// The gateway is not allowed to ask the service (a deployment error).
    #[error("the gateway may not ask {0}: check its NATS permissions")]
    Denied(String),
    /// The service's reply made no sense.
    #[error("unexpected reply from {0}")]
    BadReply(String),
    /// The request could not be sent.
    #[error("request to {0} failed")]
    Transport(String),
}

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> Self {
        match error {
            RequestError::Service(error) => Self::Service(error),
            RequestError::NoResponders { subject } => Self::NoResponders(subject),
            RequestError::TimedOut { subject, .. } => Self::Timeout(subject),
            RequestError::Denied { subject, .. } => Self::Denied(subject),
            RequestError::InvalidReply { subject, .. } => Self::BadReply(subject),
            RequestError::Transport { subject, .. } => Self::Transport(subject),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

impl ApiError {
    /// The body rejection as an error: too large (413), or unreadable (400).
    pub fn from_body(rejection: &BytesRejection, limit: usize) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::PayloadTooLarge(limit)
        } else {
            Self::BadRequest(rejection.body_text())
        }
    }

    /// The HTTP status it is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Service(error) => {
                StatusCode::from_u16(error.code.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NoRoute(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::NatsUnavailable | Self::NoResponders(_) | Self::Denied(_) | Self::Transport(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::BadReply(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Service(error) => error.message.clone(),
            other => other.to_string(),
        };
        let mut response = (status, Json(ErrorBody::new(status, message))).into_response();
        let headers = response.headers_mut();
        match self {
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::TooManyRequests(seconds) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            _ => {}
        }
        response
    }
}

/// Gives an error response made outside the handlers (a layer's 408 or 413, a
/// panic's 500) the error body too, when it has none: every error reads alike.
pub async fn json_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let message = status.canonical_reason().unwrap_or("error").to_lowercase();
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = serde_json::to_vec(&ErrorBody::new(status, message)).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(body))
}
