//! Structural JSON diff: every added, removed, changed or type-changed value with its JSON
//! Pointer (RFC 6901), with ignore rules, unordered arrays and numeric tolerance.
//!
//! The walk compares the two trees in one pass and builds a pointer string only when it
//! reports a difference, so equal documents cost a traversal and nothing else. Ignore rules
//! are pointer patterns where `*` stands for any one segment (`/items/*/updated_at`).

use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write;

/// What differs at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Present only in the shadow.
    Added,
    /// Present only in the primary.
    Removed,
    /// Same type, different value.
    Changed,
    /// Different JSON types (e.g. number vs string).
    TypeChanged,
    /// An array whose length differs (reported at the array itself).
    LengthChanged,
}

/// One structural difference.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JsonChange {
    /// JSON Pointer of the value.
    pub pointer: String,
    /// The pointer with array indices replaced by `*`: the field, across elements.
    pub field: String,
    /// What changed.
    pub kind: ChangeKind,
    /// The primary's value (compact JSON, shortened), if it has one.
    pub primary: Option<String>,
    /// The shadow's value, if it has one.
    pub shadow: Option<String>,
}

/// A pointer pattern: segments, `*` matching any one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointerPattern {
    segments: Vec<String>,
}

impl PointerPattern {
    /// Parses `/a/*/b` (RFC 6901 escapes `~0` and `~1` apply). `""` is the whole document.
    pub fn parse(text: &str) -> Result<PointerPattern, String> {
        crate::pattern::pointer::parse(text).map(|segments| PointerPattern { segments })
    }

    fn matches(&self, path: &[Segment<'_>]) -> bool {
        self.segments.len() == path.len()
            && self
                .segments
                .iter()
                .zip(path)
                .all(|(want, have)| want == "*" || have.equals(want))
    }

    /// Whether `pointer` (a concrete JSON Pointer) falls under this pattern, itself or below.
    pub fn covers(&self, pointer: &str) -> bool {
        let Ok(concrete) = PointerPattern::parse(pointer) else {
            return false;
        };
        concrete.segments.len() >= self.segments.len()
            && self
                .segments
                .iter()
                .zip(&concrete.segments)
                .all(|(want, have)| want == "*" || want == have)
    }

    /// Whether this pattern reaches strictly below `pointer`: a value at `pointer` (an
    /// object removed whole, an array element added) may contain what the pattern covers.
    pub fn is_below(&self, pointer: &str) -> bool {
        let Ok(concrete) = PointerPattern::parse(pointer) else {
            return false;
        };
        concrete.segments.len() < self.segments.len()
            && self
                .segments
                .iter()
                .zip(&concrete.segments)
                .all(|(want, have)| want == "*" || want == have)
    }
}

/// How two documents are compared.
#[derive(Debug, Clone, Default)]
pub struct JsonRules {
    /// Values at these paths (and below) are not compared.
    pub ignore: Vec<PointerPattern>,
    /// Compare every array as a multiset (order ignored).
    pub unordered_arrays: bool,
    /// Compare arrays at these paths as multisets.
    pub unordered_paths: Vec<PointerPattern>,
    /// Numbers within this absolute distance are equal.
    pub numeric_tolerance: f64,
    /// Stop after this many differences (a pathological pair must not cost unbounded time).
    pub max_changes: usize,
}

impl JsonRules {
    fn limit(&self) -> usize {
        if self.max_changes == 0 {
            usize::MAX
        } else {
            self.max_changes
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

impl Segment<'_> {
    fn equals(&self, text: &str) -> bool {
        match self {
            Segment::Key(key) => *key == text,
            Segment::Index(index) => text.parse::<usize>().ok() == Some(*index),
        }
    }
}

/// The longest value text kept in a report.
const MAX_VALUE_TEXT: usize = 200;

/// Compares two documents. The result is empty when they are equal under `rules`.
pub fn diff(primary: &Value, shadow: &Value, rules: &JsonRules) -> Vec<JsonChange> {
    let mut walk = Walk {
        rules,
        path: Vec::with_capacity(16),
        changes: Vec::new(),
        limit: rules.limit(),
    };
    walk.value(primary, shadow);
    walk.changes
}

struct Walk<'r, 'v> {
    rules: &'r JsonRules,
    path: Vec<Segment<'v>>,
    changes: Vec<JsonChange>,
    limit: usize,
}

impl<'v> Walk<'_, 'v> {
    fn full(&self) -> bool {
        self.changes.len() >= self.limit
    }

    fn ignored(&self) -> bool {
        !self.rules.ignore.is_empty() && self.rules.ignore.iter().any(|p| p.matches(&self.path))
    }

    fn value(&mut self, primary: &'v Value, shadow: &'v Value) {
        if self.full() || self.ignored() {
            return;
        }
        match (primary, shadow) {
            (Value::Object(a), Value::Object(b)) => {
                for (key, left) in a {
                    self.path.push(Segment::Key(key));
                    match b.get(key) {
                        Some(right) => self.value(left, right),
                        None => self.report(ChangeKind::Removed, Some(left), None),
                    }
                    self.path.pop();
                }
                for (key, right) in b {
                    if !a.contains_key(key) {
                        self.path.push(Segment::Key(key));
                        self.report(ChangeKind::Added, None, Some(right));
                        self.path.pop();
                    }
                }
            }
            (Value::Array(a), Value::Array(b)) => {
                if self.unordered_here() {
                    self.unordered(a, b);
                } else {
                    self.ordered(a, b);
                }
            }
            (Value::Number(a), Value::Number(b)) => {
                if !numbers_equal(a, b, self.rules.numeric_tolerance) {
                    self.report(ChangeKind::Changed, Some(primary), Some(shadow));
                }
            }
            (Value::String(a), Value::String(b)) if a != b => {
                self.report(ChangeKind::Changed, Some(primary), Some(shadow))
            }
            (Value::Bool(a), Value::Bool(b)) if a != b => {
                self.report(ChangeKind::Changed, Some(primary), Some(shadow))
            }
            (Value::String(_), Value::String(_))
            | (Value::Bool(_), Value::Bool(_))
            | (Value::Null, Value::Null) => {}
            _ => self.report(ChangeKind::TypeChanged, Some(primary), Some(shadow)),
        }
    }

    fn unordered_here(&self) -> bool {
        self.rules.unordered_arrays
            || self
                .rules
                .unordered_paths
                .iter()
                .any(|p| p.matches(&self.path))
    }

    fn ordered(&mut self, a: &'v [Value], b: &'v [Value]) {
        if a.len() != b.len() {
            self.report_length(a.len(), b.len());
        }
        for (index, (left, right)) in a.iter().zip(b).enumerate() {
            self.path.push(Segment::Index(index));
            self.value(left, right);
            self.path.pop();
        }
        for (index, left) in a.iter().enumerate().skip(b.len()) {
            self.path.push(Segment::Index(index));
            self.report(ChangeKind::Removed, Some(left), None);
            self.path.pop();
        }
        for (index, right) in b.iter().enumerate().skip(a.len()) {
            self.path.push(Segment::Index(index));
            self.report(ChangeKind::Added, None, Some(right));
            self.path.pop();
        }
    }

    /// Multiset comparison: elements are matched by their canonical text (ignore rules
    /// applied inside them); unmatched ones are reported as removed/added at their index.
    fn unordered(&mut self, a: &'v [Value], b: &'v [Value]) {
        let mut unmatched: HashMap<String, Vec<usize>> = HashMap::new();
        // Listed last to first, so `pop` matches the k-th copy of a value on one side with
        // the k-th on the other, and a surplus copy has the same index both ways round.
        for (index, right) in b.iter().enumerate().rev() {
            self.path.push(Segment::Index(index));
            let key = self.canonical(right);
            self.path.pop();
            unmatched.entry(key).or_default().push(index);
        }
        let mut removed = Vec::new();
        for (index, left) in a.iter().enumerate() {
            self.path.push(Segment::Index(index));
            let key = self.canonical(left);
            self.path.pop();
            match unmatched.get_mut(&key).and_then(Vec::pop) {
                Some(_) => {}
                None => removed.push(index),
            }
        }
        let mut added: Vec<usize> = unmatched.into_values().flatten().collect();
        added.sort_unstable();
        if a.len() != b.len() {
            self.report_length(a.len(), b.len());
        }
        for index in removed {
            self.path.push(Segment::Index(index));
            self.report(ChangeKind::Removed, Some(&a[index]), None);
            self.path.pop();
        }
        for index in added {
            self.path.push(Segment::Index(index));
            self.report(ChangeKind::Added, None, Some(&b[index]));
            self.path.pop();
        }
    }

    /// Canonical text of a value: object keys sorted (serde_json's map is ordered), ignored
    /// paths blanked, nested unordered arrays sorted.
    fn canonical(&mut self, value: &'v Value) -> String {
        let mut out = String::new();
        self.canonical_into(value, &mut out);
        out
    }

    fn canonical_into(&mut self, value: &'v Value, out: &mut String) {
        if self.ignored() {
            out.push('_');
            return;
        }
        match value {
            Value::Object(map) => {
                out.push('{');
                for (key, item) in map {
                    let _ = write!(out, "{key:?}:");
                    self.path.push(Segment::Key(key));
                    self.canonical_into(item, out);
                    self.path.pop();
                    out.push(',');
                }
                out.push('}');
            }
            Value::Array(items) => {
                let mut parts: Vec<String> = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    self.path.push(Segment::Index(index));
                    let mut part = String::new();
                    self.canonical_into(item, &mut part);
                    self.path.pop();
                    parts.push(part);
                }
                if self.unordered_here() {
                    parts.sort_unstable();
                }
                out.push('[');
                out.push_str(&parts.join(","));
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }

    fn report_length(&mut self, primary: usize, shadow: usize) {
        if self.full() {
            return;
        }
        let (pointer, field) = self.pointer();
        self.changes.push(JsonChange {
            pointer,
            field,
            kind: ChangeKind::LengthChanged,
            primary: Some(primary.to_string()),
            shadow: Some(shadow.to_string()),
        });
    }

    fn report(&mut self, kind: ChangeKind, primary: Option<&Value>, shadow: Option<&Value>) {
        if self.full() || self.ignored() {
            return;
        }
        let (pointer, field) = self.pointer();
        self.changes.push(JsonChange {
            pointer,
            field,
            kind,
            primary: primary.map(short_text),
            shadow: shadow.map(short_text),
        });
    }

    fn pointer(&self) -> (String, String) {
        let mut pointer = String::new();
        let mut field = String::new();
        for segment in &self.path {
            pointer.push('/');
            field.push('/');
            match segment {
                Segment::Key(key) => {
                    let escaped = escape(key);
                    pointer.push_str(&escaped);
                    field.push_str(&escaped);
                }
                Segment::Index(index) => {
                    let _ = write!(pointer, "{index}");
                    field.push('*');
                }
            }
        }
        (pointer, field)
    }
}

/// Whether two numbers are equal within `tolerance`. Integers are compared exactly: as
/// `f64` (53-bit mantissa) two 64-bit ids or nanosecond timestamps that differ in their low
/// digits round to the same value and would look equal.
fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number, tolerance: f64) -> bool {
    if a == b {
        return true;
    }
    let integer = |n: &serde_json::Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    if let (Some(x), Some(y)) = (integer(a), integer(b)) {
        return tolerance > 0.0 && (x - y).unsigned_abs() as f64 <= tolerance;
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= tolerance,
        _ => false,
    }
}

fn escape(key: &str) -> String {
    if key.contains(['~', '/']) {
        key.replace('~', "~0").replace('/', "~1")
    } else {
        key.to_string()
    }
}

/// Compact JSON, cut at [`MAX_VALUE_TEXT`] characters.
fn short_text(value: &Value) -> String {
    let text = value.to_string();
    if text.len() <= MAX_VALUE_TEXT {
        return text;
    }
    let mut end = MAX_VALUE_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
