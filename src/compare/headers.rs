//! Header comparison: case-insensitive names, multi-valued fields compared as ordered lists
//! (however they are split over lines), volatile headers ignored.

use http::header::{HeaderMap, HeaderName};

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

/// A set of header names, looked up without hashing strings: the names compared on every
/// pair are mostly standard ones, which a `HeaderMap` finds by their index.
#[derive(Debug, Clone, Default)]
pub struct NameSet {
    names: HeaderMap<()>,
}

impl NameSet {
    /// The set of `names` (any case); a string that is not a valid header name is left
    /// out, since no header can carry it.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> NameSet {
        let mut set = HeaderMap::<()>::with_capacity(0);
        for name in names {
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                set.insert(name, ());
            }
        }
        NameSet { names: set }
    }

    /// Whether `name` is in the set.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.names.contains_key(name)
    }
}

/// Compares two header maps, skipping `ignored` names. Changes come sorted by name. Equal
/// headers, the common case, cost no allocation: when both sides list the compared fields
/// in the same order with the same values (two builds of one server do), one walk over
/// both proves it; otherwise each name is looked up and only a differing header is rendered
/// into strings.
pub fn diff(primary: &HeaderMap, shadow: &HeaderMap, ignored: &NameSet) -> Vec<HeaderChange> {
    if same_fields_in_order(primary, shadow, ignored) {
        return Vec::new();
    }
    let mut changes = Vec::new();
    // `keys()` yields each distinct name once, whatever its number of values.
    for name in primary.keys() {
        if ignored.contains(name) {
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
        if !primary.contains_key(name) && !ignored.contains(name) {
            changes.push(change(primary, shadow, name));
        }
    }
    changes.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    changes
}

/// Whether the compared fields of both maps are the same names and values in the same
/// order (no allocation, no lookups but the ignored set's).
fn same_fields_in_order(primary: &HeaderMap, shadow: &HeaderMap, ignored: &NameSet) -> bool {
    let mut left = primary.iter().filter(|(name, _)| !ignored.contains(name));
    let mut right = shadow.iter().filter(|(name, _)| !ignored.contains(name));
    loop {
        match (left.next(), right.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
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
        let ignored = NameSet::new(DEFAULT_IGNORED.iter().copied());
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
    fn field_order_and_ignored_values_do_not_count() {
        let ignored = NameSet::new(["date", "X-Custom-Noise"]);
        let a = map(&[
            ("date", "x"),
            ("content-type", "text/plain"),
            ("x-custom-noise", "1"),
            ("x-a", "1"),
        ]);
        let same_order = map(&[("date", "y"), ("content-type", "text/plain"), ("x-a", "1")]);
        assert!(diff(&a, &same_order, &ignored).is_empty());
        let other_order = map(&[("x-a", "1"), ("content-type", "text/plain")]);
        assert!(diff(&a, &other_order, &ignored).is_empty());
        let changed = map(&[("x-a", "2"), ("content-type", "text/plain")]);
        assert_eq!(diff(&a, &changed, &ignored).len(), 1);
        let extra = map(&[("content-type", "text/plain"), ("x-a", "1"), ("x-b", "1")]);
        assert_eq!(diff(&a, &extra, &ignored)[0].name, "x-b");
    }

    #[test]
    fn multi_values_compare_as_ordered_lists() {
        let none = NameSet::default();
        let a = map(&[("vary", "accept"), ("vary", "origin")]);
        let b = map(&[("vary", "origin"), ("vary", "accept")]);
        assert_eq!(diff(&a, &b, &none).len(), 1);
        assert!(diff(&a, &a.clone(), &none).is_empty());
    }

    #[test]
    fn one_line_and_two_lines_are_the_same_list() {
        let none = NameSet::default();
        let a = map(&[("vary", "accept, origin")]);
        let b = map(&[("vary", "accept"), ("vary", "origin")]);
        assert!(diff(&a, &b, &none).is_empty());
        let c = map(&[("vary", "accept")]);
        assert_eq!(diff(&a, &c, &none).len(), 1);
    }
}
