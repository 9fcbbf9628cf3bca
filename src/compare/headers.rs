//! Header comparison: case-insensitive names, multi-valued fields compared as ordered lists
//! (however they are split over lines), volatile headers ignored.

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

/// Compares two header maps, skipping `ignored` names (lowercase). Changes come sorted by
/// name. Equal headers, the common case, cost no allocation: values are compared in place
/// and only a differing header is rendered into strings.
pub fn diff(
    primary: &HeaderMap,
    shadow: &HeaderMap,
    ignored: &BTreeSet<String>,
) -> Vec<HeaderChange> {
    let mut changes = Vec::new();
    // `keys()` yields each distinct name once, whatever its number of values.
    for name in primary.keys() {
        if ignored.contains(name.as_str()) {
            continue;
        }
        if primary.get_all(name).iter().eq(shadow.get_all(name).iter()) {
            continue;
        }
        // `a, b` on one line and `a` + `b` on two are the same list (RFC 9110 §5.3).
        let change = change(primary, shadow, name);
        if change.primary != change.shadow {
            changes.push(change);
        }
    }
    for name in shadow.keys() {
        if !primary.contains_key(name) && !ignored.contains(name.as_str()) {
            changes.push(change(primary, shadow, name));
        }
    }
    changes.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    changes
}

fn change(primary: &HeaderMap, shadow: &HeaderMap, name: &HeaderName) -> HeaderChange {
    HeaderChange {
        name: name.as_str().to_string(),
        primary: joined(primary, name),
        shadow: joined(shadow, name),
    }
}

fn joined(map: &HeaderMap, name: &HeaderName) -> Option<String> {
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

    #[test]
    fn one_line_and_two_lines_are_the_same_list() {
        let none = BTreeSet::new();
        let a = map(&[("vary", "accept, origin")]);
        let b = map(&[("vary", "accept"), ("vary", "origin")]);
        assert!(diff(&a, &b, &none).is_empty());
        let c = map(&[("vary", "accept")]);
        assert_eq!(diff(&a, &c, &none).len(), 1);
    }
}
