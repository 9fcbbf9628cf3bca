//! How a shadow's copy of a request differs from what the primary received.
//!
//! Why its own type: the copy used to be built as a second header map per job (a clone of
//! the primary's, then removals and insertions), which an HTTP/1 shadow only writes out
//! again. [`HeaderEdits`] states the differences once per shadow policy; the native client
//! writes the copy straight from the primary's fields ([`HeaderEdits::keeps`], then
//! [`HeaderEdits::additions`]), and only the hyper client (h2c shadows) builds a map
//! ([`HeaderEdits::apply`]) — from the same two rules, so both send the same fields.

use super::fields::{Fields, NameSet};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// A shadow policy's header changes, plus the marker every shadow copy carries.
#[derive(Debug, Clone)]
pub struct HeaderEdits {
    add: Vec<(HeaderName, HeaderValue)>,
    host: Option<HeaderValue>,
    marker: (HeaderName, HeaderValue),
    /// Every primary field the copy leaves out: framing ([`REFRAMED`]), removals, the
    /// fields it sets.
    dropped: NameSet,
}

/// Framing and connection options: this hop's business, since the copy's body is complete
/// and its length known. The names of the rulebook's classes `ContentLength`,
/// `TransferEncoding`, `Expect` and `Connection` (a test holds them to it), kept in the
/// copy's one set of dropped names so a field is looked up once, not classified too.
const REFRAMED: [&str; 4] = [
    "content-length",
    "transfer-encoding",
    "expect",
    "connection",
];

impl HeaderEdits {
    /// The edits of one policy: `remove` these fields, set each of `add` (replacing the
    /// primary's values), set `Host` to `host` when given, and add the `marker`.
    pub fn new(
        remove: Vec<HeaderName>,
        add: Vec<(HeaderName, HeaderValue)>,
        host: Option<HeaderValue>,
        marker: (HeaderName, HeaderValue),
    ) -> HeaderEdits {
        let set = add.iter().map(|(name, _)| name);
        let dropped = NameSet::new(
            host.is_some()
                .then_some("host")
                .into_iter()
                .chain(REFRAMED)
                .chain(std::iter::once(marker.0.as_str()))
                .chain(remove.iter().chain(set).map(HeaderName::as_str)),
        );
        HeaderEdits {
            add,
            host,
            marker,
            dropped,
        }
    }

    /// Whether the copy keeps the primary's field `name` (any case). Framing
    /// (`Content-Length`, `Transfer-Encoding`, `Expect`, `Connection`) is the shadow
    /// client's business, since the copy's body is complete; removed fields go; fields the
    /// edits set are replaced.
    pub fn keeps(&self, name: &[u8]) -> bool {
        !self.dropped.contains_raw(name)
    }

    /// The fields the copy carries after the kept ones.
    pub fn additions(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.add
            .iter()
            .map(|(name, value)| (name, value))
            .chain(self.host.iter().map(|host| (&header::HOST, host)))
            .chain(std::iter::once((&self.marker.0, &self.marker.1)))
    }

    /// The copy's fields as a map (for the hyper client).
    pub fn apply(&self, primary: &Fields) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(primary.len() + self.add.len() + 2);
        for (name, value) in primary.iter() {
            if !self.keeps(name) {
                continue;
            }
            // The fields came from a parsed head or a map, so both always convert.
            if let (Ok(name), Ok(value)) =
                (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
            {
                map.append(name, value);
            }
        }
        for (name, value) in self.additions() {
            map.append(name.clone(), value.clone());
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header_rules::{classify, FieldClass};

    /// The copy's framing names are exactly the rulebook's framing and connection classes.
    #[test]
    fn reframed_names_are_the_rulebooks_framing_classes() {
        let reframed = |name: &[u8]| {
            matches!(
                classify(name),
                FieldClass::ContentLength
                    | FieldClass::TransferEncoding
                    | FieldClass::Expect
                    | FieldClass::Connection
            )
        };
        for name in REFRAMED {
            assert!(reframed(name.as_bytes()), "{name}");
            assert!(reframed(name.to_ascii_uppercase().as_bytes()), "{name}");
        }
        let others = [
            "content-type",
            "content-lengths",
            "te",
            "trailer",
            "upgrade",
            "keep-alive",
            "proxy-connection",
            "host",
            "expected",
            "transfer-encodin",
            "x-connection",
        ];
        for name in others {
            assert_eq!(
                reframed(name.as_bytes()),
                REFRAMED.contains(&name),
                "{name}"
            );
        }
    }

    fn edits() -> HeaderEdits {
        HeaderEdits::new(
            vec![HeaderName::from_static("authorization")],
            vec![(
                HeaderName::from_static("x-env"),
                HeaderValue::from_static("shadow"),
            )],
            Some(HeaderValue::from_static("shadow.internal")),
            (
                HeaderName::from_static("x-shadowtap-shadow"),
                HeaderValue::from_static("1"),
            ),
        )
    }

    #[test]
    fn the_copy_drops_framing_and_removals_and_replaces_what_it_sets() {
        let primary = Fields::from_pairs([
            ("host", "app.test"),
            ("authorization", "secret"),
            ("x-env", "prod"),
            ("x-env", "prod2"),
            ("content-length", "5"),
            ("expect", "100-continue"),
            ("Transfer-Encoding", "chunked"),
            ("CONNECTION", "close"),
            ("Authorization", "secret too"),
            ("x-shadowtap-shadow", "0"),
            ("accept", "a"),
            ("Accept", "b"),
        ]);
        let copy = edits().apply(&primary);
        let fields: Vec<(&str, &str)> = copy
            .iter()
            .map(|(name, value)| (name.as_str(), value.to_str().unwrap_or("?")))
            .collect();
        assert_eq!(
            fields,
            [
                ("accept", "a"),
                ("accept", "b"),
                ("x-env", "shadow"),
                ("host", "shadow.internal"),
                ("x-shadowtap-shadow", "1"),
            ]
        );
    }

    #[test]
    fn without_a_host_rewrite_the_primarys_host_is_kept() {
        let edits = HeaderEdits::new(
            Vec::new(),
            Vec::new(),
            None,
            (
                HeaderName::from_static("x-shadowtap-shadow"),
                HeaderValue::from_static("1"),
            ),
        );
        assert!(edits.keeps(b"Host"));
        assert_eq!(edits.additions().count(), 1);
    }
}
