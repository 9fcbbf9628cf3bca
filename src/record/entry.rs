//! One captured exchange (the request as sent to the primary, the primary's answer) made
//! into a HAR entry, with the comparison's redaction applied before anything leaves memory.

use super::har::{self, Content, Entry, Extra, Header, PostData, Request, Response, Timings};
use crate::message::fields::Fields;
use crate::message::pair::{CapturedRequest, CapturedResponse};
use crate::report::samples::{Redactor, REDACTED};
use bytes::Bytes;
use http::Version;
use std::time::SystemTime;

/// Body caps of a recording.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Request body bytes kept.
    pub request: usize,
    /// Response body bytes kept.
    pub response: usize,
}

/// A captured exchange, ready to be written.
pub struct Exchange<'a> {
    /// The route's name.
    pub route: &'a str,
    /// The request as the primary got it.
    pub request: &'a CapturedRequest,
    /// The primary's answer.
    pub response: &'a CapturedResponse,
    /// When the request started.
    pub started: SystemTime,
}

/// HAR's `queryString`: the target's `name=value` pairs in order, as written in the URL
/// (HAR tools list them from here, not from `url`).
fn query_string(target: &str) -> Vec<serde_json::Value> {
    let Some((_, query)) = target.split_once('?') else {
        return Vec::new();
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            serde_json::json!({ "name": name, "value": value })
        })
        .collect()
}

/// The exchange as a HAR entry, secrets replaced.
pub fn build(exchange: &Exchange<'_>, redactor: &Redactor, caps: Caps) -> Entry {
    let request = exchange.request;
    let response = exchange.response;
    let host = request
        .headers
        .get("host")
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    // Whole: a request over the cap is never submitted (`Recorder::submit`).
    let (request_text, request_encoding, _) = body(redactor, &request.body, caps.request);
    let (response_text, response_encoding, cut) = body(redactor, &response.body, caps.response);
    let wait = response.latency.as_secs_f64() * 1000.0;
    Entry {
        started_date_time: har::format_time(exchange.started),
        time: wait,
        request: Request {
            method: request.method.as_str().to_string(),
            url: format!(
                "{}://{host}{}",
                scheme(&request.headers),
                request.path_and_query
            ),
            http_version: version_text(request.version).to_string(),
            cookies: Vec::new(),
            headers: headers(redactor, &request.headers),
            query_string: query_string(&request.path_and_query),
            post_data: (!request.body.is_empty()).then(|| PostData {
                mime_type: content_type(&request.headers),
                text: request_text,
                encoding: request_encoding,
            }),
            headers_size: -1,
            body_size: i64::try_from(request.body.len()).unwrap_or(-1),
        },
        response: Response {
            status: response.status.as_u16(),
            status_text: response
                .status
                .canonical_reason()
                .unwrap_or_default()
                .to_string(),
            // The answer the client got, in the protocol it asked in (as browsers write it).
            http_version: version_text(request.version).to_string(),
            cookies: Vec::new(),
            headers: headers(redactor, &response.headers),
            content: Content {
                size: i64::try_from(response.body.len()).unwrap_or(-1),
                mime_type: content_type(&response.headers),
                text: Some(response_text),
                encoding: response_encoding,
            },
            redirect_url: String::new(),
            headers_size: -1,
            body_size: i64::try_from(response.body.len()).unwrap_or(-1),
        },
        cache: Default::default(),
        timings: Timings {
            send: 0.0,
            wait,
            receive: 0.0,
        },
        shadowtap: Some(Extra {
            route: exchange.route.to_string(),
            response_truncated: cut || response.truncated,
        }),
    }
}

/// HAR's `httpVersion` for the protocol the client spoke.
fn version_text(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// The scheme the client used, as the request sent to the primary says it: shadowtap sets
/// `X-Forwarded-Proto` (or keeps a trusted one), so a TLS listener's requests read `https`.
fn scheme(fields: &Fields) -> &'static str {
    let proto = fields.get("x-forwarded-proto").unwrap_or_default();
    let first = proto.split(|b| *b == b',').next().unwrap_or_default();
    if first.trim_ascii().eq_ignore_ascii_case(b"https") {
        "https"
    } else {
        "http"
    }
}

fn headers(redactor: &Redactor, fields: &Fields) -> Vec<Header> {
    fields
        .iter()
        .map(|(name, value)| {
            let name = String::from_utf8_lossy(name).into_owned();
            let value = if redactor.headers.contains(&name.to_ascii_lowercase()) {
                REDACTED.to_string()
            } else {
                String::from_utf8_lossy(value).into_owned()
            };
            Header { name, value }
        })
        .collect()
}

fn content_type(fields: &Fields) -> String {
    fields
        .get("content-type")
        .map(|value| String::from_utf8_lossy(value).into_owned())
        .unwrap_or_default()
}

/// A body as written: with no pointers to redact, its bytes (up to the cap) as text or
/// base64; with pointers, the redacted JSON (or the withheld marker: a body the rules cannot
/// be applied to is never written raw). The flag says it was cut.
fn body(redactor: &Redactor, body: &Bytes, cap: usize) -> (String, Option<String>, bool) {
    if redactor.pointers.is_empty() {
        let kept = body.get(..cap.min(body.len())).unwrap_or_default();
        let (text, encoding) = har::encode_body(kept);
        (text, encoding, kept.len() < body.len())
    } else {
        let (text, cut) = redactor.body(body, cap);
        (text, None, cut)
    }
}

#[cfg(test)]
mod tests {
    use super::query_string;
    use serde_json::json;

    #[test]
    fn query_string_lists_the_pairs_as_written() {
        assert!(query_string("/items/1").is_empty());
        assert!(query_string("/items/1?").is_empty());
        assert_eq!(
            query_string("/search?q=a%20b&flag&&x=1=2"),
            vec![
                json!({"name": "q", "value": "a%20b"}),
                json!({"name": "flag", "value": ""}),
                json!({"name": "x", "value": "1=2"}),
            ]
        );
    }
}
