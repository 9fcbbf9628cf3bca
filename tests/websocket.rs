#![allow(clippy::unwrap_used, clippy::expect_used)]
//! WebSocket and other upgrades through the real app on both HTTP/1.1 engines (issue 20): a
//! real WebSocket server (tokio-tungstenite) behind shadowtap and real clients in front of it
//! (tokio-tungstenite over HTTP/1.1 and TLS; the h2 crate by RFC 8441 extended CONNECT).

mod support;

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::raw::RawClient;
use support::tls::{client_config, handshake, with_listener_tls, Pki};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// The text that makes the echo server close the WebSocket first.
const SERVER_CLOSES: &str = "close, please";

/// A real WebSocket echo server: every text and binary message back as it came; on
/// [`SERVER_CLOSES`] it starts the close handshake itself.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    if matches!(&message, Message::Text(text) if text.as_str() == SERVER_CLOSES) {
                        let close = CloseFrame {
                            code: CloseCode::Away,
                            reason: "bye".into(),
                        };
                        let _ = ws.close(Some(close)).await;
                    } else if (message.is_text() || message.is_binary())
                        && ws.send(message).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A config with the catch-all route to `upstream` on `engine`; `route_extra` lines go
/// into the route.
fn ws_toml(upstream: SocketAddr, engine: &str, route_extra: &str) -> String {
    simple_toml(upstream, &engine_line(engine), "").replace(
        "name = \"default\"\n",
        &format!("name = \"default\"\n{route_extra}\n"),
    )
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn connect(proxy: SocketAddr, path: &str) -> Ws {
    let stream = TcpStream::connect(proxy).await.unwrap();
    let url = format!("ws://{proxy}{path}");
    let (ws, response) = within(
        "websocket handshake",
        tokio_tungstenite::client_async(url, stream),
    )
    .await
    .expect("handshake through shadowtap");
    assert_eq!(response.status(), 101);
    ws
}

async fn next(ws: &mut Ws) -> Option<Message> {
    within("next websocket message", ws.next())
        .await
        .map(|message| message.unwrap())
}

/// Waits until no upgraded connection of route `default` is open; the metrics then.
async fn all_closed(admin: SocketAddr, what: &str) -> String {
    until_metrics(
        admin,
        what,
        |m| metric_value(m, "shadowtap_upgraded_connections", &[("route", "default")]) == Some(0.0),
        str::to_string,
    )
    .await
}

fn metric(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric_value(metrics, name, labels).unwrap_or(0.0)
}

#[tokio::test]
async fn frames_echo_and_either_side_closes_on_both_engines() {
    let upstream = echo_server().await;
    for engine in ENGINES {
        let proxy = Shadowtap::start(config(&ws_toml(upstream, engine, ""))).await;

        // The client closes first.
        let mut ws = connect(proxy.addr, "/chat").await;
        ws.send(Message::text("hello")).await.unwrap();
        assert_eq!(
            next(&mut ws).await,
            Some(Message::text("hello")),
            "{engine}"
        );
        let blob: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        ws.send(Message::binary(blob.clone())).await.unwrap();
        assert_eq!(next(&mut ws).await, Some(Message::binary(blob)), "{engine}");
        ws.close(None).await.unwrap();
        loop {
            match within("close echo", ws.next()).await {
                Some(Ok(Message::Close(_))) => continue,
                None => break,
                other => panic!("{engine}: after our close: {other:?}"),
            }
        }
        drop(ws);

        // The server closes first; the client answers, and the connection ends.
        let mut ws = connect(proxy.addr, "/chat").await;
        ws.send(Message::text(SERVER_CLOSES)).await.unwrap();
        match next(&mut ws).await {
            Some(Message::Close(Some(frame))) => {
                assert_eq!(frame.code, CloseCode::Away, "{engine}");
                assert_eq!(frame.reason.as_str(), "bye", "{engine}");
            }
            other => panic!("{engine}: expected the server's close, got {other:?}"),
        }
        assert!(within("the end", ws.next()).await.is_none(), "{engine}");
        // The client's socket too: until it closes, its half of the splice stays open.
        drop(ws);

        let metrics = all_closed(proxy.admin, "both upgraded connections closed").await;
        let upgrades = &[("route", "default"), ("protocol", "websocket")];
        assert_eq!(
            metric(&metrics, "shadowtap_upgrades_total", upgrades),
            2.0,
            "{engine}"
        );
        // Each handshake is one request, counted once, as a 1xx.
        let requests = &[("route", "default"), ("status_class", "1xx")];
        assert_eq!(
            metric_sum(&metrics, "shadowtap_requests_total", requests),
            2.0
        );
        assert_eq!(metric_sum(&metrics, "shadowtap_requests_total", &[]), 2.0);
        let to_upstream = &[("route", "default"), ("direction", "to_upstream")];
        let to_client = &[("route", "default"), ("direction", "to_client")];
        assert!(metric(&metrics, "shadowtap_upgraded_bytes_total", to_upstream) > 70_000.0);
        assert!(metric(&metrics, "shadowtap_upgraded_bytes_total", to_client) > 70_000.0);
        let ended = &[("route", "default"), ("reason", "ended")];
        let closed = "shadowtap_upgraded_connections_closed_total";
        assert_eq!(metric(&metrics, closed, ended), 2.0, "{engine}");
        assert_eq!(metric_sum(&metrics, closed, &[]), 2.0, "{engine}");
    }
}

#[tokio::test]
async fn two_hundred_concurrent_websockets_with_their_bytes_counted() {
    const SOCKETS: usize = 200;
    const MESSAGES: usize = 5;
    const PAYLOAD: usize = 100;
    let upstream = echo_server().await;
    for engine in ENGINES {
        let proxy = Shadowtap::start(config(&ws_toml(upstream, engine, ""))).await;
        let mut clients = tokio::task::JoinSet::new();
        for i in 0..SOCKETS {
            let addr = proxy.addr;
            clients.spawn(async move {
                let mut ws = connect(addr, "/chat").await;
                for m in 0..MESSAGES {
                    let text = format!("{i:05}-{m:05}-").repeat(PAYLOAD / 12 + 1);
                    let text = &text[..PAYLOAD];
                    ws.send(Message::text(text)).await.unwrap();
                    assert_eq!(next(&mut ws).await, Some(Message::text(text)));
                }
                ws.close(None).await.unwrap();
                while let Some(Ok(_)) = within("close", ws.next()).await {}
            });
        }
        while let Some(done) = clients.join_next().await {
            done.unwrap();
        }
        let metrics = all_closed(proxy.admin, "every upgraded connection closed").await;
        let upgrades = &[("route", "default"), ("protocol", "websocket")];
        assert_eq!(
            metric(&metrics, "shadowtap_upgrades_total", upgrades),
            SOCKETS as f64
        );
        // A client's frame of 100 bytes is 2 head bytes, a 4-byte mask and the payload; the
        // server's is unmasked. Then the close frames, a few bytes each.
        let sent = (SOCKETS * MESSAGES * (PAYLOAD + 6)) as f64;
        let echoed = (SOCKETS * MESSAGES * (PAYLOAD + 2)) as f64;
        let slack = (SOCKETS * 16) as f64;
        let to_upstream = metric(
            &metrics,
            "shadowtap_upgraded_bytes_total",
            &[("route", "default"), ("direction", "to_upstream")],
        );
        let to_client = metric(
            &metrics,
            "shadowtap_upgraded_bytes_total",
            &[("route", "default"), ("direction", "to_client")],
        );
        assert!(
            (sent..=sent + slack).contains(&to_upstream),
            "{engine}: {to_upstream} to the upstream, {sent} sent"
        );
        assert!(
            (echoed..=echoed + slack).contains(&to_client),
            "{engine}: {to_client} to the clients, {echoed} echoed"
        );
    }
}

#[tokio::test]
async fn an_upgrade_is_never_mirrored_and_counted_skipped() {
    let upstream = echo_server().await;
    let shadow = upstream_recording().await;
    for engine in ENGINES {
        let text = shadow::mirror_toml(upstream, shadow.addr, &shadow::Policy::default());
        let proxy = Shadowtap::start(config(&engine_toml(&text, engine))).await;
        let mut ws = connect(proxy.addr, "/chat").await;
        ws.send(Message::text("hi")).await.unwrap();
        assert_eq!(next(&mut ws).await, Some(Message::text("hi")));
        ws.close(None).await.unwrap();
        let metrics = until_metrics(
            proxy.admin,
            "the skip counted",
            |m| {
                metric_sum(
                    m,
                    "shadowtap_mirror_requests_total",
                    &[("outcome", "skipped_upgrade")],
                ) == 1.0
            },
            str::to_string,
        )
        .await;
        let all: f64 = shadow::OUTCOMES
            .iter()
            .map(|outcome| {
                metric_sum(
                    &metrics,
                    "shadowtap_mirror_requests_total",
                    &[("outcome", outcome)],
                )
            })
            .sum();
        assert_eq!(all, 1.0, "{engine}: counted once, as skipped_upgrade");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(shadow.count(), 0, "the shadow saw nothing");
}

/// An upgrade is counted only for the shadows whose policy selects it, as any request is:
/// outside the shadow's path prefix it is not counted at all, so the outcomes still add up
/// to what was sampled.
#[tokio::test]
async fn an_upgrade_is_counted_skipped_only_where_the_shadow_would_sample_it() {
    let upstream = echo_server().await;
    let shadow = upstream_recording().await;
    for engine in ENGINES {
        let policy = shadow::Policy {
            shadow: "path_prefix = \"/api/\"",
            ..Default::default()
        };
        let text = shadow::mirror_toml(upstream, shadow.addr, &policy);
        let proxy = Shadowtap::start(config(&engine_toml(&text, engine))).await;
        for path in ["/chat", "/api/chat", "/chat/api/"] {
            let mut ws = connect(proxy.addr, path).await;
            ws.send(Message::text("hi")).await.unwrap();
            assert_eq!(next(&mut ws).await, Some(Message::text("hi")));
            ws.close(None).await.unwrap();
        }
        let metrics = until_metrics(
            proxy.admin,
            "three upgrades",
            |m| metric_sum(m, "shadowtap_upgrades_total", &[]) == 3.0,
            str::to_string,
        )
        .await;
        let counted: Vec<(&str, f64)> = shadow::OUTCOMES
            .iter()
            .map(|outcome| {
                let n = metric_sum(
                    &metrics,
                    "shadowtap_mirror_requests_total",
                    &[("outcome", outcome)],
                );
                (*outcome, n)
            })
            .filter(|(_, n)| *n > 0.0)
            .collect();
        assert_eq!(counted, [("skipped_upgrade", 1.0)], "{engine}");
    }
    assert_eq!(shadow.count(), 0, "the shadow saw nothing");
}

/// An upgraded connection is an open client connection: it holds its slot under
/// `max_connections` and is counted in `shadowtap_connections_active` until it closes, as
/// nginx and Envoy count theirs, so a WebSocket flood cannot pass the cap.
#[tokio::test]
async fn an_upgraded_connection_keeps_its_slot_under_max_connections() {
    let upstream = echo_server().await;
    for engine in ENGINES {
        let text =
            ws_toml(upstream, engine, "").replace("[admin]", "max_connections = 1\n\n[admin]");
        assert!(text.contains("max_connections = 1\n"), "{text}");
        let proxy = Shadowtap::start(config(&text)).await;
        let mut ws = connect(proxy.addr, "/chat").await;
        ws.send(Message::text("hi")).await.unwrap();
        assert_eq!(next(&mut ws).await, Some(Message::text("hi")));
        let metrics = proxy.metrics().await;
        assert_eq!(
            metric_value(&metrics, "shadowtap_connections_active", &[]),
            Some(1.0),
            "{engine}"
        );

        // A second connection waits in the backlog while the WebSocket is open.
        let mut second = TcpStream::connect(proxy.addr).await.unwrap();
        second
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let early = tokio::time::timeout(Duration::from_millis(500), second.read(&mut buf)).await;
        assert!(
            early.is_err(),
            "{engine}: served past the cap beside a WebSocket"
        );

        // The WebSocket closes; the waiting connection is served.
        ws.close(None).await.unwrap();
        while next(&mut ws).await.is_some() {}
        drop(ws);
        let read = within("the second connection served", second.read(&mut buf))
            .await
            .unwrap();
        assert!(read > 0, "{engine}");
        assert!(
            String::from_utf8_lossy(&buf[..read]).starts_with("HTTP/1.1 "),
            "{engine}"
        );
    }
}

/// An RFC 8441 WebSocket opened to `/chat` over a new h2 connection to `proxy`, once the
/// server's SETTINGS allow extended CONNECT: its answer, and the stream to send on.
async fn extended_connect(
    proxy: SocketAddr,
) -> (http::Response<h2::RecvStream>, h2::SendStream<bytes::Bytes>) {
    let tcp = TcpStream::connect(proxy).await.unwrap();
    let (client, connection) = within("h2 handshake", h2::client::handshake(tcp))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = within("h2 ready", client.ready()).await.unwrap();
    // The server's first SETTINGS says it takes extended CONNECT.
    until("SETTINGS_ENABLE_CONNECT_PROTOCOL", || {
        client.is_extended_connect_protocol_enabled()
    })
    .await;
    let request = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("http://localhost:{}/chat", proxy.port()))
        .extension(h2::ext::Protocol::from_static("websocket"))
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    let (response, send) = client.send_request(request, false).unwrap();
    let response = within("200 to the CONNECT", response).await.unwrap();
    (response, send)
}

/// At least `len` bytes read from an h2 stream, its flow-control window given back.
async fn read_over_h2(recv: &mut h2::RecvStream, len: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < len {
        let chunk = within("echo over h2", recv.data()).await.unwrap().unwrap();
        recv.flow_control().release_capacity(chunk.len()).unwrap();
        got.extend_from_slice(&chunk);
    }
    got
}

/// An upstream that records requests and answers 200.
async fn upstream_recording() -> Upstream {
    upstream().always(http::StatusCode::OK, "ok").start().await
}

#[tokio::test]
async fn a_refused_upgrade_is_an_ordinary_response() {
    let refusing = upstream()
        .always(http::StatusCode::FORBIDDEN, "no websockets here")
        .start()
        .await;
    for engine in ENGINES {
        let proxy = Shadowtap::start(config(&ws_toml(refusing.addr, engine, ""))).await;
        let stream = TcpStream::connect(proxy.addr).await.unwrap();
        let url = format!("ws://{}/chat", proxy.addr);
        let refused = within("handshake", tokio_tungstenite::client_async(url, stream)).await;
        match refused {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403, "{engine}");
                assert_eq!(
                    response.body().as_deref(),
                    Some(&b"no websockets here"[..]),
                    "{engine}"
                );
            }
            other => panic!("{engine}: {other:?}"),
        }
        // The upstream was asked for the upgrade, with its own Connection option.
        let asked = refusing.last();
        assert_eq!(asked.header("upgrade"), Some("websocket"), "{engine}");
        assert_eq!(asked.header("connection"), Some("upgrade"), "{engine}");
        let metrics = proxy.metrics().await;
        assert_eq!(
            metric_sum(&metrics, "shadowtap_upgrades_total", &[]),
            0.0,
            "{engine}"
        );
        let requests = &[("status_class", "4xx")];
        assert_eq!(
            metric_sum(&metrics, "shadowtap_requests_total", requests),
            1.0
        );
    }
}

/// A raw upstream that answers every request with `answer` and keeps the socket open.
async fn raw_upstream(answer: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if raw::read_until_head(&mut stream, &mut buf).await.is_some() {
                    let _ = stream.write_all(answer).await;
                    let mut rest = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut rest).await {
                        if n == 0 {
                            break;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_101_nobody_asked_for_is_a_502() {
    let switching = raw_upstream(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await;
    let unnamed =
        raw_upstream(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n").await;
    for engine in ENGINES {
        // A plain request answered 101.
        let proxy = Shadowtap::start(config(&ws_toml(switching, engine, ""))).await;
        let mut client = RawClient::connect(proxy.addr).await;
        client.send(b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let response = client.complete_response(false).await;
        assert_eq!(response.status, 502, "{engine}");

        // An upgrade answered 101 without saying to what.
        let proxy = Shadowtap::start(config(&ws_toml(unnamed, engine, ""))).await;
        let mut client = RawClient::connect(proxy.addr).await;
        client
            .send(b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            .await;
        let response = client.complete_response(false).await;
        assert_eq!(response.status, 502, "{engine}");
        assert_eq!(proxy.proxy_errors("upstream_error").await, 1.0, "{engine}");
    }
}

#[tokio::test]
async fn an_h2c_upgrade_is_not_forwarded_and_served_as_http1() {
    let app = upstream_recording().await;
    for engine in ENGINES {
        let proxy = Shadowtap::start(config(&ws_toml(app.addr, engine, ""))).await;
        let mut client = RawClient::connect(proxy.addr).await;
        client
            .send(b"GET /h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")
            .await;
        let response = client.complete_response(false).await;
        assert_eq!(response.status, 200, "{engine}");
        assert_eq!(response.version, "HTTP/1.1", "{engine}");
        assert_eq!(response.text(), "ok", "{engine}");
        let received = app.last();
        assert_eq!(received.version, http::Version::HTTP_11, "{engine}");
        for field in ["upgrade", "http2-settings", "connection"] {
            assert_eq!(received.header(field), None, "{engine}: {field}");
        }
        // The connection goes on as HTTP/1.1.
        client.send(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(
            client.complete_response(false).await.status,
            200,
            "{engine}"
        );
    }
}

#[tokio::test]
async fn an_idle_upgraded_connection_is_closed() {
    let upstream = echo_server().await;
    for engine in ENGINES {
        let toml = ws_toml(upstream, engine, "upgrade_idle_timeout = \"300ms\"");
        let proxy = Shadowtap::start(config(&toml)).await;
        let mut ws = connect(proxy.addr, "/chat").await;
        ws.send(Message::text("one")).await.unwrap();
        assert_eq!(next(&mut ws).await, Some(Message::text("one")));
        // Nothing either way: the splice ends, and both sockets with it.
        let ended = within("the idle close", ws.next()).await;
        assert!(
            !matches!(ended, Some(Ok(Message::Text(_)))),
            "{engine}: {ended:?}"
        );
        let metrics = all_closed(proxy.admin, "the gauge back to 0").await;
        let idle = &[("route", "default"), ("reason", "idle")];
        let closed = "shadowtap_upgraded_connections_closed_total";
        assert_eq!(metric(&metrics, closed, idle), 1.0, "{engine}");
        assert_eq!(metric_sum(&metrics, closed, &[]), 1.0, "{engine}");
    }
}

#[tokio::test]
async fn wss_over_a_tls_listener() {
    let upstream = echo_server().await;
    let pki = Pki::new("test CA");
    let leaf = pki.server("leaf", &["localhost"]);
    for engine in ENGINES {
        let toml = with_listener_tls(&ws_toml(upstream, engine, ""), &leaf.pair());
        let proxy = Shadowtap::start(config(&toml)).await;
        let tls = handshake(
            proxy.addr,
            "localhost",
            client_config(&pki, &["http/1.1"], None),
        )
        .await
        .expect("TLS handshake");
        let (mut ws, response) = within(
            "wss handshake",
            tokio_tungstenite::client_async("wss://localhost/chat", tls),
        )
        .await
        .expect("wss through shadowtap");
        assert_eq!(response.status(), 101, "{engine}");
        ws.send(Message::text("secret")).await.unwrap();
        let echoed = within("echo", ws.next()).await.unwrap().unwrap();
        assert_eq!(echoed, Message::text("secret"), "{engine}");
        ws.close(None).await.unwrap();
    }
}

/// One WebSocket frame from a client (masked with a zero mask, so the payload reads as is).
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    frame
}

#[tokio::test]
async fn an_h2_client_by_extended_connect() {
    let upstream = echo_server().await;
    for engine in ENGINES {
        let proxy = Shadowtap::start(config(&ws_toml(upstream, engine, ""))).await;
        let (response, mut send) = extended_connect(proxy.addr).await;
        assert_eq!(response.status(), 200, "{engine}");
        assert!(response.headers().get("sec-websocket-accept").is_none());
        let mut recv = response.into_body();

        send.send_data(client_frame(0x1, b"over h2").into(), false)
            .unwrap();
        let got = read_over_h2(&mut recv, 2 + 7).await;
        assert_eq!(got, [&[0x81, 7][..], b"over h2"].concat(), "{engine}");

        // The client's close, answered by the server's; then both ends.
        send.send_data(client_frame(0x8, &[0x03, 0xe8]).into(), true)
            .unwrap();
        let mut got = Vec::new();
        while let Some(chunk) = within("close over h2", recv.data()).await {
            let chunk = chunk.unwrap();
            recv.flow_control().release_capacity(chunk.len()).unwrap();
            got.extend_from_slice(&chunk);
        }
        assert_eq!(
            got.first(),
            Some(&0x88),
            "{engine}: the server's close: {got:?}"
        );
        let metrics = all_closed(proxy.admin, "the h2 WebSocket closed").await;
        let upgrades = &[("route", "default"), ("protocol", "websocket")];
        assert_eq!(metric(&metrics, "shadowtap_upgrades_total", upgrades), 1.0);
        let requests = &[("route", "default"), ("status_class", "2xx")];
        assert_eq!(
            metric_sum(&metrics, "shadowtap_requests_total", requests),
            1.0
        );
    }
}

#[tokio::test]
async fn through_the_binary_on_both_engines() {
    let upstream = echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    for engine in ENGINES {
        let path = dir.path().join(format!("{engine}.toml"));
        std::fs::write(&path, ws_toml(upstream, engine, "")).unwrap();
        let mut process = Process::start(
            &[
                "run",
                "--config",
                path.to_str().unwrap(),
                "--log-format",
                "json",
            ],
            &[("RUST_LOG", "info")],
        );
        let limit = Duration::from_secs(20);
        let proxy = process.announced("listening", limit).await;
        let admin = process.announced("admin listening", limit).await;
        let mut ws = connect(proxy, "/chat").await;
        ws.send(Message::text("through the binary")).await.unwrap();
        let echoed = next(&mut ws).await;
        assert_eq!(
            echoed,
            Some(Message::text("through the binary")),
            "{engine}"
        );
        ws.send(Message::binary(vec![0u8, 1, 2, 255]))
            .await
            .unwrap();
        let echoed = next(&mut ws).await;
        assert_eq!(
            echoed,
            Some(Message::binary(vec![0u8, 1, 2, 255])),
            "{engine}"
        );
        ws.close(None).await.unwrap();
        while let Some(Ok(_)) = within("close", ws.next()).await {}
        drop(ws);
        let metrics = all_closed(admin, "the binary's WebSocket closed").await;
        let upgrades = &[("route", "default"), ("protocol", "websocket")];
        assert_eq!(metric(&metrics, "shadowtap_upgrades_total", upgrades), 1.0);
        let status = process.terminate().await;
        assert!(status.success(), "{engine}: {status}");
    }
}

/// The shutdown grace period of the shutdown tests: long enough to echo inside it, short
/// enough for a test.
const GRACE: Duration = Duration::from_millis(1500);

/// [`ws_toml`] with a [`GRACE`] grace period.
fn ws_toml_with_grace(upstream: SocketAddr, engine: &str) -> String {
    let toml = ws_toml(upstream, engine, "");
    assert!(toml.contains("grace_period = \"5s\""));
    toml.replace("grace_period = \"5s\"", "grace_period = \"1500ms\"")
}

/// shadowtap in-process, as [`Shadowtap`] but keeping its metrics, which outlive `serve`.
struct InProcess {
    addr: SocketAddr,
    metrics: std::sync::Arc<shadowtap::telemetry::Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<()>,
}

impl InProcess {
    async fn start(toml: &str) -> InProcess {
        let app = shadowtap::BoundApp::bind(config(toml)).await.unwrap();
        let addr = app.listen_addrs()[0];
        let metrics = app.metrics();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(app.serve(async move {
            let _ = stopped.await;
        }));
        InProcess {
            addr,
            metrics,
            stop: Some(stop),
            served,
        }
    }

    /// Signals shutdown; the instant it was signalled.
    fn begin_shutdown(&mut self) -> Instant {
        let _ = self.stop.take().unwrap().send(());
        Instant::now()
    }

    /// `shadowtap_upgraded_connections_closed_total{route="default",reason}`.
    fn closed(&self, reason: &str) -> f64 {
        let labels = &[("route", "default"), ("reason", reason)];
        metric(
            &self.metrics.render(),
            "shadowtap_upgraded_connections_closed_total",
            labels,
        )
    }
}

/// Waits for the end of an upgraded connection whose bytes no longer come: `ws.next()` gives
/// no more messages (`None`, or an error for a connection closed without a close frame).
async fn cut<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match within("the connection to be closed", ws.next()).await {
        None | Some(Err(_)) => {}
        other => panic!("a message after the cut: {other:?}"),
    }
}

/// Checks `ended` (since shutdown was signalled) is the grace period, give or take.
fn at_the_deadline(what: &str, ended: Duration) {
    assert!(
        ended >= GRACE.mul_f32(0.9),
        "{what} after {ended:?}, before the {GRACE:?} grace period ran out"
    );
    assert!(
        ended < GRACE + Duration::from_secs(3),
        "{what} after {ended:?}, long after the {GRACE:?} grace period"
    );
}

#[tokio::test]
async fn a_websocket_carries_on_through_the_grace_period_then_is_closed_and_counted() {
    let upstream = echo_server().await;
    for engine in ENGINES {
        let mut proxy = InProcess::start(&ws_toml_with_grace(upstream, engine)).await;
        let mut ws = connect(proxy.addr, "/chat").await;
        ws.send(Message::text("before")).await.unwrap();
        assert_eq!(next(&mut ws).await, Some(Message::text("before")));

        let signalled = proxy.begin_shutdown();
        tokio::time::sleep(GRACE / 4).await;
        ws.send(Message::text("during the grace period"))
            .await
            .unwrap();
        assert_eq!(
            next(&mut ws).await,
            Some(Message::text("during the grace period")),
            "{engine}: the WebSocket still works after shutdown was signalled"
        );
        cut(&mut ws).await;
        at_the_deadline(
            &format!("{engine}: the WebSocket closed"),
            signalled.elapsed(),
        );
        within("serve() to return", &mut proxy.served)
            .await
            .unwrap();
        at_the_deadline(&format!("{engine}: serve() returned"), signalled.elapsed());
        assert_eq!(proxy.closed("shutdown"), 1.0, "{engine}");
        assert_eq!(proxy.closed("ended"), 0.0, "{engine}");
        let open = &[("route", "default")];
        let metrics = proxy.metrics.render();
        assert_eq!(
            metric(&metrics, "shadowtap_upgraded_connections", open),
            0.0
        );
    }
}

#[tokio::test]
async fn a_websocket_that_ends_within_the_grace_period_ends_the_drain_early() {
    let upstream = echo_server().await;
    for engine in ENGINES {
        let mut proxy = InProcess::start(&ws_toml_with_grace(upstream, engine)).await;
        let mut ws = connect(proxy.addr, "/chat").await;
        let signalled = proxy.begin_shutdown();
        tokio::time::sleep(GRACE / 4).await;
        ws.send(Message::text("last words")).await.unwrap();
        assert_eq!(next(&mut ws).await, Some(Message::text("last words")));
        ws.close(None).await.unwrap();
        while let Some(Ok(_)) = within("close", ws.next()).await {}
        drop(ws);
        within("serve() to return", &mut proxy.served)
            .await
            .unwrap();
        assert!(
            signalled.elapsed() < GRACE,
            "{engine}: the drain waited {:?} for a closed WebSocket",
            signalled.elapsed()
        );
        assert_eq!(proxy.closed("ended"), 1.0, "{engine}");
        assert_eq!(proxy.closed("shutdown"), 0.0, "{engine}");
    }
}

#[tokio::test]
async fn an_h2_extended_connect_stream_carries_on_through_the_grace_period() {
    let upstream = echo_server().await;
    let mut proxy = InProcess::start(&ws_toml_with_grace(upstream, "hyper")).await;
    let (response, mut send) = extended_connect(proxy.addr).await;
    assert_eq!(response.status(), 200);
    let mut recv = response.into_body();

    let signalled = proxy.begin_shutdown();
    tokio::time::sleep(GRACE / 4).await;
    send.send_data(client_frame(0x1, b"in the grace").into(), false)
        .unwrap();
    let got = read_over_h2(&mut recv, 2 + 12).await;
    assert_eq!(got, [&[0x81, 12][..], b"in the grace"].concat());
    // The stream (or the whole connection) ends at the deadline.
    if let Some(Ok(chunk)) = within("the stream to end", recv.data()).await {
        panic!("bytes after the cut: {chunk:?}");
    }
    at_the_deadline("the h2 stream ended", signalled.elapsed());
    within("serve() to return", &mut proxy.served)
        .await
        .unwrap();
    at_the_deadline("serve() returned", signalled.elapsed());
    assert_eq!(proxy.closed("shutdown"), 1.0);
}

#[tokio::test]
async fn sigterm_lets_a_websocket_carry_on_then_closes_it_and_exits_0() {
    let upstream = echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    for engine in ENGINES {
        let path = dir.path().join(format!("{engine}.toml"));
        std::fs::write(&path, ws_toml_with_grace(upstream, engine)).unwrap();
        let mut process = Process::start(
            &[
                "run",
                "--config",
                path.to_str().unwrap(),
                "--log-format",
                "json",
            ],
            &[("RUST_LOG", "info")],
        );
        let limit = Duration::from_secs(20);
        let proxy = process.announced("listening", limit).await;
        let mut ws = connect(proxy, "/chat").await;
        ws.send(Message::text("before")).await.unwrap();
        assert_eq!(next(&mut ws).await, Some(Message::text("before")));

        process.signal("TERM");
        let signalled = Instant::now();
        process
            .wait_stderr(limit, |text| text.contains("shutting down").then_some(()))
            .await;
        ws.send(Message::text("after SIGTERM")).await.unwrap();
        assert_eq!(
            next(&mut ws).await,
            Some(Message::text("after SIGTERM")),
            "{engine}: the WebSocket still works after SIGTERM"
        );
        cut(&mut ws).await;
        at_the_deadline(
            &format!("{engine}: the WebSocket closed"),
            signalled.elapsed(),
        );
        let status = process.wait_exit(GRACE + STEP).await;
        assert!(status.success(), "{engine}: {status}");
        at_the_deadline(
            &format!("{engine}: the process exited"),
            signalled.elapsed(),
        );
        let closing = process
            .stderr()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|event| event["message"] == "grace period over; closing upgraded connections")
            .unwrap_or_else(|| panic!("{engine}: no closing line in\n{}", process.stderr()));
        assert_eq!(closing["remaining"], 1, "{engine}: {closing}");
    }
}

/// A raw upstream that switches to a made-up protocol (`Upgrade: echo`) and echoes every
/// byte; each connection sends, when it ends, how its read ended (`Ok(0)`: the proxy shut
/// its side down) and when.
async fn raw_echo_upstream() -> (
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<(std::io::Result<usize>, Instant)>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (ended_tx, ended) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let ended_tx = ended_tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                raw::read_until_head(&mut stream, &mut head).await.unwrap();
                stream
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n")
                    .await
                    .unwrap();
                let mut buf = [0u8; 1024];
                let end = loop {
                    match stream.read(&mut buf).await {
                        Ok(0) => break Ok(0),
                        Ok(n) => {
                            if let Err(error) = stream.write_all(&buf[..n]).await {
                                break Err(error);
                            }
                        }
                        Err(error) => break Err(error),
                    }
                };
                let _ = ended_tx.send((end, Instant::now()));
            });
        }
    });
    (addr, ended)
}

#[tokio::test]
async fn a_raw_upgrade_is_closed_on_both_sides_at_the_grace_deadline() {
    let (upstream, mut upstream_ended) = raw_echo_upstream().await;
    for engine in ENGINES {
        let mut proxy = InProcess::start(&ws_toml_with_grace(upstream, engine)).await;
        let mut client = TcpStream::connect(proxy.addr).await.unwrap();
        client
            .write_all(
                b"GET /raw HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n",
            )
            .await
            .unwrap();
        let mut head = Vec::new();
        within("the 101", raw::read_until_head(&mut client, &mut head))
            .await
            .unwrap();
        assert!(head.starts_with(b"HTTP/1.1 101"), "{engine}");

        let signalled = proxy.begin_shutdown();
        tokio::time::sleep(GRACE / 4).await;
        client.write_all(b"still there?").await.unwrap();
        let mut echoed = [0u8; 12];
        within("the echo", client.read_exact(&mut echoed))
            .await
            .unwrap();
        assert_eq!(&echoed, b"still there?", "{engine}");

        // The proxy shuts the client's socket: an end (FIN), not a reset, with nothing
        // pending either way.
        let mut rest = Vec::new();
        let read = within("the client's end", client.read_to_end(&mut rest)).await;
        assert_eq!(read.unwrap(), 0, "{engine}: {rest:?}");
        at_the_deadline(
            &format!("{engine}: the client's side closed"),
            signalled.elapsed(),
        );
        let (end, at) = within("the upstream's end", upstream_ended.recv())
            .await
            .unwrap();
        assert_eq!(
            end.unwrap(),
            0,
            "{engine}: the upstream's side ended cleanly"
        );
        at_the_deadline(
            &format!("{engine}: the upstream's side closed"),
            at - signalled,
        );
        within("serve() to return", &mut proxy.served)
            .await
            .unwrap();
        assert_eq!(proxy.closed("shutdown"), 1.0, "{engine}");
    }
}

#[tokio::test]
async fn wss_carries_on_through_the_grace_period_then_is_closed() {
    let upstream = echo_server().await;
    let pki = Pki::new("test CA");
    let leaf = pki.server("leaf", &["localhost"]);
    for engine in ENGINES {
        let toml = with_listener_tls(&ws_toml_with_grace(upstream, engine), &leaf.pair());
        let mut proxy = InProcess::start(&toml).await;
        let tls = handshake(
            proxy.addr,
            "localhost",
            client_config(&pki, &["http/1.1"], None),
        )
        .await
        .expect("TLS handshake");
        let (mut ws, _) = within(
            "wss handshake",
            tokio_tungstenite::client_async("wss://localhost/chat", tls),
        )
        .await
        .expect("wss through shadowtap");
        let signalled = proxy.begin_shutdown();
        tokio::time::sleep(GRACE / 4).await;
        ws.send(Message::text("secret")).await.unwrap();
        let echoed = within("echo", ws.next()).await.unwrap().unwrap();
        assert_eq!(echoed, Message::text("secret"), "{engine}");
        cut(&mut ws).await;
        at_the_deadline(&format!("{engine}: wss closed"), signalled.elapsed());
        within("serve() to return", &mut proxy.served)
            .await
            .unwrap();
        assert_eq!(proxy.closed("shutdown"), 1.0, "{engine}");
    }
}
