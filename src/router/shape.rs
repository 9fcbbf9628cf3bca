//! Endpoints from path shapes: `/users/42/orders/7f3c9a12` -> `/users/{id}/orders/{id}`.
//!
//! A route without templates (the catch-all that flags-only users get, a sidecar's one
//! route) carries many endpoints under one label. Comparison learns noise per endpoint, and
//! the admin API shows results per endpoint, so those paths are grouped by their *shape*:
//! segments that look like identifiers become `{id}`, the rest stay literal. The number of
//! endpoints per route is bounded ([`EndpointNamer`]); paths past the bound share the
//! route's overflow endpoint `<route>:other` (the router's suffix for "no template fits"),
//! so memory is bounded by config, never by traffic.

use super::OTHER_LABEL_SUFFIX;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// What an identifier segment becomes in a template (the router's `{name}` syntax).
pub const ID_SEGMENT: &str = "{id}";

/// The longest template kept: a longer path's template is cut here, so one endpoint name
/// costs a bounded number of bytes however long the request path was.
pub const MAX_TEMPLATE_BYTES: usize = 256;

/// Shortest hex segment taken for an id (object ids, hashes); shorter ones may be words.
const MIN_HEX_ID: usize = 8;

/// Shortest token-like segment taken for an id (base64url, ULIDs, slugs with numbers).
const MIN_TOKEN_ID: usize = 16;

/// The template of a path: the query is dropped and each identifier-like segment becomes
/// `{id}` (see [`is_identifier`]). Empty segments and the trailing slash are kept.
pub fn template(path: &str) -> String {
    let mut out = String::with_capacity(path.len().min(MAX_TEMPLATE_BYTES));
    push_template(path, &mut out);
    out
}

/// [`template`], appended to `out` (at most [`MAX_TEMPLATE_BYTES`] and an ellipsis).
fn push_template(path: &str, out: &mut String) {
    let end = path
        .bytes()
        .position(|b| b == b'?' || b == b'#')
        .unwrap_or(path.len());
    let path = path.get(..end).unwrap_or(path);
    let start = out.len();
    for (index, segment) in path.split('/').enumerate() {
        if index > 0 {
            out.push('/');
        }
        if is_identifier(segment) {
            out.push_str(ID_SEGMENT);
        } else {
            out.push_str(segment);
        }
        if out.len() - start >= MAX_TEMPLATE_BYTES {
            let mut end = start + MAX_TEMPLATE_BYTES;
            while !out.is_char_boundary(end) {
                end = end.saturating_sub(1);
            }
            out.truncate(end);
            out.push('…');
            break;
        }
    }
}

/// Whether a path segment names one resource rather than a kind of resource:
/// - all digits (`42`);
/// - a UUID (`3f2504e0-4f89-11d3-9a0c-0305e82c3301`);
/// - hex of at least 8 digits with a decimal digit among them (`507f1f77bcf86cd7`, a
///   commit hash; `deadbeef` or `facade` stay words);
/// - a token of at least 16 characters from the base64url alphabet (plus `.`, `~`, `=`)
///   with a digit in it (`01HV6Z3K9Q8W7E6R5T4Y3U2I1O`, `dXNlcjo0Mg==`-like ids);
/// - a segment that starts with a digit and has more digits than letters (`2026-11-22`,
///   `1234abc`; `v2`, `item42`, `2fa` and `3d-models` stay literal).
pub fn is_identifier(segment: &str) -> bool {
    if segment.is_empty() {
        return false;
    }
    let bytes = segment.as_bytes();
    let digits = bytes.iter().filter(|b| b.is_ascii_digit()).count();
    let letters = bytes.iter().filter(|b| b.is_ascii_alphabetic()).count();
    if digits == bytes.len() {
        return true;
    }
    if is_uuid(segment) {
        return true;
    }
    if bytes.len() >= MIN_HEX_ID && digits > 0 && bytes.iter().all(u8::is_ascii_hexdigit) {
        return true;
    }
    let token_alphabet = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'='));
    if bytes.len() >= MIN_TOKEN_ID && digits > 0 && token_alphabet {
        return true;
    }
    token_alphabet && bytes.first().is_some_and(u8::is_ascii_digit) && digits > letters
}

fn is_uuid(text: &str) -> bool {
    let mut groups = text.split('-');
    [8, 4, 4, 4, 12].iter().all(|len| {
        groups
            .next()
            .is_some_and(|g| g.len() == *len && g.bytes().all(|b| b.is_ascii_hexdigit()))
    }) && groups.next().is_none()
}

/// An endpoint of a route label: its name, and an id dense from 0 (per namer) that lets
/// per-endpoint state live in a `Vec` instead of behind a second hash of the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Index of the name in [`EndpointNamer::names`].
    pub id: usize,
    /// `METHOD template`, or `<route>:other`.
    pub name: Arc<str>,
}

/// FNV-1a: a name is hashed once per compared pair, and SipHash's set-up costs more than
/// the few bytes of a name. Flooding is no concern here: the map never holds more than the
/// namer's bound, so a crafted name costs at most that many comparisons.
#[derive(Debug, Clone, Copy)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Names the endpoints of one route label: `METHOD template`, at most `limit` of them;
/// later shapes share `<route>:other`, and how many pairs went there is counted.
#[derive(Debug)]
pub struct EndpointNamer {
    limit: usize,
    ids: HashMap<Arc<str>, usize, BuildHasherDefault<Fnv>>,
    names: Vec<Arc<str>>,
    overflow: Arc<str>,
    overflow_id: Option<usize>,
    overflowed: u64,
    /// Where a name is built, so that naming a known endpoint allocates nothing.
    scratch: String,
}

impl EndpointNamer {
    /// A namer for route `route` that keeps at most `limit` endpoint names (and the
    /// overflow endpoint).
    pub fn new(route: &str, limit: usize) -> EndpointNamer {
        EndpointNamer {
            limit,
            ids: HashMap::default(),
            names: Vec::new(),
            overflow: Arc::from(format!("{route}{OTHER_LABEL_SUFFIX}")),
            overflow_id: None,
            overflowed: 0,
            scratch: String::new(),
        }
    }

    /// The endpoint of a request: `METHOD template` where `template` is the route's own
    /// template when the router found one (`Some`), else the path's shape.
    pub fn name(&mut self, method: &str, template: Option<&str>, path: &str) -> Endpoint {
        let mut name = std::mem::take(&mut self.scratch);
        name.clear();
        name.push_str(method);
        name.push(' ');
        match template {
            Some(template) => name.push_str(template),
            None => push_template(path, &mut name),
        }
        let id = match self.ids.get(name.as_str()) {
            Some(id) => *id,
            None if self.ids.len() >= self.limit => {
                self.overflowed = self.overflowed.saturating_add(1);
                match self.overflow_id {
                    Some(id) => id,
                    None => self.add(self.overflow.clone()),
                }
            }
            None => {
                let new: Arc<str> = Arc::from(name.as_str());
                let id = self.add(new.clone());
                self.ids.insert(new, id);
                id
            }
        };
        self.scratch = name;
        let name = self
            .names
            .get(id)
            .cloned()
            .unwrap_or_else(|| self.overflow.clone());
        Endpoint { id, name }
    }

    fn add(&mut self, name: Arc<str>) -> usize {
        let id = self.names.len();
        if Arc::ptr_eq(&name, &self.overflow) {
            self.overflow_id = Some(id);
        }
        self.names.push(name);
        id
    }

    /// Every name handed out, by id.
    pub fn names(&self) -> &[Arc<str>] {
        &self.names
    }

    /// Pairs whose endpoint did not fit the bound and went to the overflow endpoint.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }
}

#[cfg(test)]
#[path = "shape_tests.rs"]
mod tests;
