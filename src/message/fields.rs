//! A captured message's header fields as they arrived: names and values in order, every one
//! a view into a single buffer.
//!
//! Why not a `HeaderMap`: every mirrored request keeps two answers' heads (the primary's and
//! the shadow's) only to compare them, and nearly always they turn out equal. Building a map
//! costs a name parse, a hash and an insert per field, and dropping it a reference count per
//! value; a list of ranges over one copy of the head costs one allocation, and comparing two
//! lists in order is one walk (see docs/PERFORMANCE.md, "What bought what", dcf888a).
//! The rare pair that differs is turned into maps ([`Fields::to_map`]) where the diff needs
//! lookups by name.

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Where one field's name and value are in a head: kept by [`Fields`], and recorded by a
/// writer of a head that keeps its fields without parsing it again (the native engine's
/// upstream request head).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpan {
    name_start: u32,
    name_len: u32,
    value_start: u32,
    value_len: u32,
}

impl FieldSpan {
    /// The field whose line `name: value\r\n` starts at `line_start`, with a name of
    /// `name_len` bytes, and ends at `line_end` (after its CRLF). `None` past 4 GiB.
    pub fn of_line(line_start: usize, name_len: usize, line_end: usize) -> Option<FieldSpan> {
        let value_start = line_start + name_len + 2;
        FieldSpan::at(
            line_start,
            name_len,
            value_start,
            line_end.checked_sub(value_start + 2)?,
        )
    }

    /// A span from offsets and lengths; `None` when one does not fit in 32 bits (heads are
    /// far smaller: the listener caps them at `max_header_bytes`).
    fn at(
        name_start: usize,
        name_len: usize,
        value_start: usize,
        value_len: usize,
    ) -> Option<Self> {
        Some(FieldSpan {
            name_start: u32::try_from(name_start).ok()?,
            name_len: u32::try_from(name_len).ok()?,
            value_start: u32::try_from(value_start).ok()?,
            value_len: u32::try_from(value_len).ok()?,
        })
    }

    fn name(&self) -> std::ops::Range<usize> {
        let start = self.name_start as usize;
        start..start + self.name_len as usize
    }

    fn value(&self) -> std::ops::Range<usize> {
        let start = self.value_start as usize;
        start..start + self.value_len as usize
    }

    /// The whole line in `buf` when it stands there as `name: value\r\n`.
    fn line_in(&self, buf: &[u8]) -> Option<std::ops::Range<usize>> {
        let name = self.name();
        let value = self.value();
        let canonical = value.start == name.end + 2
            && buf.get(name.end..value.start) == Some(b": ")
            && buf.get(value.end..value.end + 2) == Some(b"\r\n");
        canonical.then_some(name.start..value.end + 2)
    }
}

/// Header fields in arrival order; names keep the case they were sent in (HTTP/1) or are
/// lowercase (HTTP/2, or taken from a `HeaderMap`). Lookups ignore case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    buf: Bytes,
    lines: Vec<FieldSpan>,
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
            let span = match (offset_in(head, name), value_start) {
                (Some(name_start), Some(value_start)) => {
                    FieldSpan::at(name_start, name.len(), value_start, value.len())
                }
                _ => None,
            };
            match span {
                Some(span) => lines.push(span),
                None => strays.push((name, value)),
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

    /// The fields a writer of `head` recorded as it wrote them; a span that does not lie
    /// within `head` is left out.
    pub fn from_spans(head: Bytes, mut spans: Vec<FieldSpan>) -> Fields {
        spans.retain(|span| span.name().end <= head.len() && span.value().end <= head.len());
        Fields {
            buf: head,
            lines: spans,
        }
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

    /// These fields with a trailer section appended after them: a captured answer's
    /// trailers are compared with its head (a gRPC status may come in either).
    pub fn with_trailers(self, trailers: &HeaderMap) -> Fields {
        if trailers.is_empty() {
            return self;
        }
        let size = self.buf.len()
            + trailers
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len())
                .sum::<usize>();
        let mut fields = Fields::builder(size);
        for (name, value) in self.iter() {
            fields.push(name, value);
        }
        for (name, value) in trailers {
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

    /// The same fields, borrowed.
    pub fn view(&self) -> FieldsView<'_> {
        FieldsView {
            buf: &self.buf,
            lines: &self.lines,
        }
    }

    /// `(name, value)` of every field, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.view().into_iter()
    }

    /// Appends the line `name: value\r\n` of every field `keep` accepts, in order: a head
    /// for the next hop. Adjacent lines that already stand so in the buffer go in one copy.
    pub fn write_lines(&self, out: &mut Vec<u8>, mut keep: impl FnMut(&[u8]) -> bool) {
        let mut run = 0..0;
        for line in &self.lines {
            let (Some(name), Some(value)) = (self.buf.get(line.name()), self.buf.get(line.value()))
            else {
                continue;
            };
            if !keep(name) {
                continue;
            }
            match line.line_in(&self.buf) {
                Some(whole) if whole.start == run.end => run.end = whole.end,
                Some(whole) => {
                    out.extend_from_slice(self.buf.get(run).unwrap_or_default());
                    run = whole;
                }
                None => {
                    out.extend_from_slice(self.buf.get(run).unwrap_or_default());
                    run = 0..0;
                    out.extend_from_slice(name);
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(value);
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        out.extend_from_slice(self.buf.get(run).unwrap_or_default());
    }

    /// Every value of `name` (any case), in order.
    pub fn get_all<'f>(&'f self, name: &'f str) -> impl Iterator<Item = &'f [u8]> + 'f {
        self.view().into_all(name)
    }

    /// The first value of `name` (any case).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.view().into_first(name)
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
            let Some(Ok(name)) = self.buf.get(line.name()).map(HeaderName::from_bytes) else {
                continue;
            };
            if let Ok(value) = HeaderValue::from_maybe_shared(self.buf.slice(line.value())) {
                map.append(name, value);
            }
        }
        map
    }
}

/// Fields as spans over a head that someone else owns: what the native engine recorded
/// while writing a request head, looked at (to decide whether the request is mirrored)
/// before anything is copied into a [`Fields`].
#[derive(Debug, Clone, Copy)]
pub struct FieldsView<'a> {
    buf: &'a [u8],
    lines: &'a [FieldSpan],
}

impl<'a> FieldsView<'a> {
    /// The fields `spans` records in `head`; a span that does not lie within `head` is
    /// skipped.
    pub fn new(head: &'a [u8], spans: &'a [FieldSpan]) -> FieldsView<'a> {
        FieldsView {
            buf: head,
            lines: spans,
        }
    }

    fn into_iter(self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        self.lines
            .iter()
            .filter_map(move |line| Some((self.buf.get(line.name())?, self.buf.get(line.value())?)))
    }

    fn into_all(self, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
        self.into_iter()
            .filter(move |(field, _)| field.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, value)| value)
    }

    fn into_first(self, name: &str) -> Option<&'a [u8]> {
        self.into_iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, value)| value)
    }
}

/// Looking a request's fields up by name, whatever holds them: the mirror plan asks it of a
/// borrowed view or of hyper's map, so a request that is not sampled copies nothing.
pub trait FieldLookup {
    /// The first value of `name` (any case).
    fn first(&self, name: &str) -> Option<&[u8]>;
    /// Every value of `name` (any case), in order.
    fn every<'f>(&'f self, name: &'f str) -> impl Iterator<Item = &'f [u8]> + 'f;
}

impl FieldLookup for FieldsView<'_> {
    fn first(&self, name: &str) -> Option<&[u8]> {
        self.into_first(name)
    }

    fn every<'f>(&'f self, name: &'f str) -> impl Iterator<Item = &'f [u8]> + 'f {
        self.into_all(name)
    }
}

impl FieldLookup for Fields {
    fn first(&self, name: &str) -> Option<&[u8]> {
        self.get(name)
    }

    fn every<'f>(&'f self, name: &'f str) -> impl Iterator<Item = &'f [u8]> + 'f {
        self.get_all(name)
    }
}

impl FieldLookup for HeaderMap {
    fn first(&self, name: &str) -> Option<&[u8]> {
        self.get(name).map(HeaderValue::as_bytes)
    }

    fn every<'f>(&'f self, name: &'f str) -> impl Iterator<Item = &'f [u8]> + 'f {
        self.get_all(name).into_iter().map(HeaderValue::as_bytes)
    }
}

/// A set of header names, looked up by a field's raw name bytes in any case: bucketed by
/// length, so a lookup compares against at most a couple of names, without hashing.
#[derive(Debug, Clone, Default)]
pub struct NameSet {
    /// Lowercase names, indexed by their length.
    by_len: Vec<Vec<Box<[u8]>>>,
}

impl NameSet {
    /// The set of `names` (any case); a string that is not a valid header name is left
    /// out, since no header can carry it.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> NameSet {
        let mut set = NameSet::default();
        for name in names {
            let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                continue;
            };
            let bytes = name.as_str().as_bytes();
            if set.contains_raw(bytes) {
                continue;
            }
            if set.by_len.len() <= bytes.len() {
                set.by_len.resize_with(bytes.len() + 1, Vec::new);
            }
            if let Some(same_length) = set.by_len.get_mut(bytes.len()) {
                same_length.push(bytes.into());
            }
        }
        set
    }

    /// Whether `name` is in the set.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.contains_raw(name.as_str().as_bytes())
    }

    /// Whether a field named `name` (any case) is in the set.
    pub fn contains_raw(&self, name: &[u8]) -> bool {
        self.by_len
            .get(name.len())
            .is_some_and(|names| names.iter().any(|known| known.eq_ignore_ascii_case(name)))
    }
}

/// Appends fields to one growing buffer.
struct Builder {
    buf: BytesMut,
    lines: Vec<FieldSpan>,
}

impl Builder {
    /// Appends a field; one that would lie past 4 GiB into the buffer is left out.
    fn push(&mut self, name: &[u8], value: &[u8]) {
        let name_start = self.buf.len();
        let value_start = name_start + name.len();
        let Some(span) = FieldSpan::at(name_start, name.len(), value_start, value.len()) else {
            return;
        };
        self.buf.extend_from_slice(name);
        self.buf.extend_from_slice(value);
        self.lines.push(span);
    }

    fn finish(self) -> Fields {
        Fields {
            buf: self.buf.freeze(),
            lines: self.lines,
        }
    }
}

/// Where `part` starts inside `whole`, if it is a slice of it.
pub(crate) fn offset_in(whole: &[u8], part: &[u8]) -> Option<usize> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (start + part.len() <= whole.len()).then_some(start)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "fields_tests.rs"]
mod tests;
