//! A captured message's header fields as they arrived: names and values in order, every one
//! a view into a single buffer.
//!
//! Why not a `HeaderMap`: every mirrored request keeps two answers' heads (the primary's and
//! the shadow's) only to compare them, and nearly always they turn out equal. Building a map
//! costs a name parse, a hash and an insert per field, and dropping it a reference count per
//! value — about a seventh of a mirrored request's instructions. A list of ranges over one
//! copy of the head costs one allocation, and comparing two lists in order is one walk.
//! The rare pair that differs is turned into maps ([`Fields::to_map`]) where the diff needs
//! lookups by name.

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Where one field's name and value are in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Line {
    name_start: u32,
    name_len: u32,
    value_start: u32,
    value_len: u32,
}

/// Header fields in arrival order; names keep the case they were sent in (HTTP/1) or are
/// lowercase (HTTP/2, or taken from a `HeaderMap`). Lookups ignore case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    buf: Bytes,
    lines: Vec<Line>,
}

impl Fields {
    /// Fields parsed out of `head` (each name and value a slice of it); `shared` holds the
    /// same bytes as `head`, and the fields become views into it without another copy. A
    /// field that is not a slice of `head` (httparse may point an empty value elsewhere) is
    /// still kept, by copying.
    pub fn from_parsed<'h>(
        head: &[u8],
        shared: Bytes,
        capacity: usize,
        fields: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    ) -> Fields {
        debug_assert_eq!(head.len(), shared.len());
        let mut lines = Vec::with_capacity(capacity);
        let mut strays: Vec<(&[u8], &[u8])> = Vec::new();
        for (name, value) in fields {
            // An empty value needs no bytes, wherever httparse points it.
            let value_start = match value.is_empty() {
                true => Some(0),
                false => offset_in(head, value),
            };
            match (offset_in(head, name), value_start) {
                (Some(name_start), Some(value_start)) => lines.push(Line {
                    name_start,
                    name_len: name.len() as u32,
                    value_start,
                    value_len: value.len() as u32,
                }),
                _ => strays.push((name, value)),
            }
        }
        if strays.is_empty() {
            return Fields { buf: shared, lines };
        }
        // Never expected from httparse; handled by rebuilding the buffer with every field
        // appended, in order.
        let mut fields = Fields::builder(head.len());
        let kept = Fields { buf: shared, lines };
        for (name, value) in kept.iter().chain(strays) {
            fields.push(name, value);
        }
        fields.finish()
    }

    /// The fields of `map` (names lowercase, values in map order): for answers the hyper
    /// client parsed.
    pub fn from_map(map: &HeaderMap) -> Fields {
        let size = map
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        let mut fields = Fields::builder(size);
        for (name, value) in map {
            fields.push(name.as_str().as_bytes(), value.as_bytes());
        }
        fields.finish()
    }

    /// Fields from `(name, value)` pairs, copied (tests, and callers with no head to share).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Fields {
        let mut fields = Fields::builder(0);
        for (name, value) in pairs {
            fields.push(name.as_bytes(), value.as_bytes());
        }
        fields.finish()
    }

    fn builder(size: usize) -> Builder {
        Builder {
            buf: BytesMut::with_capacity(size),
            lines: Vec::new(),
        }
    }

    /// `(name, value)` of every field, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.lines.iter().map(|line| {
            let name = line.name_start as usize..(line.name_start + line.name_len) as usize;
            let value = line.value_start as usize..(line.value_start + line.value_len) as usize;
            (&self.buf[name], &self.buf[value])
        })
    }

    /// Every value of `name` (any case), in order.
    pub fn get_all<'f>(&'f self, name: &'f str) -> impl Iterator<Item = &'f [u8]> + 'f {
        self.iter()
            .filter(move |(field, _)| field.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, value)| value)
    }

    /// The first value of `name` (any case).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, value)| value)
    }

    /// How many fields (lines) there are.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// No fields at all.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The same fields as a map (lowercase names; values views into the same buffer). A
    /// field `http` would not accept is left out; httparse and hyper accept none such.
    pub fn to_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.lines.len());
        for line in &self.lines {
            let name = line.name_start as usize..(line.name_start + line.name_len) as usize;
            let value = line.value_start as usize..(line.value_start + line.value_len) as usize;
            let Ok(name) = HeaderName::from_bytes(&self.buf[name]) else {
                continue;
            };
            if let Ok(value) = HeaderValue::from_maybe_shared(self.buf.slice(value)) {
                map.append(name, value);
            }
        }
        map
    }
}

/// Appends fields to one growing buffer.
struct Builder {
    buf: BytesMut,
    lines: Vec<Line>,
}

impl Builder {
    fn push(&mut self, name: &[u8], value: &[u8]) {
        let name_start = self.buf.len() as u32;
        self.buf.extend_from_slice(name);
        let value_start = self.buf.len() as u32;
        self.buf.extend_from_slice(value);
        self.lines.push(Line {
            name_start,
            name_len: name.len() as u32,
            value_start,
            value_len: value.len() as u32,
        });
    }

    fn finish(self) -> Fields {
        Fields {
            buf: self.buf.freeze(),
            lines: self.lines,
        }
    }
}

/// Where `part` starts inside `whole`, if it is a slice of it.
fn offset_in(whole: &[u8], part: &[u8]) -> Option<u32> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (start + part.len() <= whole.len())
        .then(|| u32::try_from(start).ok())
        .flatten()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parsed_fields_are_views_in_order_and_lookups_ignore_case() {
        let head = b"X-Forwarded-For: 10.0.0.1\r\nVary: a\r\nvary: b\r\n";
        let shared = Bytes::copy_from_slice(head);
        let parsed = [
            (&head[0..15], &head[17..25]),
            (&head[27..31], &head[33..34]),
            (&head[36..40], &head[42..43]),
        ];
        let fields = Fields::from_parsed(head, shared.clone(), 3, parsed.into_iter());
        let all: Vec<_> = fields.iter().collect();
        assert_eq!(
            all,
            [
                (&b"X-Forwarded-For"[..], &b"10.0.0.1"[..]),
                (b"Vary", b"a"),
                (b"vary", b"b")
            ]
        );
        assert_eq!(fields.get("x-forwarded-for"), Some(&b"10.0.0.1"[..]));
        assert_eq!(
            fields.get_all("VARY").collect::<Vec<_>>(),
            [&b"a"[..], b"b"]
        );
        assert_eq!(fields.get("absent"), None);
        // No copy: the fields share the head's buffer.
        assert_eq!(fields.buf.as_ptr(), shared.as_ptr());
    }

    #[test]
    fn a_field_outside_the_head_is_copied_not_lost() {
        let head = b"A: 1\r\n";
        let elsewhere = b"B";
        let parsed = [(&head[0..1], &head[3..4]), (&elsewhere[..], &b""[..])];
        let fields = Fields::from_parsed(head, Bytes::copy_from_slice(head), 2, parsed.into_iter());
        let all: Vec<_> = fields.iter().collect();
        assert_eq!(all, [(&b"A"[..], &b"1"[..]), (b"B", b"")]);
    }

    #[test]
    fn maps_round_trip_with_lowercase_names_and_repeated_values() {
        let fields =
            Fields::from_pairs([("Content-Type", "text/plain"), ("Vary", "a"), ("vary", "b")]);
        let map = fields.to_map();
        assert_eq!(map["content-type"], "text/plain");
        assert_eq!(map.get_all("vary").iter().count(), 2);
        let back = Fields::from_map(&map);
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            [
                (&b"content-type"[..], &b"text/plain"[..]),
                (b"vary", b"a"),
                (b"vary", b"b")
            ]
        );
        assert_eq!((back.len(), Fields::default().is_empty()), (3, true));
    }
}
