//! Header maps built from heads httparse parsed, for mirrored requests: the request copy
//! the shadows get, and the primary's and shadows' answers kept for comparison.
//!
//! Why its own module: these maps are built for every sampled request, so they are built
//! cheaply — sized once, every value a view into one shared copy of the head (no allocation
//! per value), and the names the proxy itself adds taken from constants instead of
//! allocated.

use crate::proxy::headers;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Non-standard names on every forwarded request (the proxy adds them): found here, they
/// cost no allocation.
static KNOWN: [&HeaderName; 4] = [
    &headers::X_FORWARDED_FOR,
    &headers::X_FORWARDED_PROTO,
    &headers::X_FORWARDED_HOST,
    &headers::X_REQUEST_ID,
];

/// A map of `fields`, which httparse parsed out of `head`; `shared` is a copy of `head`
/// that the values become views into.
pub(super) fn header_map<'h>(
    head: &[u8],
    shared: &Bytes,
    capacity: usize,
    fields: impl Iterator<Item = (&'h str, &'h [u8])>,
) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(capacity);
    for (name, value) in fields {
        let Some(name) = header_name(name.as_bytes()) else {
            continue;
        };
        // httparse's values are slices of `head`, so the same bytes sit at the same offset
        // in `shared` (checked: an empty value may point elsewhere).
        let shared_value = (value.as_ptr() as usize)
            .checked_sub(head.as_ptr() as usize)
            .filter(|start| start + value.len() <= shared.len())
            .map(|start| shared.slice(start..start + value.len()));
        let value = match shared_value {
            Some(bytes) => HeaderValue::from_maybe_shared(bytes),
            None => HeaderValue::from_bytes(value),
        };
        if let Ok(value) = value {
            map.append(name, value);
        }
    }
    map
}

/// The name for `bytes` (any case): one of the constants above, or parsed.
fn header_name(bytes: &[u8]) -> Option<HeaderName> {
    if bytes.len() >= 12 && bytes[..2].eq_ignore_ascii_case(b"x-") {
        if let Some(known) = KNOWN
            .iter()
            .find(|known| known.as_str().as_bytes().eq_ignore_ascii_case(bytes))
        {
            return Some((*known).clone());
        }
    }
    HeaderName::from_bytes(bytes).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn values_are_views_and_names_lowercase() {
        let head = b"X-Forwarded-For: 10.0.0.1\r\nX-Other: a b\r\nX-Request-Id: 7\r\n";
        let shared = Bytes::copy_from_slice(head);
        let fields = [
            ("X-Forwarded-For", &head[17..25]),
            ("X-Other", &head[36..39]),
            ("X-Request-Id", &head[55..56]),
            ("x-empty", &b""[..]),
        ];
        let map = header_map(head, &shared, fields.len(), fields.into_iter());
        assert_eq!(map["x-forwarded-for"], "10.0.0.1");
        assert_eq!(map["x-other"], "a b");
        assert_eq!(map["x-request-id"], "7");
        assert_eq!(map["x-empty"], "");
        let names: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        assert_eq!(
            names,
            ["x-forwarded-for", "x-other", "x-request-id", "x-empty"]
        );
    }

    #[test]
    fn a_bad_name_is_left_out() {
        let head = b"";
        let map = header_map(
            head,
            &Bytes::new(),
            1,
            [("bad name", &b"v"[..])].into_iter(),
        );
        assert!(map.is_empty());
    }
}
