//! Comparison: a (primary, shadow) pair -> the list of differences, pure and off the live path.
//!
//! Status is compared exactly; headers by name with volatile ones ignored; bodies by media
//! type after `Content-Encoding` is undone: JSON structurally ([`json`]), text line by line
//! ([`text`]), anything else by length and hash. A body too large to keep is compared by the
//! length and hash of its bytes as sent ([`crate::digest`]), which says something only when
//! both sides applied the same `Content-Encoding`. A body that only one side can decode
//! differs; a pair whose bodies cannot be judged at all is reported as such
//! ([`Comparison::body_skipped`]), never as a match. Which differences are *noise* is
//! decided afterwards by [`noise`]; a route's latency rule is judged apart
//! ([`judge_latency`]), as it is never noise.
//!
//! The body decision, per side: *kept* (decodes, is corrupt, or decodes past the cap),
//! *digested* (too large to keep, seen whole) or *unknown*:
//!
//! | primary \ shadow | kept | digested | unknown |
//! |---|---|---|---|
//! | **kept** | equal bytes and codings: same; both decode: compared by media type; one decodes: `undecodable`; neither: unjudged | same codings: length and hash; else unjudged | unjudged |
//! | **digested** | same codings: length and hash; else unjudged | same codings: length and hash; else unjudged | unjudged |
//! | **unknown** | unjudged | unjudged | unjudged |
//!
//! A shadow's answer past the cap is read only while that can settle its verdict: once it
//! is longer than the primary's whole body it is *longer* (cut short), which differs from
//! any body of a known length it passed (same codings), and is unjudged otherwise.
//!
//! | module | role |
//! |---|---|
//! | [`json`] | structural JSON diff with pointers, ignores, unordered arrays, tolerance |
//! | [`text`] | line diff with a unified excerpt |
//! | [`headers`] | header diff with the ignore list |
//! | [`decode`] | gzip / deflate / br with a decoded-size cap |
//! | [`grpc`] | gRPC answers: `grpc-status` as a status, messages split and decoded for the JSON diff |
//! | [`protobuf`] | protobuf messages as JSON-diffable trees: by field name with a descriptor set, by field number without |
//! | [`noise`] | secondary-based and learned noise |

pub mod decode;
pub mod grpc;
pub mod headers;
pub mod json;
pub mod noise;
pub mod pins;
pub mod protobuf;
pub mod text;

use crate::digest::BodyDigest;
use crate::message::fields::Fields;
use crate::message::pair::CapturedResponse;
use bytes::Bytes;
use serde::Serialize;
use std::time::Duration;

/// Which part of the response differs (the `kind` label of `shadowtap_divergences_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiffKind {
    /// The status code.
    Status,
    /// A header.
    Header,
    /// The body.
    Body,
    /// The shadow was slower than the route's latency rule allows.
    Latency,
}

impl DiffKind {
    /// Every kind, in label order.
    pub const ALL: [DiffKind; 4] = [
        DiffKind::Status,
        DiffKind::Header,
        DiffKind::Body,
        DiffKind::Latency,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DiffKind::Status => "status",
            DiffKind::Header => "header",
            DiffKind::Body => "body",
            DiffKind::Latency => "latency",
        }
    }
}

/// One difference between the two answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// Status, header or body.
    pub kind: DiffKind,
    /// Where: a JSON Pointer for JSON bodies, the header name, `""` for status and whole bodies.
    pub path: String,
    /// The field across array elements (`/items/*/price`), used for noise and top fields.
    pub field: String,
    /// What happened: `changed`, `added`, `removed`, `type_changed`, `length_changed`,
    /// `text_changed`, `bytes_changed`, `invalid_json`, `undecodable` (only one side's
    /// `Content-Encoding` could be undone), `slower` (a latency rule was breached).
    pub change: &'static str,
    /// The primary's side, shortened.
    pub primary: Option<String>,
    /// The shadow's side, shortened.
    pub shadow: Option<String>,
    /// A unified diff excerpt for text bodies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
    /// Set by noise classification: why this difference is noise, if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise: Option<noise::NoiseReason>,
}

/// How a route's pairs are compared.
#[derive(Debug, Clone, Default)]
pub struct CompareRules {
    /// Header names not compared.
    pub ignored_headers: headers::NameSet,
    /// JSON rules.
    pub json: json::JsonRules,
    /// Decoded bodies larger than this are not compared (a decompression bomb).
    pub max_decoded_bytes: usize,
    /// The route's latency rule, if it has one.
    pub latency: Option<LatencyRule>,
    /// The route's protobuf descriptor set: gRPC messages compared by field name (by
    /// field number without one).
    pub protobuf: Option<protobuf::Schema>,
}

/// How much slower than the primary a shadow may answer: breached when the shadow's latency
/// exceeds the primary's by more than `max_delta`, or is more than `max_ratio` times it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencyRule {
    /// Largest allowed shadow latency minus primary latency.
    pub max_delta: Option<Duration>,
    /// Largest allowed shadow latency over primary latency.
    pub max_ratio: Option<f64>,
}

/// Why a body was not compared (the pair's result is then `unjudged` unless something else
/// differs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BodySkip {
    /// A body passed the capture cap and could not be compared by its digest (the two sides'
    /// `Content-Encoding` differ, or it was not seen whole).
    Truncated,
    /// As `Truncated`, for a body that did not fit `mirror.max_buffered_bytes`.
    MemoryBudget,
    /// Neither body could be decoded, and one of them passed `max_decoded_bytes`.
    DecompressionBomb,
    /// Neither body could be decoded, and one of them is corrupt for its `Content-Encoding`.
    Corrupt,
}

impl BodySkip {
    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            BodySkip::Truncated => "body_truncated",
            BodySkip::MemoryBudget => "memory_budget",
            BodySkip::DecompressionBomb => "decompression_bomb",
            BodySkip::Corrupt => "corrupt_encoding",
        }
    }
}

/// The outcome of comparing two answers.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// Every difference found, status first, then headers, then body.
    pub differences: Vec<Difference>,
    /// Set when the bodies could not be judged, and why.
    pub body_skipped: Option<BodySkip>,
    /// Both bodies as parsed JSON (primary, shadow), when they differed and were parsed:
    /// noise learning reads which fields a pair carried from them.
    pub documents: Option<(serde_json::Value, serde_json::Value)>,
}

/// The media family that decides how a body is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    Json,
    Text,
    Binary,
    Grpc,
}

fn media(headers: &Fields) -> Media {
    let Some(value) = headers
        .get("content-type")
        .and_then(|v| std::str::from_utf8(v).ok())
    else {
        return Media::Binary;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence.starts_with("application/grpc") {
        Media::Grpc
    } else if essence == "application/json" || essence.ends_with("+json") {
        Media::Json
    } else if essence.starts_with("text/")
        || essence.ends_with("+xml")
        || matches!(
            essence.as_str(),
            "application/xml" | "application/javascript" | "application/x-www-form-urlencoded"
        )
    {
        Media::Text
    } else {
        Media::Binary
    }
}

/// Compares two answers under `rules`.
pub fn compare(
    primary: &CapturedResponse,
    shadow: &CapturedResponse,
    rules: &CompareRules,
) -> Comparison {
    compare_call(primary, shadow, rules, "")
}

/// Compares two answers to a request for `path` under `rules`: the path names a gRPC
/// call's method, whose response type the route's descriptor set gives.
pub fn compare_call(
    primary: &CapturedResponse,
    shadow: &CapturedResponse,
    rules: &CompareRules,
    path: &str,
) -> Comparison {
    let mut differences = Vec::new();
    if primary.status != shadow.status {
        differences.push(Difference {
            kind: DiffKind::Status,
            path: String::new(),
            field: String::new(),
            change: "changed",
            primary: Some(primary.status.as_u16().to_string()),
            shadow: Some(shadow.status.as_u16().to_string()),
            excerpt: None,
            noise: None,
        });
    }
    let call = grpc::is_grpc(&primary.headers) || grpc::is_grpc(&shadow.headers);
    if call {
        let (a, b) = (
            grpc::status_text(&primary.headers),
            grpc::status_text(&shadow.headers),
        );
        if a != b {
            differences.push(Difference {
                kind: DiffKind::Status,
                path: grpc::STATUS_FIELD.to_string(),
                field: grpc::STATUS_FIELD.to_string(),
                change: "changed",
                primary: Some(a),
                shadow: Some(b),
                excerpt: None,
                noise: None,
            });
        }
    }
    for change in headers::diff_fields(&primary.headers, &shadow.headers, &rules.ignored_headers) {
        if call && change.name == grpc::STATUS_FIELD {
            continue;
        }
        differences.push(Difference {
            kind: DiffKind::Header,
            field: change.name.clone(),
            path: change.name,
            change: match (&change.primary, &change.shadow) {
                (Some(_), None) => "removed",
                (None, Some(_)) => "added",
                _ => "changed",
            },
            primary: change.primary,
            shadow: change.shadow,
            excerpt: None,
            noise: None,
        });
    }
    let mut documents = None;
    let body_skipped = compare_bodies(
        (primary, shadow),
        rules,
        path,
        &mut differences,
        &mut documents,
    );
    Comparison {
        differences,
        body_skipped,
        documents,
    }
}

/// What is known of one side's body.
#[derive(Debug, Clone, Copy)]
enum Known<'a> {
    /// Kept whole.
    Kept(&'a Bytes),
    /// Not kept (why), seen whole: its length and hash.
    Digested(BodyDigest, BodySkip),
    /// Not kept (why), and not read past this many bytes: it is longer.
    Longer(u64, BodySkip),
    /// Neither kept nor seen whole.
    Unknown(BodySkip),
}

impl Known<'_> {
    fn of(response: &CapturedResponse) -> Known<'_> {
        let why = match response.over_budget {
            true => BodySkip::MemoryBudget,
            false => BodySkip::Truncated,
        };
        match (response.truncated || response.over_budget, response.digest) {
            (false, _) => Known::Kept(&response.body),
            (true, Some(digest)) if response.cut_short => Known::Longer(digest.len, why),
            (true, Some(digest)) => Known::Digested(digest, why),
            (true, None) => Known::Unknown(why),
        }
    }

    /// The whole body's digest, when it is known.
    fn digest(self) -> Option<BodyDigest> {
        match self {
            Known::Kept(body) => Some(BodyDigest::of(body)),
            Known::Digested(digest, _) => Some(digest),
            Known::Longer(..) | Known::Unknown(_) => None,
        }
    }
}

/// Bodies too large to keep, one of them at least, with the same codings: length, then hash.
fn compare_digests(
    p: Known<'_>,
    s: Known<'_>,
    differences: &mut Vec<Difference>,
) -> Option<BodySkip> {
    let longer = |len: u64| format!("more than {len} bytes (read no further)");
    let (primary, shadow) = match (p, s) {
        (Known::Longer(_, why), Known::Longer(..)) => return Some(why),
        (Known::Longer(len, why), other) => match other.digest() {
            Some(known) if known.len <= len => (longer(len), known.to_string()),
            _ => return Some(why),
        },
        (other, Known::Longer(len, why)) => match other.digest() {
            Some(known) if known.len <= len => (known.to_string(), longer(len)),
            _ => return Some(why),
        },
        _ => match (p.digest(), s.digest()) {
            (Some(a), Some(b)) if a != b => (a.to_string(), b.to_string()),
            _ => return None,
        },
    };
    differences.push(body_difference(
        "bytes_changed",
        Some(primary),
        Some(shadow),
    ));
    None
}

/// The body decision (the table in the module docs): differences are pushed, and the reason
/// is returned when the bodies cannot be judged.
fn compare_bodies(
    (primary, shadow): (&CapturedResponse, &CapturedResponse),
    rules: &CompareRules,
    path: &str,
    differences: &mut Vec<Difference>,
    documents: &mut Option<(serde_json::Value, serde_json::Value)>,
) -> Option<BodySkip> {
    let (p, s) = (Known::of(primary), Known::of(shadow));
    let same_codings = decode::codings(&primary.headers) == decode::codings(&shadow.headers);
    let (left, right) = match (p, s) {
        (Known::Unknown(why), _) | (_, Known::Unknown(why)) => return Some(why),
        (Known::Kept(left), Known::Kept(right)) => (left, right),
        (Known::Digested(_, why) | Known::Longer(_, why), _)
        | (_, Known::Digested(_, why) | Known::Longer(_, why))
            if !same_codings =>
        {
            return Some(why)
        }
        // Equal codings: equal content is equal bytes, so length and hash decide.
        _ => return compare_digests(p, s, differences),
    };
    if same_codings && left == right {
        return None;
    }
    let decoded = |response: &CapturedResponse| {
        decode::decode(&response.headers, &response.body, rules.max_decoded_bytes)
    };
    let (left, right) = match (decoded(primary), decoded(shadow)) {
        (Ok(left), Ok(right)) => (left, right),
        (Ok(left), Err(error)) => {
            differences.push(body_difference(
                "undecodable",
                Some(format!("{} bytes decoded", left.len())),
                Some(undecodable(error, shadow, rules)),
            ));
            return None;
        }
        (Err(error), Ok(right)) => {
            differences.push(body_difference(
                "undecodable",
                Some(undecodable(error, primary, rules)),
                Some(format!("{} bytes decoded", right.len())),
            ));
            return None;
        }
        (Err(decode::DecodeError::Corrupt), Err(_))
        | (Err(_), Err(decode::DecodeError::Corrupt)) => return Some(BodySkip::Corrupt),
        (Err(_), Err(_)) => return Some(BodySkip::DecompressionBomb),
    };
    if left == right {
        return None;
    }
    let kind = match (media(&primary.headers), media(&shadow.headers)) {
        (Media::Grpc, _) | (_, Media::Grpc) => Media::Grpc,
        (Media::Json, _) | (_, Media::Json) => Media::Json,
        (Media::Text, _) | (_, Media::Text) => Media::Text,
        _ => Media::Binary,
    };
    match kind {
        Media::Json => *documents = compare_json(&left, &right, rules, differences),
        Media::Grpc => {
            let sides = [(&left, primary), (&right, shadow)];
            *documents = compare_grpc(sides, rules, path, differences);
        }
        Media::Text => compare_text(&left, &right, differences),
        Media::Binary => differences.push(body_difference(
            "bytes_changed",
            Some(describe_bytes(&left)),
            Some(describe_bytes(&right)),
        )),
    }
    None
}

/// How a body that could not be decoded is shown.
fn undecodable(
    error: decode::DecodeError,
    response: &CapturedResponse,
    rules: &CompareRules,
) -> String {
    let codings = decode::codings(&response.headers).join(", ");
    match error {
        decode::DecodeError::Corrupt => format!(
            "{} bytes, not valid for Content-Encoding {codings}",
            response.body.len()
        ),
        decode::DecodeError::TooLarge => format!(
            "{} bytes, decode to more than max_decoded_bytes ({})",
            response.body.len(),
            rules.max_decoded_bytes
        ),
    }
}

/// The latency rule's verdict on one pair: a `latency` difference when the shadow was
/// slower than `rule` allows (either limit exceeded), `None` otherwise.
pub fn judge_latency(
    primary: Duration,
    shadow: Duration,
    rule: &LatencyRule,
) -> Option<Difference> {
    let delta = shadow.saturating_sub(primary);
    let mut breached = Vec::new();
    if let Some(max) = rule.max_delta.filter(|max| delta > *max) {
        breached.push(format!(
            "+{:.1} ms over max_delta {}",
            delta.as_secs_f64() * 1000.0,
            humantime::format_duration(max)
        ));
    }
    let ratio = shadow.as_secs_f64() / primary.as_secs_f64();
    if let Some(max) = rule
        .max_ratio
        .filter(|max| shadow.as_secs_f64() > primary.as_secs_f64() * max)
    {
        breached.push(format!("{ratio:.2}x over max_ratio {max}"));
    }
    if breached.is_empty() {
        return None;
    }
    let ms = |latency: Duration| format!("{:.1} ms", latency.as_secs_f64() * 1000.0);
    Some(Difference {
        kind: DiffKind::Latency,
        path: String::new(),
        field: "latency".to_string(),
        change: "slower",
        primary: Some(ms(primary)),
        shadow: Some(ms(shadow)),
        excerpt: Some(breached.join("; ")),
        noise: None,
    })
}

/// Returns the decoded documents when both sides' messages decoded (see [`grpc`]); a side
/// whose messages do not is `undecodable`, and both such sides are compared as bytes.
fn compare_grpc(
    [(left, primary), (right, shadow)]: [(&Bytes, &CapturedResponse); 2],
    rules: &CompareRules,
    path: &str,
    differences: &mut Vec<Difference>,
) -> Option<(serde_json::Value, serde_json::Value)> {
    let schema = rules.protobuf.as_ref();
    let document = |body: &Bytes, response: &CapturedResponse| {
        let compression = grpc::Compression::of(&response.headers, rules.max_decoded_bytes);
        grpc::document(body, schema, path, compression)
    };
    let decoded = (document(left, primary), document(right, shadow));
    let undecodable = |bytes: &Bytes| format!("not gRPC messages: {}", describe_bytes(bytes));
    match decoded {
        (Some(a), Some(b)) => {
            push_json_changes(&a, &b, rules, differences);
            return Some((a, b));
        }
        (Some(_), None) => differences.push(body_difference(
            "undecodable",
            Some("decoded".into()),
            Some(undecodable(right)),
        )),
        (None, Some(_)) => differences.push(body_difference(
            "undecodable",
            Some(undecodable(left)),
            Some("decoded".into()),
        )),
        (None, None) => differences.push(body_difference(
            "bytes_changed",
            Some(describe_bytes(left)),
            Some(describe_bytes(right)),
        )),
    }
    None
}

/// Returns the parsed documents when both sides were JSON.
fn compare_json(
    left: &Bytes,
    right: &Bytes,
    rules: &CompareRules,
    differences: &mut Vec<Difference>,
) -> Option<(serde_json::Value, serde_json::Value)> {
    let parsed = (
        serde_json::from_slice::<serde_json::Value>(left),
        serde_json::from_slice::<serde_json::Value>(right),
    );
    match parsed {
        (Ok(a), Ok(b)) => {
            push_json_changes(&a, &b, rules, differences);
            return Some((a, b));
        }
        (Ok(_), Err(_)) => differences.push(body_difference(
            "invalid_json",
            Some("valid JSON".into()),
            Some("invalid JSON".into()),
        )),
        (Err(_), Ok(_)) => differences.push(body_difference(
            "invalid_json",
            Some("invalid JSON".into()),
            Some("valid JSON".into()),
        )),
        (Err(_), Err(_)) => compare_text(left, right, differences),
    }
    None
}

/// The structural differences of two value trees, as body differences.
fn push_json_changes(
    a: &serde_json::Value,
    b: &serde_json::Value,
    rules: &CompareRules,
    differences: &mut Vec<Difference>,
) {
    for change in json::diff(a, b, &rules.json) {
        differences.push(Difference {
            kind: DiffKind::Body,
            path: change.pointer,
            field: change.field,
            change: match change.kind {
                json::ChangeKind::Added => "added",
                json::ChangeKind::Removed => "removed",
                json::ChangeKind::Changed => "changed",
                json::ChangeKind::TypeChanged => "type_changed",
                json::ChangeKind::LengthChanged => "length_changed",
            },
            primary: change.primary,
            shadow: change.shadow,
            excerpt: None,
            noise: None,
        });
    }
}

fn compare_text(left: &Bytes, right: &Bytes, differences: &mut Vec<Difference>) {
    let a = String::from_utf8_lossy(left);
    let b = String::from_utf8_lossy(right);
    if let Some(change) = text::diff(&a, &b) {
        let mut difference = body_difference(
            "text_changed",
            Some(format!("-{} lines", change.removed_lines)),
            Some(format!("+{} lines", change.added_lines)),
        );
        difference.excerpt = Some(change.excerpt);
        differences.push(difference);
    }
}

fn body_difference(
    change: &'static str,
    primary: Option<String>,
    shadow: Option<String>,
) -> Difference {
    Difference {
        kind: DiffKind::Body,
        path: String::new(),
        field: String::new(),
        change,
        primary,
        shadow,
        excerpt: None,
        noise: None,
    }
}

/// `1234 bytes, xxh3 0123abcd…`: enough to tell two blobs apart in a report, and the same
/// words as a digested body's.
fn describe_bytes(bytes: &Bytes) -> String {
    BodyDigest::of(bytes).to_string()
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
