#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What the upstream receives: Host kept or rewritten, `X-Forwarded-*` set, request ids
//! propagated or generated, hop-by-hop fields removed in both directions, and routing by
//! host and path prefix.

mod support;

use http::Request;
use support::*;

async fn recorder() -> Upstream {
    upstream()
        .always(http::StatusCode::OK, "ok\n")
        .start()
        .await
}

#[tokio::test]
async fn host_is_preserved_and_forwarded_headers_are_set() {
    let upstream = recorder().await;
    let proxy = Shadowtap::in_front_of(upstream.addr).await;
    let request = Request::get(proxy.url("/where"))
        .header("host", "shop.example:8443")
        .header("x-forwarded-for", "203.0.113.7")
        // Not trusted on this listener: overwritten with what the proxy saw.
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "spoofed.example")
        .body(empty())
        .unwrap();
    let reply = send(&http1_client(), request).await.unwrap();
    assert_eq!(reply.status, 200);
    let seen = upstream.last();
    assert_eq!(seen.header("host"), Some("shop.example:8443"));
    assert_eq!(seen.header_all("host").len(), 1);
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("203.0.113.7, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-host"), Some("shop.example:8443"));
}

#[tokio::test]
async fn http2_authority_becomes_the_upstream_host() {
    let upstream = recorder().await;
    let proxy = Shadowtap::in_front_of(upstream.addr).await;
    let reply = send(&h2_client(), get_request(&proxy.url("/h2")))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let seen = upstream.last();
    assert_eq!(seen.version, http::Version::HTTP_11);
    let authority = proxy.addr.to_string();
    assert_eq!(seen.header("host"), Some(authority.as_str()));
    assert_eq!(seen.header("x-forwarded-host"), Some(authority.as_str()));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
}

#[tokio::test]
async fn request_id_is_propagated_when_sent_and_generated_when_absent() {
    let upstream = recorder().await;
    let proxy = Shadowtap::in_front_of(upstream.addr).await;
    let client = http1_client();
    let request = Request::get(proxy.url("/"))
        .header("x-request-id", "client-id-42")
        .body(empty())
        .unwrap();
    send(&client, request).await.unwrap();
    assert_eq!(upstream.last().header("x-request-id"), Some("client-id-42"));

    let mut generated = Vec::new();
    for _ in 0..2 {
        send(&client, get_request(&proxy.url("/"))).await.unwrap();
        let id = upstream.last().header("x-request-id").unwrap().to_string();
        assert_eq!(id.len(), 36, "a UUID: {id}");
        assert_eq!(id.matches('-').count(), 4, "a UUID: {id}");
        generated.push(id);
    }
    assert_ne!(generated[0], generated[1], "each request gets its own id");
}

#[tokio::test]
async fn hop_by_hop_request_headers_are_removed() {
    let upstream = recorder().await;
    let proxy = Shadowtap::in_front_of(upstream.addr).await;
    let request = Request::get(proxy.url("/hop"))
        .header("connection", "keep-alive, X-Hop-Secret")
        .header("x-hop-secret", "must not pass")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("te", "deflate")
        .header("upgrade", "example/1")
        .header("x-end-to-end", "kept")
        .body(empty())
        .unwrap();
    let reply = send(&http1_client(), request).await.unwrap();
    assert_eq!(reply.status, 200);
    let seen = upstream.last();
    for name in [
        "connection",
        "x-hop-secret",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
    ] {
        assert_eq!(seen.header(name), None, "{name} reached the upstream");
    }
    assert_eq!(seen.header("x-end-to-end"), Some("kept"));

    // TE is hop-by-hop too, but "trailers" is re-stated for the next hop because the proxy
    // passes trailers through; other codings are dropped.
    let request = Request::get(proxy.url("/hop"))
        .header("te", "deflate, trailers")
        .body(empty())
        .unwrap();
    send(&http1_client(), request).await.unwrap();
    assert_eq!(upstream.last().header_all("te"), ["trailers"]);
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_removed() {
    let upstream = upstream()
        .fallback(|_| async { hop_by_hop_response("ok\n") })
        .start()
        .await;
    let proxy = Shadowtap::in_front_of(upstream.addr).await;
    let direct = get(&upstream.url("/")).await;
    assert_eq!(
        direct.headers.get("x-upstream-hop").map(|v| v.as_bytes()),
        Some(&b"internal"[..]),
        "the upstream really sends it"
    );
    let reply = get(&proxy.url("/")).await;
    for name in ["x-upstream-hop", "keep-alive", "proxy-connection"] {
        assert!(
            !reply.headers.contains_key(name),
            "{name} reached the client"
        );
    }
    assert_eq!(reply.headers["x-end-to-end"], "kept");
}

#[tokio::test]
async fn routes_pick_upstream_by_host_and_prefix_and_host_rewrite_applies() {
    let api = recorder().await;
    let web = recorder().await;
    let config = config(&format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"
[admin]
address = "127.0.0.1:0"
[upstreams.api]
url = "http://{api}"
[upstreams.web]
url = "http://{web}"
[[routes]]
name = "api"
host = "api.example"
path_prefix = "/v1/"
primary = "api"
host_rewrite = "api.internal"
template = ["/v1/users/{{id}}"]
[[routes]]
name = "web"
primary = "web"
"#,
        api = api.addr,
        web = web.addr
    ));
    let proxy = Shadowtap::start(config).await;
    let client = http1_client();
    let request = |host: &str, path: &str| {
        Request::get(proxy.url(path))
            .header("host", host)
            .body(empty())
            .unwrap()
    };
    send(&client, request("API.example:80", "/v1/users/7"))
        .await
        .unwrap();
    let seen = api.last();
    assert_eq!(seen.uri.path(), "/v1/users/7");
    assert_eq!(seen.header("host"), Some("api.internal"), "host_rewrite");
    assert_eq!(seen.header("x-forwarded-host"), Some("API.example:80"));

    send(&client, request("api.example", "/v2/other"))
        .await
        .unwrap();
    send(&client, request("www.example", "/v1/users/7"))
        .await
        .unwrap();
    assert_eq!(api.count(), 1, "prefix and host both have to match");
    let hosts: Vec<String> = web
        .received()
        .iter()
        .map(|r| r.header("host").unwrap().to_string())
        .collect();
    assert_eq!(hosts, ["api.example", "www.example"], "no rewrite on web");

    let metrics = proxy.metrics().await;
    let label = |route: &str| {
        metric_value(
            &metrics,
            "shadowtap_requests_total",
            &[("route", route), ("status_class", "2xx")],
        )
    };
    assert_eq!(
        label("/v1/users/{id}"),
        Some(1.0),
        "template label\n{metrics}"
    );
    assert_eq!(label("web"), Some(2.0), "route-name label\n{metrics}");
}

#[tokio::test]
async fn request_no_route_matches_gets_404_without_reaching_an_upstream() {
    let api = recorder().await;
    let config = config(&format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"
[admin]
address = "127.0.0.1:0"
[upstreams.api]
url = "http://{api}"
[[routes]]
name = "api"
path_prefix = "/api/"
primary = "api"
"#,
        api = api.addr
    ));
    let proxy = Shadowtap::start(config).await;
    let reply = get(&proxy.url("/elsewhere")).await;
    assert_eq!(reply.status, 404);
    assert_eq!(api.count(), 0);
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "shadowtap_proxy_errors_total",
            &[("route", "none"), ("reason", "no_route")]
        ),
        Some(1.0),
        "{metrics}"
    );
}
