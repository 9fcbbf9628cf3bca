#![allow(clippy::unwrap_used, clippy::expect_used)]
//! HTTP/1.1 over TLS on the native engine, through the real app on 127.0.0.1:0 with
//! certificates made at test time: keep-alive, pipelining, a body streamed up, a large
//! answer, the handover to hyper mid-connection, mTLS's subject field, mirroring, and
//! `http1_engine` applying to TLS listeners as to plaintext ones.
//!
//! Which engine served a request is told by the handover counter: only the native engine
//! hands a request over (`shadowtap_http1_handovers_total`), so a chunked upload sent last
//! on a connection counts one handover exactly when the native engine was still serving
//! that connection — every request before it was the native engine's.

mod support;

use support::raw::{RawClient, RawResponse};
use support::tls::{client_config, handshake, with_listener_tls, Issued, Pki};
use support::*;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// An upstream answering every request with what it saw: method, path, body length,
/// `X-Forwarded-Proto` and `X-Client-Subject` (every value), and a 2 MiB body for `/big`.
async fn echo_upstream() -> Upstream {
    upstream()
        .route("/big", |_| async {
            http::Response::new(full(vec![b'b'; BIG]))
        })
        .fallback(|r: Received| async move {
            let body = format!(
                "{} {} {} proto={} subject={:?}",
                r.method,
                r.uri,
                r.body.len(),
                r.header("x-forwarded-proto").unwrap_or("-"),
                r.header_all("x-client-subject"),
            );
            http::Response::new(full(body))
        })
        .start()
        .await
}

const BIG: usize = 2 * 1024 * 1024;

/// A raw HTTP/1.1 client over a TLS connection offering `alpn`.
async fn tls_client(
    pki: &Pki,
    proxy: &Shadowtap,
    alpn: &[&str],
    identity: Option<&Issued>,
) -> RawClient<TlsStream<TcpStream>> {
    let config = client_config(pki, alpn, identity);
    let stream = handshake(proxy.addr, "localhost", config).await.unwrap();
    RawClient::over(stream)
}

/// Handovers counted so far: over every reason, and for `transfer_encoding`.
async fn handovers(proxy: &Shadowtap) -> (f64, f64) {
    let metrics = proxy.metrics().await;
    let total = metric_sum(&metrics, "shadowtap_http1_handovers_total", &[]);
    let chunked = metric_sum(
        &metrics,
        "shadowtap_http1_handovers_total",
        &[("reason", "transfer_encoding")],
    );
    (total, chunked)
}

/// Sends a chunked upload and then a GET on `client`: the upload is a shape the native
/// engine hands to hyper, which answers it and the GET after it on the same connection.
async fn hand_over<S>(client: &mut RawClient<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    client
        .send(
            b"POST /chunked HTTP/1.1\r\nHost: localhost\r\ntransfer-encoding: chunked\r\n\r\n\
              3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
        )
        .await;
    let answer = client.complete_response(false).await;
    assert_eq!(answer.status, 200);
    assert!(answer.text().contains("POST /chunked 7 "), "{answer:?}");
    client
        .send(b"GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    let answer = client.complete_response(false).await;
    assert!(answer.text().contains("GET /after 0 "), "{answer:?}");
}

fn ok(response: &RawResponse, text: &str) {
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.text(), text);
}

#[tokio::test]
async fn keep_alive_and_pipelined_requests_over_tls_are_the_native_engines_until_a_handover() {
    let pki = Pki::new("test CA");
    let leaf = pki.server("leaf", &["localhost"]);
    let upstream = echo_upstream().await;
    let text = with_listener_tls(&simple_toml(upstream.addr, "", ""), &leaf.pair());
    let proxy = Shadowtap::start(config(&text)).await;

    let mut handed = 0.0;
    for alpn in [vec!["http/1.1"], vec![]] {
        let mut client = tls_client(&pki, &proxy, &alpn, None).await;
        // Three pipelined requests in one write, answered in order.
        client
            .send(
                b"GET /one HTTP/1.1\r\nHost: localhost\r\n\r\n\
                  POST /two HTTP/1.1\r\nHost: localhost\r\ncontent-length: 5\r\n\r\nhello\
                  GET /three HTTP/1.1\r\nHost: localhost\r\n\r\n",
            )
            .await;
        for text in [
            "GET /one 0 proto=https subject=[]",
            "POST /two 5 proto=https subject=[]",
            "GET /three 0 proto=https subject=[]",
        ] {
            ok(&client.complete_response(false).await, text);
        }
        // Then one at a time on the same connection.
        for path in ["/four", "/five"] {
            let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
            client.send(request.as_bytes()).await;
            let text = format!("GET {path} 0 proto=https subject=[]");
            ok(&client.complete_response(false).await, &text);
        }
        assert_eq!(handovers(&proxy).await, (handed, handed), "ALPN {alpn:?}");
        hand_over(&mut client).await;
        handed += 1.0;
        assert_eq!(handovers(&proxy).await, (handed, handed), "ALPN {alpn:?}");
    }
}

#[tokio::test]
async fn http1_engine_hyper_applies_to_tls_listeners_too() {
    let pki = Pki::new("test CA");
    let leaf = pki.server("leaf", &["localhost"]);
    let upstream = echo_upstream().await;
    let engine = "http1_engine = \"hyper\"";
    let text = with_listener_tls(&simple_toml(upstream.addr, engine, ""), &leaf.pair());
    let proxy = Shadowtap::start(config(&text)).await;
    let mut client = tls_client(&pki, &proxy, &["http/1.1"], None).await;
    client
        .send(b"GET /one HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    ok(
        &client.complete_response(false).await,
        "GET /one 0 proto=https subject=[]",
    );
    hand_over(&mut client).await;
    // hyper served it all: the native engine never saw the connection.
    assert_eq!(handovers(&proxy).await, (0.0, 0.0));
}

#[tokio::test]
async fn a_body_streamed_up_and_a_large_answer_over_tls_keep_the_connection_in_step() {
    let pki = Pki::new("test CA");
    let leaf = pki.server("leaf", &["localhost"]);
    let upstream = echo_upstream().await;
    let text = with_listener_tls(&simple_toml(upstream.addr, "", ""), &leaf.pair());
    let proxy = Shadowtap::start(config(&text)).await;
    let mut client = tls_client(&pki, &proxy, &["http/1.1"], None).await;

    // A body far larger than one read of the engine (or one TLS record), sent in pieces.
    let body = vec![b'x'; 300_000];
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: localhost\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    client.send(head.as_bytes()).await;
    for piece in body.chunks(50_000) {
        client.send(piece).await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    ok(
        &client.complete_response(false).await,
        "POST /upload 300000 proto=https subject=[]",
    );
    assert_eq!(upstream.last().body.len(), body.len());
    assert!(upstream.last().body.iter().all(|&b| b == b'x'));

    // An answer larger than the socket buffers: what rustls holds unsent goes out while the
    // engine waits for the next request.
    client
        .send(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    let big = client.complete_response(false).await;
    assert_eq!(big.body.len(), BIG);
    assert!(big.body.iter().all(|&b| b == b'b'));
    client
        .send(b"GET /next HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    ok(
        &client.complete_response(false).await,
        "GET /next 0 proto=https subject=[]",
    );
    assert_eq!(handovers(&proxy).await, (0.0, 0.0));
    hand_over(&mut client).await;
    assert_eq!(handovers(&proxy).await, (1.0, 1.0));
}

#[tokio::test]
async fn the_native_engine_writes_the_verified_subject_and_drops_a_forged_one() {
    let pki = Pki::new("test CA");
    let leaf = pki.server("leaf", &["localhost"]);
    let good = pki.client("good", "client-1", "Example Org");
    let upstream = echo_upstream().await;
    let ca = pki.ca_file("ca.pem");
    let tls = format!(
        "{}client_ca = {ca:?}\nclient_auth = \"optional\"\nclient_subject_header = \"X-Client-Subject\"\n",
        leaf.pair()
    );
    let text = with_listener_tls(&simple_toml(upstream.addr, "", ""), &tls);
    let proxy = Shadowtap::start(config(&text)).await;

    for identity in [Some(&good), None] {
        let mut client = tls_client(&pki, &proxy, &["http/1.1"], identity).await;
        client
            .send(
                b"GET /whoami HTTP/1.1\r\nHost: localhost\r\nX-Client-Subject: CN=admin\r\n\
                  x-client-subject: CN=root\r\n\r\n",
            )
            .await;
        let answer = client.complete_response(false).await;
        let subjects = upstream.last();
        let subjects = subjects.header_all("x-client-subject");
        match identity {
            Some(_) => {
                assert_eq!(subjects.len(), 1, "{subjects:?}");
                assert!(subjects[0].contains("CN=client-1"), "{subjects:?}");
                assert!(subjects[0].contains("O=Example Org"), "{subjects:?}");
            }
            // No certificate (allowed): no subject, and still never the client's own.
            None => assert!(subjects.is_empty(), "{subjects:?}"),
        }
        assert_eq!(answer.status, 200);
        // Served natively: nothing was handed over before this connection's upload.
        let (before, _) = handovers(&proxy).await;
        hand_over(&mut client).await;
        assert_eq!(handovers(&proxy).await.0, before + 1.0);
    }
    assert_eq!(handovers(&proxy).await, (2.0, 2.0));
}

#[tokio::test]
async fn a_tls_listener_on_the_native_engine_mirrors_to_the_shadow() {
    use support::shadow::{echo_primary, healthy_shadow, mirror_toml, received_at_least};
    let pki = Pki::new("test CA");
    let leaf = pki.server("leaf", &["localhost"]);
    let primary = echo_primary().await;
    let shadow = healthy_shadow(std::time::Duration::ZERO).await;
    let policy = support::shadow::Policy {
        shadow: "methods = \"all\"",
        ..Default::default()
    };
    let text = with_listener_tls(
        &mirror_toml(primary.addr, shadow.addr, &policy),
        &leaf.pair(),
    );
    let proxy = Shadowtap::start(config(&text)).await;
    let mut client = tls_client(&pki, &proxy, &["http/1.1"], None).await;
    client
        .send(
            b"GET /a?q=1 HTTP/1.1\r\nHost: localhost\r\n\r\n\
              POST /b HTTP/1.1\r\nHost: localhost\r\ncontent-length: 5\r\n\r\nhello",
        )
        .await;
    ok(
        &client.complete_response(false).await,
        "primary: GET /a?q=1 0 bytes",
    );
    ok(
        &client.complete_response(false).await,
        "primary: POST /b 5 bytes",
    );
    let copies = received_at_least(&shadow, 2).await;
    let mut seen: Vec<(String, usize, Option<String>)> = copies
        .iter()
        .map(|r| {
            let proto = r.header("x-forwarded-proto").map(str::to_string);
            (r.uri.to_string(), r.body.len(), proto)
        })
        .collect();
    seen.sort();
    let https = Some("https".to_string());
    assert_eq!(
        seen,
        [
            ("/a?q=1".to_string(), 0, https.clone()),
            ("/b".to_string(), 5, https)
        ]
    );
    assert_eq!(handovers(&proxy).await, (0.0, 0.0));
    hand_over(&mut client).await;
    assert_eq!(handovers(&proxy).await, (1.0, 1.0));
}

#[tokio::test]
async fn a_tls_client_that_stops_reading_is_disconnected_after_the_send_timeout() {
    const HUGE: usize = 64 * 1024 * 1024;
    let pki = Pki::new("test CA");
    let leaf = pki.server("leaf", &["localhost"]);
    let upstream = upstream()
        .fallback(|_| async { http::Response::new(full(vec![b'h'; HUGE])) })
        .start()
        .await;
    for engine in ["native", "hyper"] {
        let listener = format!("client_send_timeout = \"300ms\"\nhttp1_engine = \"{engine}\"");
        let text = with_listener_tls(&simple_toml(upstream.addr, &listener, ""), &leaf.pair());
        let proxy = Shadowtap::start(config(&text)).await;
        let mut client = tls_client(&pki, &proxy, &["http/1.1"], None).await;
        client
            .send(b"GET /huge HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await;
        // Read nothing for ten times the timeout: the socket buffers (and rustls') fill,
        // the proxy's writes wait, and it gives up.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        // Every byte until the proxy closes (or resets) the connection.
        let received = client.until_closed().await.len();
        assert!(
            received < HUGE,
            "{engine}: {received} bytes, the whole answer: never disconnected"
        );
    }
}
