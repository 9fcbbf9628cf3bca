#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The header rulebook (`src/header_rules.rs`) on both HTTP/1.1 engines: the cases where
//! the hyper path's `HeaderMap` editor and the native engine's byte writer once disagreed
//! (found by `tests/prop_header_rules.rs`), each pinned end to end.

mod support;

use support::raw::RawClient;
use support::*;

async fn recording() -> Upstream {
    upstream()
        .fallback(|_| async { status(http::StatusCode::OK, "ok") })
        .start()
        .await
}

/// Sends `head` (and nothing after it) and returns what the upstream received.
async fn forwarded(engine: &str, head: &[u8]) -> Received {
    let upstream = recording().await;
    let proxy = shadowtap_with_engine(upstream.addr, engine).await;
    let mut client = RawClient::connect(proxy.addr).await;
    client.send(head).await;
    let response = client.response().await.expect("a response");
    assert_eq!(response.status, 200, "{engine}: {response:?}");
    upstream.last()
}

#[tokio::test]
async fn fields_connection_names_go_before_the_proxy_writes_its_own() {
    for engine in ENGINES {
        let received = forwarded(
            engine,
            b"POST /c HTTP/1.1\r\nHost: app.test\r\n\
              Connection: keep-alive, x-request-id, Host, content-length, x-forwarded-for, x-hop\r\n\
              x-request-id: client-id-1\r\nX-Forwarded-For: 10.9.9.9\r\nx-hop: 1\r\nx-kept: 2\r\n\
              content-length: 3\r\n\r\nabc",
        )
        .await;
        // The upstream always gets the id the proxy logs: a new one, since the client's
        // was named hop-by-hop.
        let id = received.header("x-request-id");
        assert!(
            id.is_some_and(|id| id != "client-id-1" && uuid::Uuid::parse_str(id).is_ok()),
            "{engine}: {:?}",
            received.headers
        );
        // Host and Content-Length route and frame the request: never named away.
        assert_eq!(received.header("host"), Some("app.test"), "{engine}");
        assert_eq!(received.header("content-length"), Some("3"), "{engine}");
        assert_eq!(&received.body[..], b"abc", "{engine}");
        assert_eq!(
            received.header_all("x-forwarded-for"),
            ["127.0.0.1"],
            "{engine}: the client's element was named hop-by-hop"
        );
        assert_eq!(received.header("x-hop"), None, "{engine}");
        assert_eq!(received.header("x-kept"), Some("2"), "{engine}");
    }
}

#[tokio::test]
async fn non_ascii_values_are_read_as_bytes() {
    for engine in ENGINES {
        let received = forwarded(
            engine,
            b"GET /n HTTP/1.1\r\nHost: app.test\r\nConnection: x-secret, caf\xe9\r\n\
              x-secret: 1\r\nTE: trailers, caf\xe9\r\nX-Forwarded-For: 10.0.0.1, caf\xe9\r\n\r\n",
        )
        .await;
        assert_eq!(
            received.header("x-secret"),
            None,
            "{engine}: a non-ASCII Connection value still names fields"
        );
        assert_eq!(received.header("te"), Some("trailers"), "{engine}");
        assert_eq!(
            received.header_all("x-forwarded-for"),
            ["10.0.0.1, caf\u{fffd}, 127.0.0.1"],
            "{engine}: every element kept, as bytes"
        );
    }
}

#[tokio::test]
async fn a_response_cannot_name_its_content_length_away() {
    for engine in ENGINES {
        let upstream = scripted_upstream(|_| {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: content-length, x-hop\r\n\
              x-hop: 1\r\nx-kept: 2\r\n\r\nok"
                .to_vec()
        })
        .await;
        let proxy = shadowtap_with_engine(upstream.addr, engine).await;
        let mut client = RawClient::connect(proxy.addr).await;
        for i in 0..2 {
            client
                .send(format!("GET /r/{i} HTTP/1.1\r\nHost: app.test\r\n\r\n").as_bytes())
                .await;
            let response = client.response().await.expect("a response");
            assert_eq!(response.status, 200, "{engine}: {response:?}");
            assert_eq!(
                response.header("content-length"),
                Some("2"),
                "{engine}: the body stays framed: {response:?}"
            );
            assert_eq!(response.body, b"ok", "{engine}");
            assert_eq!(response.header("x-hop"), None, "{engine}");
            assert_eq!(response.header("x-kept"), Some("2"), "{engine}");
        }
    }
}
