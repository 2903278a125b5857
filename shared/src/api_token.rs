//! The gateway's API tokens as files: `shippy auth init` makes them, the gateway
//! reads their hashes.
//!
//! ```text
//! DIR/api/token              the token in plain text, mode 0600: for the operator
//! DIR/gateway/api-tokens     its SHA-256 hash in hex, one a line: GATEWAY_TOKENS_FILE
//! ```
//!
//! The gateway's directory (mounted into its container with its nkey) holds only
//! hashes: a token never rests where the gateway runs.

use sha2::{Digest as _, Sha256};

/// The operator's directory under `shippy auth init`'s output, and its token file.
pub const OPERATOR_DIR: &str = "api";
pub const TOKEN_FILE: &str = "token";
/// The file of hashes in the gateway role's directory.
pub const HASHES_FILE: &str = "api-tokens";

/// A token's SHA-256 hash.
pub type TokenHash = [u8; 32];

/// The SHA-256 hash of `token`.
pub fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// The line a hashes file holds for `token`: its hash in lowercase hex.
pub fn hash_line(token: &str) -> String {
    hex::encode(hash(token))
}

/// A new token: 244 random bits from the operating system, behind a `shippy_`
/// prefix that says what it is.
pub fn generate() -> String {
    format!("shippy_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_lines_are_sha256_hex() {
        assert_eq!(hash_line("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let (one, two) = (generate(), generate());
        assert_ne!(one, two);
        assert!(one.starts_with("shippy_") && one.len() == 7 + 64, "{one}");
    }
}
