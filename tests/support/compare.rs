//! Helpers for the comparison tests: a primary, a shadow and optionally a secondary (all real
//! upstreams) behind one mirrored route, JSON answers, the admin API as JSON, and waiting
//! until the comparison workers have counted what the test sent.
//!
//! Comparison happens after the client got its answer (shadow request, pairing, a queue,
//! worker threads), so tests never read results right after a request: they wait for
//! `shadowtap_comparisons_total` to reach the number of pairs they made.

use super::*;
use serde_json::Value;

/// The shadow upstream's name in every comparison config (the `shadow` label).
pub const SHADOW: &str = "canary";

/// Where the upstreams of a mirrored route are.
pub struct Mirrored {
    pub primary: SocketAddr,
    pub shadow: SocketAddr,
    /// A second instance of the primary's build, for noise detection.
    pub secondary: Option<SocketAddr>,
}

impl Mirrored {
    /// A primary and a shadow, no secondary.
    pub fn pair(primary: SocketAddr, shadow: SocketAddr) -> Mirrored {
        Mirrored {
            primary,
            shadow,
            secondary: None,
        }
    }
}

/// A config with one mirrored route `api` (every request copied to [`SHADOW`]) whose
/// `templates` become the `route` labels. `compare` lines go into `[compare]`,
/// `route_compare` lines into `[routes.compare]`.
pub fn mirror_toml(
    upstreams: &Mirrored,
    templates: &[&str],
    compare: &str,
    route_compare: &str,
) -> String {
    let Mirrored {
        primary,
        shadow,
        secondary,
    } = upstreams;
    let templates: Vec<String> = templates.iter().map(|t| format!("{t:?}")).collect();
    let (secondary_upstream, secondary_line) = match secondary {
        Some(address) => (
            format!("[upstreams.stable-b]\nurl = \"http://{address}\"\n"),
            "secondary = \"stable-b\"",
        ),
        None => (String::new(), ""),
    };
    let head = listener_and_admin("");
    format!(
        r#"{head}
[upstreams.stable]
url = "http://{primary}"

{secondary_upstream}
[upstreams.{SHADOW}]
url = "http://{shadow}"

[compare]
{compare}

[[routes]]
name = "api"
primary = "stable"
template = [{templates}]

[routes.mirror]
{secondary_line}

[[routes.mirror.shadows]]
upstream = "{SHADOW}"
percent = 100

[routes.compare]
{route_compare}

[shutdown]
grace_period = "1s"
"#,
        templates = templates.join(", "),
    )
}

/// A JSON answer with extra headers.
pub fn json_with(
    status: StatusCode,
    body: impl Into<String>,
    headers: &[(&str, &str)],
) -> Response<Body> {
    let mut response = Response::new(full(body.into()));
    *response.status_mut() = status;
    let map = response.headers_mut();
    map.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    for (name, value) in headers {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            http::HeaderValue::from_str(value).expect("header value"),
        );
    }
    response
}

/// A `200 application/json` answer.
pub fn json_ok(body: impl Into<String>) -> Response<Body> {
    json_with(StatusCode::OK, body, &[])
}

/// Percent-encodes a query value (route labels carry `/`, `{` and `}`).
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET path_and_query` on the admin port, parsed as JSON.
pub async fn admin_json(proxy: &Shadowtap, path_and_query: &str) -> Value {
    admin_text(proxy.admin, path_and_query).await.parse_json()
}

/// `GET path_and_query` on an admin port, as text (status 200 required).
pub async fn admin_text(admin: SocketAddr, path_and_query: &str) -> AdminText {
    let reply = get(&format!("http://{admin}{path_and_query}")).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{path_and_query}: {}",
        reply.text()
    );
    AdminText(reply.text())
}

/// An admin answer as text.
pub struct AdminText(pub String);

impl AdminText {
    /// The text parsed as JSON; panics with the text when it is not.
    pub fn parse_json(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.0))
    }
}

/// `/api/v1/samples` for one route label, newest first.
pub async fn samples(proxy: &Shadowtap, route: &str) -> Vec<Value> {
    let path = format!("/api/v1/samples?route={}&limit=100", encode(route));
    match admin_json(proxy, &path).await {
        Value::Array(items) => items,
        other => panic!("samples are not a list: {other}"),
    }
}

/// Pairs of `route` compared so far, whatever their result.
pub fn compared(metrics: &str, route: &str) -> f64 {
    metric_sum(
        metrics,
        "shadowtap_comparisons_total",
        &[("route", route), ("shadow", SHADOW)],
    )
}

/// Polls `/metrics` until `done` holds for it; returns that text. Panics after [`STEP`].
pub async fn wait_metrics(proxy: &Shadowtap, what: &str, done: impl Fn(&str) -> bool) -> String {
    wait_admin_metrics(proxy.admin, what, done).await
}

/// [`wait_metrics`] for any admin address (the real binary's, too).
pub async fn wait_admin_metrics(
    admin: SocketAddr,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    until_metrics(admin, what, done, |text| format!("metrics:\n{text}")).await
}

/// Waits until `route` has at least `pairs` comparisons; returns the metrics text.
pub async fn wait_compared(proxy: &Shadowtap, route: &str, pairs: usize) -> String {
    wait_metrics(proxy, &format!("{pairs} comparisons on {route}"), |m| {
        compared(m, route) >= pairs as f64
    })
    .await
}

/// `GET path` through the proxy; the client must get `expect`.
pub async fn get_expect(proxy: &Shadowtap, path: &str, expect: StatusCode) -> Reply {
    let reply = get(&proxy.url(path)).await;
    assert_eq!(reply.status, expect, "GET {path}: {}", reply.text());
    reply
}

/// The differences of a sample as (kind, path, change) triples.
pub fn difference_triples(sample: &Value) -> Vec<(String, String, String)> {
    sample["differences"]
        .as_array()
        .unwrap_or_else(|| panic!("sample without differences: {sample}"))
        .iter()
        .map(|d| {
            let text = |key: &str| d[key].as_str().unwrap_or_default().to_string();
            (text("kind"), text("path"), text("change"))
        })
        .collect()
}

/// Every listener engine (`http1_engine`) and every protocol a shadow is spoken to with:
/// the primary's answer is captured by each engine's own tee, the shadow's read by each
/// client.
pub const ENGINE_PAIRS: [(&str, &str); 4] = [
    ("native", "http1"),
    ("native", "http2"),
    ("hyper", "http1"),
    ("hyper", "http2"),
];

/// `toml` made by [`mirror_toml`], its listener on `engine` and its shadow spoken to over
/// `shadow_protocol`.
pub fn on_engine(toml: &str, engine: &str, shadow_protocol: &str) -> String {
    let shadow = format!("[upstreams.{SHADOW}]\n");
    assert!(toml.contains(&shadow), "{toml}");
    engine_toml(toml, engine).replacen(
        &shadow,
        &format!("{shadow}protocol = \"{shadow_protocol}\"\n"),
        1,
    )
}
