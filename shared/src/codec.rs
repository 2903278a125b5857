//! JSON in, JSON out: decoding requests, encoding messages.

use serde::{Serialize, de::DeserializeOwned};

use crate::error::ServiceError;

/// Decodes a JSON request body, naming the offending field in the error.
///
/// A body is exactly one JSON object (leading and trailing whitespace allowed):
/// a top-level array (which serde would otherwise take as a struct's fields in order),
/// a scalar, trailing bytes or a second document are refused, each with a message
/// that says so. Unknown fields are
/// ignored, so that older workers accept requests from newer clients.
///
/// Malformed JSON, missing fields, negative numbers where only non-negative ones
/// make sense: all become a [`ErrorCode::BadRequest`] error that says what is wrong,
/// for example `invalid request: weight: invalid value: integer `-5`, expected u64`.
///
/// [`ErrorCode::BadRequest`]: crate::ErrorCode::BadRequest
pub fn decode_request<T: DeserializeOwned>(payload: &[u8]) -> Result<T, ServiceError> {
    // serde takes an array for a struct's fields in order; anything else that is not an
    // object (a string, a number, nothing at all) serde refuses with a message of its own.
    if payload.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ServiceError::bad_request("invalid request: the body is an array, expected a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(payload);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        // `.` is the whole document, `?` a place serde could not name (malformed JSON).
        if path == "." || path == "?" {
            ServiceError::bad_request(format!("invalid request: {inner}"))
        } else {
            ServiceError::bad_request(format!("invalid request: {path}: {inner}"))
        }
    })?;
    // Only whitespace may follow the object: not `xyz`, not a second document.
    deserializer.end().map_err(|error| {
        ServiceError::bad_request(format!("invalid request: more after the JSON object ({error}), expected one object"))
    })?;
    Ok(value)
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
    fn body_is_exactly_one_object() {
        let refused = |body: &str| decode_request::<Specification>(body.as_bytes()).unwrap_err();
        for (body, says) in [
            (r#"{"capacity": 3, "max_weight": 55000} xyz"#, "more after the JSON object"),
            (r#"{"capacity":3,"max_weight":1}{"capacity":3,"max_weight":1}"#, "more after the JSON object"),
            ("[3,55000]", "the body is an array, expected a JSON object"),
            ("  [3,55000]", "the body is an array"),
            ("3", "invalid type: integer `3`, expected struct Specification"),
            ("\"x\"", "invalid type: string \"x\", expected struct Specification"),
            ("", "EOF while parsing a value"),
            (" \n", "EOF while parsing a value"),
        ] {
            let error = refused(body);
            assert_eq!(error.code, ErrorCode::BadRequest);
            assert!(error.message.contains(says), "{body:?}: {error}");
        }
        let spec: Specification = decode_request(b" {\"capacity\":3,\"max_weight\":1,\"unknown\":[1]}\n").unwrap();
        assert_eq!(
            spec,
            Specification { capacity: 3, max_weight: 1, sequence: None },
            "whitespace and unknown fields are fine"
        );
    }

    #[test]
    fn negative_weight_names_the_field() {
        let error =
            decode_request::<NewConsignment>(br#"{"description":"d","weight":-5,"containers":[]}"#).unwrap_err();
        assert!(error.message.starts_with("invalid request: weight: invalid value: integer `-5`"), "{error}");
    }
}
