//! The error reply: what every endpoint answers when it cannot serve a request.
//!
//! An error travels two ways at once, so that every kind of client can read it:
//!
//! * as the ADR-32 headers `Nats-Service-Error` and `Nats-Service-Error-Code`,
//!   which NATS tooling (`nats micro`, service clients) understands;
//! * as a JSON body `{"error":{"code":404,"message":"no vessel available"}}`,
//!   which a plain `nats req` user reads.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Header naming the error message, as ADR-32 defines it.
pub const ERROR_HEADER: &str = async_nats::service::NATS_SERVICE_ERROR;
/// Header carrying the numeric error code, as ADR-32 defines it.
pub const ERROR_CODE_HEADER: &str = async_nats::service::NATS_SERVICE_ERROR_CODE;

/// Error codes, borrowed from HTTP so they read at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "u16", try_from = "u16")]
pub enum ErrorCode {
    /// The request is malformed or breaks a rule.
    BadRequest,
    /// Nothing matches the request (for example, no vessel fits).
    NotFound,
    /// The thing to create exists already.
    Conflict,
    /// The request is larger than the endpoint accepts.
    PayloadTooLarge,
    /// The worker failed unexpectedly.
    Internal,
    /// A service this one depends on has no running instance.
    Unavailable,
    /// A service this one depends on did not answer in time.
    Timeout,
}

impl ErrorCode {
    pub const fn as_u16(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::Internal => 500,
            Self::Unavailable => 503,
            Self::Timeout => 504,
        }
    }
}

impl From<ErrorCode> for u16 {
    fn from(code: ErrorCode) -> Self {
        code.as_u16()
    }
}

/// A code outside [`ErrorCode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code {0}")]
pub struct UnknownErrorCode(pub u16);

impl TryFrom<u16> for ErrorCode {
    type Error = UnknownErrorCode;

    fn try_from(code: u16) -> Result<Self, Self::Error> {
        Ok(match code {
            400 => Self::BadRequest,
            404 => Self::NotFound,
            409 => Self::Conflict,
            413 => Self::PayloadTooLarge,
            500 => Self::Internal,
            503 => Self::Unavailable,
            504 => Self::Timeout,
            other => return Err(UnknownErrorCode(other)),
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u16())
    }
}

/// Why a request failed: a code and a message meant for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct ServiceError {
    pub code: ErrorCode,
    pub message: String,
}

impl ServiceError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// The JSON body of the error reply.
    pub fn to_json(&self) -> Vec<u8> {
        crate::codec::encode(&ErrorReply { error: self.clone() })
    }
}

/// The JSON body of an error reply: `{"error":{"code":..,"message":..}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub error: ServiceError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reply_is_plain_json() {
        let error = ServiceError::not_found("no vessel available");
        let json: serde_json::Value = serde_json::from_slice(&error.to_json()).unwrap();
        assert_eq!(json, serde_json::json!({"error": {"code": 404, "message": "no vessel available"}}));
    }

    #[test]
    fn codes_round_trip() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::PayloadTooLarge,
            ErrorCode::Internal,
            ErrorCode::Unavailable,
            ErrorCode::Timeout,
        ] {
            assert_eq!(ErrorCode::try_from(code.as_u16()), Ok(code));
        }
        assert_eq!(ErrorCode::try_from(418), Err(UnknownErrorCode(418)));
    }
}
