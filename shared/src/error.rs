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
/// The longest [`ERROR_HEADER`] value sent, in bytes; the JSON body keeps the whole message.
pub const MAX_HEADER_MESSAGE_BYTES: usize = 256;

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
    /// Every code, in numeric order.
    pub const ALL: [Self; 7] = [
        Self::BadRequest,
        Self::NotFound,
        Self::Conflict,
        Self::PayloadTooLarge,
        Self::Internal,
        Self::Unavailable,
        Self::Timeout,
    ];

    /// Whether the fault is the service's (500 and up), not the request's.
    pub const fn is_server_error(self) -> bool {
        self.as_u16() >= 500
    }

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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[error("{message} (code {code})")]
pub struct ServiceError {
    /// The HTTP-like status code (400, 404, 409, 413, 500, 503, 504).
    #[cfg_attr(feature = "openapi", schema(value_type = u16))]
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

    /// The JSON body of the error reply: the whole message, JSON-escaped. Encoded
    /// here rather than by [`crate::codec`], which builds its errors from this type.
    ///
    /// # Panics
    /// Never: an error reply always serializes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&ErrorReply { error: self.clone() }).expect("an error reply always serializes")
    }

    /// The message as a NATS header value: see [`header_safe`].
    pub fn header_message(&self) -> String {
        header_safe(&self.message)
    }
}

/// `text` as one printable ASCII line of at most [`MAX_HEADER_MESSAGE_BYTES`] bytes,
/// fit for a NATS header value whatever `text` holds.
///
/// Messages quote requests (a bad key, an id), so they may hold anything: a CR or LF
/// in a header value is refused by async-nats with a panic, and other control or
/// non-ASCII characters are not portable across clients. Each such character becomes
/// its Rust escape (`\n`, `\u{7f}`, `\u{e9}`), so the line still says what was sent;
/// past the limit the line is cut and ends in `...`. Leading and trailing blanks go.
pub fn header_safe(text: &str) -> String {
    const ELLIPSIS: &str = "...";
    let mut line = String::with_capacity(text.len().min(MAX_HEADER_MESSAGE_BYTES));
    // The length of `line` at the last whole character that leaves room for the ellipsis.
    let mut fits = 0;
    for c in text.trim().chars() {
        if c == ' ' || c.is_ascii_graphic() {
            line.push(c);
        } else {
            line.extend(c.escape_default());
        }
        if line.len() <= MAX_HEADER_MESSAGE_BYTES - ELLIPSIS.len() {
            fits = line.len();
        } else if line.len() > MAX_HEADER_MESSAGE_BYTES {
            // Cut after a whole character, so that no escape is left half-written.
            line.truncate(fits);
            line.push_str(ELLIPSIS);
            break;
        }
    }
    line
}

/// The JSON body of an error reply: `{"error":{"code":..,"message":..}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

    /// What a NATS header value may hold: one line of printable ASCII.
    fn is_header_safe(value: &str) -> bool {
        value.len() <= MAX_HEADER_MESSAGE_BYTES && value.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
    }

    #[test]
    fn header_message_is_one_printable_line_and_the_body_keeps_everything() {
        let message = "invalid request: a\nb\r\0\u{7f}: caf\u{e9} \u{1f6a2}";
        let error = ServiceError::bad_request(message);
        let header = error.header_message();
        assert!(is_header_safe(&header), "{header:?}");
        assert_eq!(header, r"invalid request: a\nb\r\u{0}\u{7f}: caf\u{e9} \u{1f6a2}");
        let body: ErrorReply = serde_json::from_slice(&error.to_json()).unwrap();
        assert_eq!(body.error.message, message);
    }

    #[test]
    fn long_header_message_is_cut_on_a_character_and_marked() {
        for filler in ["x", "\u{e9}", "\0", "\u{1f6a2}"] {
            let header = header_safe(&filler.repeat(1_000));
            assert!(is_header_safe(&header), "{header:?}");
            assert!(header.ends_with("..."), "{header:?}");
            assert!(header.len() > MAX_HEADER_MESSAGE_BYTES - 16, "{}", header.len());
            // Only whole escapes: what is left before the ellipsis is a run of complete ones.
            let kept = header.trim_end_matches("...");
            let one = header_safe(filler);
            assert_eq!(kept, one.repeat(kept.len() / one.len()), "{header:?}");
        }
        assert_eq!(header_safe("  short  "), "short");
    }

    #[test]
    fn codes_round_trip() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::try_from(code.as_u16()), Ok(code));
        }
        assert_eq!(ErrorCode::try_from(418), Err(UnknownErrorCode(418)));
    }
}
