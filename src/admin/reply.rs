//! Building admin answers, reading request bodies and query strings.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

/// An admin answer.
pub type Reply = Response<Full<Bytes>>;

/// Largest request body an admin endpoint reads (its JSON bodies are a few fields).
const MAX_BODY_BYTES: usize = 64 * 1024;

/// A plain-text answer.
pub fn text(status: StatusCode, body: &'static str) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A JSON answer with status 200.
pub fn json<T: serde::Serialize>(value: &T) -> Reply {
    json_status(StatusCode::OK, value)
}

/// A JSON answer without whitespace, for the large answers a page polls (the history): its
/// indentation would be most of its bytes.
pub fn json_compact<T: serde::Serialize>(value: &T) -> Reply {
    json_body(StatusCode::OK, serde_json::to_vec(value))
}

/// A JSON answer.
pub fn json_status<T: serde::Serialize>(status: StatusCode, value: &T) -> Reply {
    json_body(status, serde_json::to_vec_pretty(value))
}

fn json_body(status: StatusCode, rendered: serde_json::Result<Vec<u8>>) -> Reply {
    match rendered {
        Ok(body) => {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "cannot render JSON\n"),
    }
}

/// The failure shape every mutating endpoint answers with: `{"result": "failure",
/// "errors": ["<field or key>: <reason>", ...]}`.
pub fn failure(status: StatusCode, errors: Vec<String>) -> Reply {
    json_status(
        status,
        &serde_json::json!({ "result": "failure", "errors": errors }),
    )
}

/// 401 for a missing or wrong bearer token.
pub fn unauthorized() -> Reply {
    let mut response = text(
        StatusCode::UNAUTHORIZED,
        "unauthorized: send Authorization: Bearer <the token in admin.token_file>\n",
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// 403 for a browser's cross-site request to a mutating endpoint.
pub fn cross_site() -> Reply {
    text(
        StatusCode::FORBIDDEN,
        "forbidden: a cross-site request from a browser cannot change shadowtap; use the page at /ui/ on this port, shadowtap ctl or curl\n",
    )
}

/// A request refused for what it carries: the status, and one `field: reason` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 404, 413.
    pub status: StatusCode,
    /// `<field>: <reason>`.
    pub error: String,
}

impl Refusal {
    /// A refusal naming its field.
    pub fn new(status: StatusCode, field: &str, reason: impl std::fmt::Display) -> Refusal {
        Refusal {
            status,
            error: format!("{field}: {reason}"),
        }
    }

    /// The answer: the failure shape.
    pub fn reply(self) -> Reply {
        failure(self.status, vec![self.error])
    }
}

/// The whole request body, at most 64 KiB (`MAX_BODY_BYTES`).
pub async fn read_body(body: Incoming) -> Result<Bytes, Refusal> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body",
            format!("larger than {MAX_BODY_BYTES} bytes"),
        )),
        Err(_) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "body",
            "could not be read",
        )),
    }
}

/// Parses a JSON request body; a problem is a 400 naming the field (`percent: invalid
/// type: string "x", expected f64`).
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    let mut reader = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut reader).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." { "body" } else { path.as_str() };
        Refusal::new(StatusCode::BAD_REQUEST, field, error.inner())
    })
}

/// The first value of a query parameter, percent-decoded (`+` is a space, as in forms).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
}

/// Percent-decodes `text` (`+` is a space, as in forms).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let decoded = match byte {
            b'+' => Some((b' ', 1)),
            b'%' => text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .map(|byte| (byte, 3)),
            _ => None,
        };
        let (byte, width) = decoded.unwrap_or((byte, 1));
        out.push(byte);
        i += width;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_percent_decoded() {
        let query = "limit=5&route=%2Fapi%2Fusers%2F%7Bid%7D&x=a+b";
        assert_eq!(
            query_param(query, "route").as_deref(),
            Some("/api/users/{id}")
        );
        assert_eq!(query_param(query, "limit").as_deref(), Some("5"));
        assert_eq!(query_param(query, "x").as_deref(), Some("a b"));
        assert_eq!(query_param(query, "missing"), None);
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn a_bad_body_names_its_field() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Body {
            percent: Option<f64>,
        }
        let refusal = parse_json::<Body>(br#"{"percent": "ten"}"#).expect_err("refused");
        assert_eq!(refusal.status, StatusCode::BAD_REQUEST);
        assert!(
            refusal.error.starts_with("percent: invalid type"),
            "{}",
            refusal.error
        );
        let refusal = parse_json::<Body>(b"\"x\"").expect_err("refused");
        assert!(refusal.error.starts_with("body: "), "{}", refusal.error);
    }
}
