#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Transparency: every case is sent once straight to the upstream and once through
//! shadowtap; the client must see the same status, end-to-end headers (order of repeated
//! fields included), body and trailers, and the upstream must receive the same request
//! apart from the fields a proxy adds (Host, `X-Forwarded-*`, `X-Request-Id`).

mod support;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Frame;
use support::*;

/// Fields a proxy legitimately changes on the way back: the date, `Via` (which it appends
/// to; tests/host_via.rs checks it) and hop-by-hop fields.
const IGNORED_RESPONSE: &[&str] = &[
    "date",
    "via",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// Fields a proxy legitimately changes on the way up.
const IGNORED_REQUEST: &[&str] = &[
    "host",
    "via",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
    "connection",
    "keep-alive",
    "te",
    "transfer-encoding",
];

fn end_to_end(headers: &HeaderMap, ignored: &[&str]) -> Vec<(String, String)> {
    header_pairs(headers)
        .into_iter()
        .filter(|(name, _)| !ignored.contains(&name.as_str()))
        .collect()
}

enum CaseBody {
    None,
    Fixed(&'static [u8]),
    /// Sent in these chunks with no Content-Length (chunked on HTTP/1.1).
    Chunked(&'static [&'static [u8]]),
}

struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: CaseBody,
    http2: bool,
}

impl Case {
    fn request(&self, base: &str) -> Request<Body> {
        let mut builder = Request::builder()
            .method(self.method.clone())
            .uri(format!("{base}{}", self.path));
        for (name, value) in self.headers {
            builder = builder.header(*name, *value);
        }
        let body = match self.body {
            CaseBody::None => empty(),
            CaseBody::Fixed(bytes) => full(bytes),
            CaseBody::Chunked(chunks) => {
                let (tx, body) = channel_body(chunks.len());
                for chunk in chunks {
                    tx.try_send(Frame::data(Bytes::from_static(chunk)))
                        .expect("room for every chunk");
                }
                body
            }
        };
        builder.body(body).expect("valid request")
    }
}

/// The upstream all cases run against. Its answers depend only on what the client sent,
/// never on proxy-added fields, so direct and proxied runs must match exactly.
async fn app() -> Upstream {
    upstream()
        .fallback(|r: Received| async move {
            let path = r.uri.path().to_string();
            let mut response = match path.as_str() {
                "/no-content" => status(StatusCode::NO_CONTENT, ""),
                "/cached" => {
                    let mut response = status(StatusCode::NOT_MODIFIED, "");
                    response
                        .headers_mut()
                        .insert("etag", "\"v1\"".parse().unwrap());
                    response
                }
                "/trailers" => trailers_response(),
                // A fixed-length answer (also what HEAD gets: same head, no body).
                "/fixed" => Response::new(full(&b"0123456789abcdefghijklmnopqrstuvwxyz012345"[..])),
                // Echo: method, target, the client's own x-multi values and body.
                _ => {
                    let multi = r.header_all("x-multi").join("|");
                    let body = format!(
                        "{} {} multi={multi} body={}",
                        r.method,
                        r.uri.path_and_query().map_or("", |pq| pq.as_str()),
                        String::from_utf8_lossy(&r.body)
                    );
                    Response::new(full(body))
                }
            };
            let headers = response.headers_mut();
            headers.append("set-cookie", "a=1; Path=/".parse().unwrap());
            headers.append("set-cookie", "b=2; Path=/".parse().unwrap());
            headers.append("vary", "accept".parse().unwrap());
            headers.append("vary", "accept-encoding".parse().unwrap());
            headers.insert("x-app", "transparency".parse().unwrap());
            response
        })
        .start()
        .await
}

async fn run_case(case: &Case, upstream: &Upstream, proxy: &Shadowtap) {
    let client = if case.http2 {
        h2_client()
    } else {
        http1_client()
    };
    let direct = send(&client, case.request(&upstream.url("")))
        .await
        .unwrap_or_else(|e| panic!("{}: direct request failed: {e}", case.name));
    let direct_seen = upstream.last();
    let proxied = send(&client, case.request(&proxy.url("")))
        .await
        .unwrap_or_else(|e| panic!("{}: proxied request failed: {e}", case.name));
    let proxied_seen = upstream.last();

    let name = case.name;
    assert_eq!(proxied.status, direct.status, "{name}: status");
    assert_eq!(
        end_to_end(&proxied.headers, IGNORED_RESPONSE),
        end_to_end(&direct.headers, IGNORED_RESPONSE),
        "{name}: response headers"
    );
    assert_eq!(proxied.body, direct.body, "{name}: response body");
    assert_eq!(proxied.trailers, direct.trailers, "{name}: trailers");

    assert_eq!(proxied_seen.method, direct_seen.method, "{name}: method");
    assert_eq!(
        proxied_seen.uri.path_and_query(),
        direct_seen.uri.path_and_query(),
        "{name}: request target"
    );
    let seen_headers = |r: &Received| -> Vec<(String, String)> {
        r.headers
            .iter()
            .filter(|(n, _)| !IGNORED_REQUEST.contains(&n.as_str()))
            .cloned()
            .collect()
    };
    assert_eq!(
        seen_headers(&proxied_seen),
        seen_headers(&direct_seen),
        "{name}: request headers the upstream saw"
    );
    assert_eq!(proxied_seen.body, direct_seen.body, "{name}: request body");
}

async fn run_all(cases: &[Case]) {
    let upstream = app().await;
    let proxy = Shadowtap::in_front_of(upstream.addr).await;
    for case in cases {
        run_case(case, &upstream, &proxy).await;
    }
}

#[tokio::test]
async fn get_with_query_and_percent_encoding_is_transparent() {
    let case = Case {
        name: "GET with query",
        method: Method::GET,
        path: "/search/a%20b%2Fc/%E2%9C%93?q=x%26y&empty=&plus=a+b&pct=%25",
        headers: &[("accept", "application/json"), ("x-custom", "kept")],
        body: CaseBody::None,
        http2: false,
    };
    run_all(&[case]).await;
    // And the target really arrived byte for byte (the comparison above would also pass if
    // both sides mangled it the same way).
    let upstream = app().await;
    let proxy = Shadowtap::in_front_of(upstream.addr).await;
    let reply = get(&proxy.url("/search/a%20b%2Fc?q=x%26y")).await;
    assert_eq!(reply.text(), "GET /search/a%20b%2Fc?q=x%26y multi= body=");
}

#[tokio::test]
async fn posts_with_fixed_and_chunked_bodies_are_transparent() {
    run_all(&[
        Case {
            name: "POST fixed",
            method: Method::POST,
            path: "/submit",
            headers: &[("content-type", "text/plain")],
            body: CaseBody::Fixed(b"hello fixed body"),
            http2: false,
        },
        Case {
            name: "POST chunked",
            method: Method::POST,
            path: "/submit",
            headers: &[("content-type", "text/plain")],
            body: CaseBody::Chunked(&[b"hello ", b"chunked ", b"body"]),
            http2: false,
        },
        Case {
            name: "PUT empty",
            method: Method::PUT,
            path: "/submit",
            headers: &[],
            body: CaseBody::Fixed(b""),
            http2: false,
        },
    ])
    .await;
}

#[tokio::test]
async fn repeated_headers_keep_every_value_in_order() {
    run_all(&[Case {
        name: "repeated headers",
        method: Method::GET,
        path: "/multi",
        headers: &[
            ("x-multi", "first"),
            ("accept", "text/plain"),
            ("x-multi", "second"),
            ("x-multi", "third, with comma"),
        ],
        body: CaseBody::None,
        http2: false,
    }])
    .await;
    // The comparison covers the response side (two set-cookie, two vary); check the
    // request side reached the upstream intact, not just identically.
    let upstream = app().await;
    let proxy = Shadowtap::in_front_of(upstream.addr).await;
    let request = Request::get(proxy.url("/multi"))
        .header("x-multi", "1")
        .header("x-multi", "2")
        .body(empty())
        .unwrap();
    let reply = send(&http1_client(), request).await.unwrap();
    assert_eq!(reply.text(), "GET /multi multi=1|2 body=");
    let cookies: Vec<_> = reply.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1; Path=/", "b=2; Path=/"]);
}

#[tokio::test]
async fn head_204_and_304_are_transparent() {
    run_all(&[
        Case {
            name: "HEAD",
            method: Method::HEAD,
            path: "/fixed",
            headers: &[],
            body: CaseBody::None,
            http2: false,
        },
        Case {
            name: "204",
            method: Method::DELETE,
            path: "/no-content",
            headers: &[],
            body: CaseBody::None,
            http2: false,
        },
        Case {
            name: "304",
            method: Method::GET,
            path: "/cached",
            headers: &[("if-none-match", "\"v1\"")],
            body: CaseBody::None,
            http2: false,
        },
    ])
    .await;
}

#[tokio::test]
async fn response_trailers_pass_through() {
    run_all(&[Case {
        name: "trailers",
        method: Method::GET,
        path: "/trailers",
        headers: &[("te", "trailers")],
        body: CaseBody::None,
        http2: false,
    }])
    .await;
    let upstream = app().await;
    let proxy = Shadowtap::in_front_of(upstream.addr).await;
    let request = Request::get(proxy.url("/trailers"))
        .header("te", "trailers")
        .body(empty())
        .unwrap();
    let reply = send(&http1_client(), request).await.unwrap();
    assert_eq!(reply.text(), "part one, part two");
    let trailers = reply.trailers.expect("trailers reached the client");
    assert_eq!(trailers["x-checksum"], "abc123");
}

#[tokio::test]
async fn http2_prior_knowledge_client_is_transparent() {
    run_all(&[
        Case {
            name: "h2 GET",
            method: Method::GET,
            path: "/search?q=h2",
            headers: &[("x-multi", "a"), ("x-multi", "b")],
            body: CaseBody::None,
            http2: true,
        },
        Case {
            name: "h2 POST",
            method: Method::POST,
            path: "/submit",
            headers: &[],
            body: CaseBody::Chunked(&[b"over ", b"h2"]),
            http2: true,
        },
        Case {
            name: "h2 trailers",
            method: Method::GET,
            path: "/trailers",
            headers: &[("te", "trailers")],
            body: CaseBody::None,
            http2: true,
        },
    ])
    .await;
    let upstream = app().await;
    let proxy = Shadowtap::in_front_of(upstream.addr).await;
    let reply = send(&h2_client(), get_request(&proxy.url("/h2")))
        .await
        .unwrap();
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(reply.text(), "GET /h2 multi= body=");
}
