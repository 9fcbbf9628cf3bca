//! The recording format: one HAR 1.2 `entry` per line (JSON Lines), so any HAR tool reads a
//! recording, and a browser's `.har` export (`log.entries`) reads as a recording.
//!
//! Only the fields a replay needs are typed; a browser's extra fields are ignored on reading.
//! Fields HAR requires but a proxy cannot know (cookies parsed apart, header sizes) are
//! written empty or `-1`, as the spec allows. Bodies are kept as captured (still
//! content-encoded): UTF-8 as text, anything else base64 (`encoding: "base64"`).

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// One recorded exchange: a HAR 1.2 `entry`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// When the request started, RFC 3339 in UTC.
    pub started_date_time: String,
    /// The whole exchange in milliseconds (HAR: the sum of the timings).
    #[serde(default)]
    pub time: f64,
    /// What the client sent.
    pub request: Request,
    /// What the primary answered.
    pub response: Response,
    /// Required by HAR, never used here.
    #[serde(default)]
    pub cache: Cache,
    /// Where the time went, in milliseconds.
    #[serde(default)]
    pub timings: Timings,
    /// shadowtap's own fields (HAR's `_` prefix for custom fields); absent in a browser's HAR.
    #[serde(
        rename = "_shadowtap",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub shadowtap: Option<Extra>,
}

/// What shadowtap adds to an entry it recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extra {
    /// The route label the request matched (a template or the route's name).
    pub route: String,
    /// The response body was cut at the recording's cap.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub response_truncated: bool,
}

/// HAR `request`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// Request method.
    pub method: String,
    /// The absolute URL (a proxy's recording: `http://HOST/path?query` from the Host field).
    pub url: String,
    /// `HTTP/1.1`, `HTTP/2`, ...
    #[serde(default)]
    pub http_version: String,
    /// Required by HAR; cookies stay in the `cookie` header field.
    #[serde(default)]
    pub cookies: Vec<serde_json::Value>,
    /// Header fields in order, repeated names repeated.
    #[serde(default)]
    pub headers: Vec<Header>,
    /// The query's `{name, value}` pairs as written in `url` (which keeps the query too).
    #[serde(default)]
    pub query_string: Vec<serde_json::Value>,
    /// The body, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_data: Option<PostData>,
    /// Unknown: `-1`.
    #[serde(default = "unknown")]
    pub headers_size: i64,
    /// Body bytes, `-1` when unknown.
    #[serde(default = "unknown")]
    pub body_size: i64,
}

/// HAR `response`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase (may be empty).
    #[serde(default)]
    pub status_text: String,
    /// `HTTP/1.1`, `HTTP/2`, ...
    #[serde(default)]
    pub http_version: String,
    /// Required by HAR; cookies stay in the `set-cookie` header fields.
    #[serde(default)]
    pub cookies: Vec<serde_json::Value>,
    /// Header fields in order.
    #[serde(default)]
    pub headers: Vec<Header>,
    /// The body.
    #[serde(default)]
    pub content: Content,
    /// Required by HAR.
    #[serde(default, rename = "redirectURL")]
    pub redirect_url: String,
    /// Unknown: `-1`.
    #[serde(default = "unknown")]
    pub headers_size: i64,
    /// Body bytes as received, `-1` when unknown.
    #[serde(default = "unknown")]
    pub body_size: i64,
}

/// A header field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Field name as received.
    pub name: String,
    /// Field value (lossy UTF-8).
    pub value: String,
}

/// HAR `postData`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostData {
    /// The request's content type.
    #[serde(default)]
    pub mime_type: String,
    /// The body: text, or base64 when `encoding` says so.
    #[serde(default)]
    pub text: String,
    /// `base64` for a body that is not UTF-8 (HAR 1.2 has it on `content`; kept alike here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

/// HAR `content`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    /// Body length.
    #[serde(default)]
    pub size: i64,
    /// The response's content type.
    #[serde(default)]
    pub mime_type: String,
    /// The body: text, or base64 when `encoding` says so; absent when not kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `base64` for a body that is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

/// HAR `cache`: always empty here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cache {}

/// HAR `timings`, in milliseconds (`-1` for a phase that does not apply).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Sending the request.
    #[serde(default = "unknown_f64")]
    pub send: f64,
    /// Waiting for the answer's first byte.
    #[serde(default = "unknown_f64")]
    pub wait: f64,
    /// Reading the answer.
    #[serde(default = "unknown_f64")]
    pub receive: f64,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            send: 0.0,
            wait: 0.0,
            receive: 0.0,
        }
    }
}

fn unknown() -> i64 {
    -1
}

fn unknown_f64() -> f64 {
    -1.0
}

/// A browser's export: `{"log": {"entries": [...]}}`.
#[derive(Debug, Deserialize)]
pub struct HarFile {
    /// The `log` object.
    pub log: HarLog,
}

/// HAR `log`: only its entries are read.
#[derive(Debug, Deserialize)]
pub struct HarLog {
    /// Every entry, each read on its own so one bad entry does not lose the rest.
    #[serde(default)]
    pub entries: Vec<serde_json::Value>,
}

/// A body as HAR keeps it: `(text, encoding)`, base64 when it is not UTF-8.
pub fn encode_body(body: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(body) {
        Ok(text) => (text.to_string(), None),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(body),
            Some("base64".to_string()),
        ),
    }
}

/// A HAR body back to bytes; `None` when it says base64 but is not.
pub fn decode_body(text: &str, encoding: Option<&str>) -> Option<Vec<u8>> {
    match encoding {
        Some(encoding) if encoding.eq_ignore_ascii_case("base64") => {
            base64::engine::general_purpose::STANDARD.decode(text).ok()
        }
        _ => Some(text.as_bytes().to_vec()),
    }
}

/// `startedDateTime` of a time (UTC, milliseconds).
pub fn format_time(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// A `startedDateTime` back to a time: RFC 3339 with `Z` or a numeric offset (browsers
/// write either). `None` when it does not parse.
pub fn parse_time(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    if let Some(utc) = text.strip_suffix('Z').or_else(|| text.strip_suffix('z')) {
        return humantime::parse_rfc3339_weak(utc).ok();
    }
    // `...+HH:MM` or `...-HH:MM`: the offset is the last six characters.
    let split = text.len().checked_sub(6)?;
    let (local, offset) = (text.get(..split)?, text.get(split..)?);
    let sign = match offset.as_bytes().first()? {
        b'+' => 1i64,
        b'-' => -1i64,
        _ => return humantime::parse_rfc3339_weak(text).ok(),
    };
    let hours: i64 = offset.get(1..3)?.parse().ok()?;
    let minutes: i64 = offset.get(4..6)?.parse().ok()?;
    let local = humantime::parse_rfc3339_weak(local).ok()?;
    let shift = std::time::Duration::from_secs(((hours * 60 + minutes) * 60).unsigned_abs());
    // Local time = UTC + offset, so UTC = local - offset.
    if sign > 0 {
        local.checked_sub(shift)
    } else {
        local.checked_add(shift)
    }
}

impl Entry {
    /// When the request started; `None` when `startedDateTime` does not parse.
    pub fn started(&self) -> Option<SystemTime> {
        parse_time(&self.started_date_time)
    }

    /// The request body's bytes (empty when there is none or it does not decode).
    pub fn request_body(&self) -> Vec<u8> {
        self.request
            .post_data
            .as_ref()
            .and_then(|data| decode_body(&data.text, data.encoding.as_deref()))
            .unwrap_or_default()
    }

    /// The response body's bytes (empty when not kept or it does not decode).
    pub fn response_body(&self) -> Vec<u8> {
        let content = &self.response.content;
        content
            .text
            .as_deref()
            .and_then(|text| decode_body(text, content.encoding.as_deref()))
            .unwrap_or_default()
    }

    /// The request's path and query, from its URL (`/` when the URL has none).
    pub fn path_and_query(&self) -> String {
        let url = self.request.url.as_str();
        let after_scheme = url
            .find("://")
            .map_or(url, |at| url.get(at + 3..).unwrap_or_default());
        let found = match after_scheme.find('/') {
            Some(at) if url.contains("://") => after_scheme.get(at..).unwrap_or("/"),
            _ if url.starts_with('/') => url,
            _ => "/",
        };
        // A fragment never goes on the wire.
        found.split('#').next().unwrap_or("/").to_string()
    }

    /// The request's path alone.
    pub fn path(&self) -> String {
        let path_and_query = self.path_and_query();
        match path_and_query.split_once('?') {
            Some((path, _)) => path.to_string(),
            None => path_and_query,
        }
    }
}
