//! Comparison: a (primary, shadow) pair -> the list of differences, pure and off the live path.
//!
//! Status is compared exactly; headers by name with volatile ones ignored; bodies by media
//! type after `Content-Encoding` is undone: JSON structurally ([`json`]), text line by line
//! ([`text`]), anything else by length and hash. Which differences are *noise* is decided
//! afterwards by [`noise`].
//!
//! | module | role |
//! |---|---|
//! | [`json`] | structural JSON diff with pointers, ignores, unordered arrays, tolerance |
//! | [`text`] | line diff with a unified excerpt |
//! | [`headers`] | header diff with the ignore list |
//! | [`decode`] | gzip / deflate / br with a decoded-size cap |
//! | [`noise`] | secondary-based and learned noise |

pub mod decode;
pub mod headers;
pub mod json;
pub mod noise;
pub mod text;

use crate::shadow::fields::Fields;
use crate::shadow::pair::CapturedResponse;
use bytes::Bytes;
use serde::Serialize;

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
}

impl DiffKind {
    /// Every kind, in label order.
    pub const ALL: [DiffKind; 3] = [DiffKind::Status, DiffKind::Header, DiffKind::Body];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DiffKind::Status => "status",
            DiffKind::Header => "header",
            DiffKind::Body => "body",
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
    /// `text_changed`, `bytes_changed`, `invalid_json`.
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
}

/// Why a body was not compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BodySkip {
    /// One side's body passed the capture cap; only a prefix was kept.
    Truncated,
    /// One side's body did not fit `mirror.max_buffered_bytes` and was not kept.
    MemoryBudget,
    /// Decoding passed `max_decoded_bytes`.
    DecompressionBomb,
    /// One side's `Content-Encoding` could not be decoded.
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
    /// Set when the bodies were not compared, and why.
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
    if essence == "application/json" || essence.ends_with("+json") {
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
    for change in headers::diff_fields(&primary.headers, &shadow.headers, &rules.ignored_headers) {
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
    let body_skipped = compare_bodies(primary, shadow, rules, &mut differences, &mut documents);
    Comparison {
        differences,
        body_skipped,
        documents,
    }
}

fn compare_bodies(
    primary: &CapturedResponse,
    shadow: &CapturedResponse,
    rules: &CompareRules,
    differences: &mut Vec<Difference>,
    documents: &mut Option<(serde_json::Value, serde_json::Value)>,
) -> Option<BodySkip> {
    if primary.over_budget || shadow.over_budget {
        return Some(BodySkip::MemoryBudget);
    }
    if primary.truncated || shadow.truncated {
        return Some(BodySkip::Truncated);
    }
    let decoded = |response: &CapturedResponse| {
        decode::decode(&response.headers, &response.body, rules.max_decoded_bytes)
    };
    let (left, right) = match (decoded(primary), decoded(shadow)) {
        (Ok(left), Ok(right)) => (left, right),
        (Err(decode::DecodeError::TooLarge), _) | (_, Err(decode::DecodeError::TooLarge)) => {
            return Some(BodySkip::DecompressionBomb)
        }
        _ => return Some(BodySkip::Corrupt),
    };
    if left == right {
        return None;
    }
    let kind = match (media(&primary.headers), media(&shadow.headers)) {
        (Media::Json, _) | (_, Media::Json) => Media::Json,
        (Media::Text, _) | (_, Media::Text) => Media::Text,
        _ => Media::Binary,
    };
    match kind {
        Media::Json => *documents = compare_json(&left, &right, rules, differences),
        Media::Text => compare_text(&left, &right, differences),
        Media::Binary => differences.push(body_difference(
            "bytes_changed",
            Some(describe_bytes(&left)),
            Some(describe_bytes(&right)),
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
            for change in json::diff(&a, &b, &rules.json) {
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

/// `1234 bytes, fnv1a 0123abcd…`: enough to tell two blobs apart in a report.
fn describe_bytes(bytes: &Bytes) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes.iter() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{} bytes, fnv1a {hash:016x}", bytes.len())
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
