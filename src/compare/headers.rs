//! Header comparison: case-insensitive names, multi-valued fields compared as ordered lists,
//! volatile headers ignored.

use http::header::{HeaderMap, HeaderName};
use std::collections::BTreeSet;

/// Headers that differ between any two healthy servers and say nothing about behaviour.
/// Routes can extend this list or replace it.
pub const DEFAULT_IGNORED: &[&str] = &[
    "date",
    "server",
    "age",
    "x-request-id",
    "expires",
    "last-modified",
    "etag",
    "via",
    "connection",
    "keep-alive",
];

/// Framing headers: ignored when bodies are compared after decoding, since a different
/// encoding or chunking of an equal body is not a regression.
pub const FRAMING: &[&str] = &["content-length", "transfer-encoding", "content-encoding"];

/// One differing header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderChange {
    /// Lowercase name.
    pub name: String,
    /// The primary's values joined with ", ", if present.
    pub primary: Option<String>,
    /// The shadow's values joined with ", ", if present.
    pub shadow: Option<String>,
}

/// Compares two header maps, skipping `ignored` names (lowercase).
pub fn diff(
    primary: &HeaderMap,
    shadow: &HeaderMap,
    ignored: &BTreeSet<String>,
) -> Vec<HeaderChange> {
    let names: BTreeSet<&str> = primary
        .keys()
        .chain(shadow.keys())
        .map(HeaderName::as_str)
        .collect();
    let mut changes = Vec::new();
    for name in names {
        if ignored.contains(name) {
            continue;
        }
        let left = joined(primary, name);
        let right = joined(shadow, name);
        if left != right {
            changes.push(HeaderChange {
                name: name.to_string(),
                primary: left,
                shadow: right,
            });
        }
    }
    changes
}

fn joined(map: &HeaderMap, name: &str) -> Option<String> {
    let mut values = map.get_all(name).iter().peekable();
    values.peek()?;
    Some(
        values
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn names_are_case_insensitive_and_ignored_ones_skipped() {
        let ignored: BTreeSet<String> = DEFAULT_IGNORED.iter().map(|s| s.to_string()).collect();
        let a = map(&[
            ("Content-Type", "application/json"),
            ("date", "x"),
            ("x-a", "1"),
        ]);
        let b = map(&[
            ("content-type", "application/json"),
            ("date", "y"),
            ("x-b", "2"),
        ]);
        let changes = diff(&a, &b, &ignored);
        assert_eq!(
            changes,
            vec![
                HeaderChange {
                    name: "x-a".into(),
                    primary: Some("1".into()),
                    shadow: None
                },
                HeaderChange {
                    name: "x-b".into(),
                    primary: None,
                    shadow: Some("2".into())
                },
            ]
        );
    }

    #[test]
    fn multi_values_compare_as_ordered_lists() {
        let none = BTreeSet::new();
        let a = map(&[("vary", "accept"), ("vary", "origin")]);
        let b = map(&[("vary", "origin"), ("vary", "accept")]);
        assert_eq!(diff(&a, &b, &none).len(), 1);
        assert!(diff(&a, &a.clone(), &none).is_empty());
    }
}
