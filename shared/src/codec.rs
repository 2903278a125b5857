//! JSON in, JSON out: decoding requests, encoding messages.

use serde::{Serialize, de::DeserializeOwned};

use crate::error::ServiceError;

/// Decodes a JSON request body, naming the offending field in the error.
///
/// Malformed JSON, missing fields, negative numbers where only non-negative ones
/// make sense: all become a [`ErrorCode::BadRequest`] error that says what is wrong,
/// for example `invalid request: weight: invalid value: integer `-5`, expected u64`.
pub fn decode_request<T: DeserializeOwned>(payload: &[u8]) -> Result<T, ServiceError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(payload);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        // `.` is the whole document, `?` a place serde could not name (malformed JSON).
        if path == "." || path == "?" {
            ServiceError::bad_request(format!("invalid request: {inner}"))
        } else {
            ServiceError::bad_request(format!("invalid request: {path}: {inner}"))
        }
    })
}

/// Encodes a message body (a request or a reply) as JSON.
///
/// # Panics
/// Never for the types in [`crate::model`] and [`crate::error`], which always serialize.
pub fn encode(message: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(message).expect("message types always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        error::ErrorCode,
        model::{NewConsignment, Specification},
    };

    #[test]
    fn malformed_json_is_a_bad_request() {
        let error = decode_request::<Specification>(b"{not json").unwrap_err();
        assert_eq!(error.code, ErrorCode::BadRequest);
        assert!(error.message.starts_with("invalid request: key must be a string"), "{error}");
    }

    #[test]
    fn missing_field_is_named() {
        let error = decode_request::<Specification>(br#"{"capacity": 3}"#).unwrap_err();
        assert_eq!(error.code, ErrorCode::BadRequest);
        assert!(error.message.contains("missing field `max_weight`"), "{error}");
    }

    #[test]
    fn negative_weight_names_the_field() {
        let error =
            decode_request::<NewConsignment>(br#"{"description":"d","weight":-5,"containers":[]}"#).unwrap_err();
        assert!(error.message.starts_with("invalid request: weight: invalid value: integer `-5`"), "{error}");
    }
}
