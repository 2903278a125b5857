//! Bearer tokens and per-token rate limits.
//!
//! The gateway never holds a token: it reads their SHA-256 hashes (hex, one a line,
//! as `shippy auth init` writes them: [`shared::api_token`]), hashes what a caller presents, and compares
//! the hashes in constant time. Tokens are not logged; a rejected request logs why,
//! never what was sent.

use std::{num::NonZeroU32, path::Path, sync::Arc};

use anyhow::{Context as _, bail};
use axum::{
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse as _, Response},
};
use governor::{Quota, RateLimiter, clock::Clock as _, clock::DefaultClock};
use subtle::ConstantTimeEq as _;

use crate::error::ApiError;

pub use shared::api_token::{TokenHash, hash};

/// The hashes of the tokens the gateway accepts.
#[derive(Clone, Default)]
pub struct Tokens {
    hashes: Vec<TokenHash>,
}

/// Shows how many tokens, not their hashes.
impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("count", &self.hashes.len()).finish()
    }
}

impl Tokens {
    /// The hashes in `text`: one hex SHA-256 a line; blank lines and `#` comments skipped.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut hashes = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut hash = [0; 32];
            if hex::decode_to_slice(line, &mut hash).is_err() {
                bail!("line {}: expected a SHA-256 hash in hex (64 characters)", number + 1);
            }
            hashes.push(hash);
        }
        Ok(Self { hashes })
    }

    /// The hashes in the file at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in the tokens file {}", path.display()))
    }

    /// Accepts tokens whose hashes are `hashes`.
    pub fn from_hashes(hashes: Vec<TokenHash>) -> Self {
        Self { hashes }
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The hash of `token`, if it is one of the tokens: compared with every hash,
    /// each in constant time.
    pub fn verify(&self, token: &str) -> Option<TokenHash> {
        let presented = hash(token);
        let found = self.hashes.iter().fold(subtle::Choice::from(0), |found, hash| found | hash.ct_eq(&presented));
        bool::from(found).then_some(presented)
    }
}

/// A rate limit per token: a steady rate, and a burst above it.
#[derive(Debug)]
pub struct RateLimits {
    limiter: governor::DefaultKeyedRateLimiter<TokenHash>,
}

impl RateLimits {
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        Self { limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)) }
    }

    /// Takes one request from `token`'s allowance, or says in how many whole
    /// seconds (at least one) it may try again.
    pub fn check(&self, token: &TokenHash) -> Result<(), u64> {
        self.limiter.check_key(token).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }
}

/// The tokens and their rate limits.
#[derive(Debug)]
pub struct Auth {
    tokens: Tokens,
    limits: RateLimits,
}

impl Auth {
    pub fn new(tokens: Tokens, limits: RateLimits) -> Self {
        Self { tokens, limits }
    }

    /// Lets the request through if it carries a valid token with allowance left.
    fn admit(&self, request: &Request) -> Result<(), ApiError> {
        if self.tokens.is_empty() {
            return Err(ApiError::Unauthorized("no API tokens are configured on this gateway"));
        }
        let token = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(ApiError::Unauthorized("missing Authorization: Bearer <token>"))?;
        let hash = self.tokens.verify(token).ok_or(ApiError::Unauthorized("invalid token"))?;
        self.limits.check(&hash).map_err(ApiError::TooManyRequests)
    }
}

/// The middleware in front of every `/v1` route: 401 without a valid token, 429
/// past its rate.
pub async fn require_token(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    match auth.admit(&request) {
        Ok(()) => next.run(request).await,
        Err(error) => {
            tracing::debug!(%error, path = request.uri().path(), "request refused");
            error.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_tokens_pass() {
        let text = format!("# comment\n\n{}\n", hex::encode(hash("s3cret")));
        let tokens = Tokens::parse(&text).unwrap();
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens.verify("s3cret"), Some(hash("s3cret")));
        assert_eq!(tokens.verify("s3cret "), None);
        assert_eq!(tokens.verify(""), None);
        assert!(!format!("{tokens:?}").contains(&hex::encode(hash("s3cret"))));
        let error = Tokens::parse("zz\n").unwrap_err().to_string();
        assert!(error.contains("line 1"), "{error}");
    }

    #[test]
    fn past_the_burst_a_token_waits_at_least_a_second() {
        let limits = RateLimits::new(NonZeroU32::new(1).unwrap(), NonZeroU32::new(2).unwrap());
        let token = hash("t");
        assert_eq!(limits.check(&token), Ok(()));
        assert_eq!(limits.check(&token), Ok(()));
        assert_eq!(limits.check(&token), Err(1));
        // Another token has its own allowance.
        assert_eq!(limits.check(&hash("u")), Ok(()));
    }
}
