//! Reading consignments to create: one JSON object, a JSON array of them, or JSON Lines.

use std::{fmt, io::Read as _, path::Path};

use anyhow::Context as _;
use shared::model::NewConsignment;

/// Where an item came from, to name it when it is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The whole input was one object.
    Single,
    /// Item `n` (from 1) of a JSON array.
    Item(usize),
    /// Line `n` (from 1) of JSON Lines.
    Line(usize),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Single => f.write_str("the consignment"),
            Self::Item(n) => write!(f, "item {n}"),
            Self::Line(n) => write!(f, "line {n}"),
        }
    }
}

/// One consignment read, or why it could not be.
pub type Parsed = (Origin, Result<NewConsignment, String>);

/// Reads `file` (`-` for stdin) into the consignments it holds.
///
/// A file that is not JSON at all, or holds nothing, is an error; a bad item of
/// an array or a bad line of JSON Lines is reported in its place, so the rest can
/// still be created.
pub fn read(file: &Path) -> anyhow::Result<Vec<Parsed>> {
    let (name, text) = if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read stdin")?;
        ("stdin".to_owned(), text)
    } else {
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        (file.display().to_string(), text)
    };
    let parsed = parse(&text).with_context(|| format!("{name} holds no consignments"))?;
    // Nothing to create but one bad consignment: say so before reaching for NATS.
    match parsed.as_slice() {
        [(Origin::Single, Err(reason))] => anyhow::bail!("{name} is not a consignment: {reason}"),
        [(origin, Err(reason))] => anyhow::bail!("{name} is not a consignment: {origin}: {reason}"),
        _ => Ok(parsed),
    }
}

/// Why an input holds nothing to create.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("it is empty")]
    Empty,
    #[error("it is not a JSON array: {0}")]
    NotAnArray(serde_json::Error),
}

/// Splits `text` into consignments: an array if it starts with `[`, one object if
/// the whole of it is one JSON value, JSON Lines otherwise.
pub fn parse(text: &str) -> Result<Vec<Parsed>, InputError> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(InputError::Empty);
    }
    if trimmed.starts_with('[') {
        let items: Vec<serde_json::Value> = serde_json::from_str(trimmed).map_err(InputError::NotAnArray)?;
        if items.is_empty() {
            return Err(InputError::Empty);
        }
        let parsed = items.into_iter().enumerate().map(|(i, item)| (Origin::Item(i + 1), consignment(item)));
        return Ok(parsed.collect());
    }
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        return Ok(vec![(Origin::Single, consignment(value))]);
    }
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let parsed = shared::codec::decode::<NewConsignment>(line.as_bytes()).map_err(|error| error.to_string());
            (Origin::Line(i + 1), parsed)
        })
        .collect())
}

/// `value` as a consignment, or why not, naming the field at fault by its path
/// (`containers[1].user_id: missing field`), as the services do.
fn consignment(value: serde_json::Value) -> Result<NewConsignment, String> {
    shared::codec::decode_value(value).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"{"description":"d","weight":1,"containers":[{"customer_id":"c","origin":"o","user_id":"u"}]}"#;

    #[test]
    fn one_object_even_across_lines() {
        let pretty = serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(ONE).unwrap()).unwrap();
        let parsed = parse(&pretty).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].0, Origin::Single);
        assert!(parsed[0].1.is_ok());
    }

    #[test]
    fn array_items_are_numbered() {
        let parsed = parse(&format!("[{ONE}, {{\"weight\":2}}]")).unwrap();
        assert!(parsed[0].1.is_ok());
        assert_eq!(parsed[1].0, Origin::Item(2));
        assert_eq!(parsed[1].1.as_ref().unwrap_err(), "description: missing field");
    }

    #[test]
    fn a_bad_field_is_named_by_its_path() {
        let second_without_user = r#"{"description":"d","weight":1,"containers":[
            {"customer_id":"c","origin":"o","user_id":"u"},{"customer_id":"c","origin":"o"}]}"#;
        let parsed = parse(second_without_user).unwrap();
        assert_eq!(parsed[0].1.as_ref().unwrap_err(), "containers[1].user_id: missing field");
        let negative = ONE.replace(r#""weight":1"#, r#""weight":-5"#);
        let parsed = parse(&format!("{ONE}\n{negative}\n")).unwrap();
        assert_eq!(parsed[1], (Origin::Line(2), Err("weight: invalid value: integer `-5`, expected u64".to_owned())));
    }

    #[test]
    fn json_lines_report_the_bad_line_and_keep_the_rest() {
        let parsed = parse(&format!("{ONE}\n\n{{not json\n{ONE}\n")).unwrap();
        let origins: Vec<_> = parsed.iter().map(|(origin, _)| *origin).collect();
        assert_eq!(origins, [Origin::Line(1), Origin::Line(3), Origin::Line(4)]);
        assert!(parsed[1].1.is_err());
        assert!(parsed[2].1.is_ok());
    }

    #[test]
    fn nothing_to_create_is_an_error() {
        assert!(matches!(parse(" \n"), Err(InputError::Empty)));
        assert!(matches!(parse("[]"), Err(InputError::Empty)));
        assert!(matches!(parse("[1,"), Err(InputError::NotAnArray(_))));
    }
}
