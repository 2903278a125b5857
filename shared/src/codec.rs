//! JSON in, JSON out: decoding requests, encoding messages.

use serde::{Serialize, de::DeserializeOwned};

use crate::error::ServiceError;

/// Why a JSON document is not the value wanted: where in the document, and what is wrong.
///
/// For a value of the wrong shape (a missing field, a wrong type, a number out of
/// range) the path names the field, as jq would, counting from 0:
/// `containers[1].user_id: missing field`, ``weight: invalid value: integer `-5`, expected u64``.
/// Malformed JSON keeps serde's line and column, after the field it broke in if any
/// (`description: EOF while parsing a value at line 1 column 16`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", path.as_ref().map(|path| format!("{path}: ")).unwrap_or_default())]
pub struct DecodeError {
    /// The field at fault, e.g. `containers[1].user_id`; `None` when the whole
    /// document is at fault or serde could not tell where.
    pub path: Option<String>,
    /// What is wrong there.
    pub reason: String,
}

impl From<serde_path_to_error::Error<serde_json::Error>> for DecodeError {
    fn from(error: serde_path_to_error::Error<serde_json::Error>) -> Self {
        use serde_json::error::Category;
        let path = error.path().to_string();
        let inner = error.into_inner();
        // `.` is the whole document, `?` a place serde could not name.
        let mut path = (path != "." && path != "?").then_some(path);
        let mut reason = inner.to_string();
        // A value of the wrong shape: the path names the place, so drop serde_json's
        // ` at line 1 column 30`. Malformed JSON keeps it: it says where the text broke.
        if inner.classify() == Category::Data && inner.line() != 0 {
            let position = format!(" at line {} column {}", inner.line(), inner.column());
            if reason.ends_with(&position) {
                reason.truncate(reason.len() - position.len());
            }
        }
        // serde names a missing field in the message and its container in the path:
        // put the field into the path, `containers[1].user_id: missing field`.
        if let Some(field) = reason.strip_prefix("missing field `").and_then(|rest| rest.strip_suffix('`')) {
            path = Some(match path {
                Some(container) => format!("{container}.{field}"),
                None => field.to_owned(),
            });
            "missing field".clone_into(&mut reason);
        }
        Self { path, reason }
    }
}

/// Decodes one JSON document (whitespace around it allowed) as `T`, naming the
/// field at fault in the error (see [`DecodeError`]).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer)?;
    deserializer.end().map_err(|error| DecodeError { path: None, reason: error.to_string() })?;
    Ok(value)
}

/// Converts a parsed JSON value into `T`, naming the field at fault in the error.
pub fn decode_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, DecodeError> {
    Ok(serde_path_to_error::deserialize(value)?)
}

/// Decodes a JSON request body, naming the offending field in the error.
///
/// A body is exactly one JSON object (leading and trailing whitespace allowed):
/// a top-level array (which serde would otherwise take as a struct's fields in order),
/// a scalar, trailing bytes or a second document are refused, each with a message
/// that says so. Unknown fields are
/// ignored, so that older workers accept requests from newer clients.
///
/// Malformed JSON, missing fields, negative numbers where only non-negative ones
/// make sense: all become a [`ErrorCode::BadRequest`] error that says what is wrong
/// and, for a value of the wrong shape, where ([`DecodeError`]), for example
/// ``invalid request: weight: invalid value: integer `-5`, expected u64`` or
/// `invalid request: containers[1].user_id: missing field`.
///
/// [`ErrorCode::BadRequest`]: crate::ErrorCode::BadRequest
pub fn decode_request<T: DeserializeOwned>(payload: &[u8]) -> Result<T, ServiceError> {
    // serde takes an array for a struct's fields in order; anything else that is not an
    // object (a string, a number, nothing at all) serde refuses with a message of its own.
    if payload.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ServiceError::bad_request("invalid request: the body is an array, expected a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(payload);
    let value = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|error| ServiceError::bad_request(format!("invalid request: {}", DecodeError::from(error))))?;
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
        assert_eq!(error.message, "invalid request: max_weight: missing field");
    }

    /// A consignment whose second container lacks `user_id`, and whose first has a
    /// number for `origin`.
    const TWO_CONTAINERS: &str = r#"{"description":"d","weight":5,"containers":[
        {"customer_id":"c","origin":"o","user_id":"u"},
        {"customer_id":"c","origin":"o"}]}"#;

    #[test]
    fn a_field_deep_in_the_request_is_named_by_its_path() {
        let error = decode_request::<NewConsignment>(TWO_CONTAINERS.as_bytes()).unwrap_err();
        assert_eq!(error.message, "invalid request: containers[1].user_id: missing field");
        let wrong_type = TWO_CONTAINERS.replacen(r#""origin":"o""#, r#""origin":7"#, 1);
        let error = decode_request::<NewConsignment>(wrong_type.as_bytes()).unwrap_err();
        assert_eq!(
            error.message,
            "invalid request: containers[0].origin: invalid type: integer `7`, expected a string"
        );
    }

    #[test]
    fn decode_and_decode_value_name_the_path_too() {
        let error = decode::<NewConsignment>(TWO_CONTAINERS.as_bytes()).unwrap_err();
        assert_eq!(error, DecodeError { path: Some("containers[1].user_id".into()), reason: "missing field".into() });
        assert_eq!(error.to_string(), "containers[1].user_id: missing field");
        let value: serde_json::Value = serde_json::from_str(TWO_CONTAINERS).unwrap();
        assert_eq!(decode_value::<NewConsignment>(value).unwrap_err(), error);
        let negative = serde_json::json!({"description": "d", "weight": -5, "containers": []});
        assert_eq!(
            decode_value::<NewConsignment>(negative).unwrap_err().to_string(),
            "weight: invalid value: integer `-5`, expected u64"
        );
        // Malformed JSON: the field it broke in, and the line and column.
        let error = decode::<NewConsignment>(br#"{"description": "d", "weight":"#).unwrap_err();
        assert_eq!(error.to_string(), "weight: EOF while parsing a value at line 1 column 30");
        let error = decode::<NewConsignment>(b"{not json").unwrap_err();
        assert_eq!(error.path, None);
        assert!(error.reason.starts_with("key must be a string at line 1"), "{error}");
        assert!(decode::<NewConsignment>(b"{} x").is_err(), "trailing bytes are refused");
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
        assert_eq!(error.message, "invalid request: weight: invalid value: integer `-5`, expected u64");
    }
}
