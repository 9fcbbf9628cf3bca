//! Header comparison: case-insensitive names, multi-valued fields compared as ordered lists
//! (however they are split over lines), volatile headers ignored.

pub use crate::message::fields::NameSet;

use crate::message::fields::Fields;
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

/// Compares two answers' fields, skipping `ignored` names. Changes come sorted by name.
/// Equal headers, the common case, cost one walk and no allocation (see `same_in_order`).
/// Otherwise both sides become maps and each name is looked up (see [`diff`]).
pub fn diff_fields(primary: &Fields, shadow: &Fields, ignored: &NameSet) -> Vec<HeaderChange> {
    if same_in_order(primary, shadow, ignored) {
        return Vec::new();
    }
    diff(&primary.to_map(), &shadow.to_map(), ignored)
}

/// Whether both sides list the same compared fields (names in any case, values exact) in
/// the same order, ignored ones skipped wherever they are. Two builds of one server send
/// mostly identical lines: a byte-equal pair is settled without asking the ignored set (both
/// lines have the same name, so they are both ignored or both compared, and equal either
/// way); only the lines that differ are looked up in it.
fn same_in_order(primary: &Fields, shadow: &Fields, ignored: &NameSet) -> bool {
    let mut left = primary.iter().peekable();
    let mut right = shadow.iter().peekable();
    loop {
        if let (Some(a), Some(b)) = (left.peek(), right.peek()) {
            if a == b {
                left.next();
                right.next();
                continue;
            }
        }
        if left
            .next_if(|(name, _)| ignored.contains_raw(name))
            .is_some()
            || right
                .next_if(|(name, _)| ignored.contains_raw(name))
                .is_some()
        {
            continue;
        }
        match (left.next(), right.next()) {
            (None, None) => return true,
            (Some((a_name, a_value)), Some((b_name, b_value)))
                if a_name.eq_ignore_ascii_case(b_name) && a_value == b_value => {}
            _ => return false,
        }
    }
}

/// Compares two header maps, skipping `ignored` names. Changes come sorted by name. Each
/// name is looked up on both sides; only a differing header is rendered into strings.
pub fn diff(primary: &HeaderMap, shadow: &HeaderMap, ignored: &NameSet) -> Vec<HeaderChange> {
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
#[path = "headers_tests.rs"]
mod tests;
