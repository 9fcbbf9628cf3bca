#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Host (RFC 9112 §3.2) and Via (RFC 9110 §7.6.3) on both HTTP/1.1 engines and over h2c:
//! a missing, repeated or invalid Host is a 400 with nothing forwarded; an absolute-form
//! target's authority (or HTTP/2's `:authority`) wins over `Host` for routing and for the
//! forwarded Host; `Via` is appended on requests (primary and shadow alike) and responses.

mod support;

use std::time::Duration;
use support::shadow::{mirror_toml, received_at_least, Policy};
use support::*;

/// Two upstreams routed by host: `internal.example` -> `internal`, anything else -> `public`.
/// A request routed by one host and forwarded with the other shows at once.
fn by_host_toml(internal: &Upstream, public: &Upstream, listener_extra: &str) -> String {
    let head = listener_and_admin(listener_extra);
    format!(
        r#"{head}
[upstreams.internal]
url = "http://{}"

[upstreams.public]
url = "http://{}"

[[routes]]
name = "internal"
host = "internal.example"
primary = "internal"

[[routes]]
name = "public"
primary = "public"
"#,
        internal.addr, public.addr
    )
}

async fn recording(name: &'static str) -> Upstream {
    upstream()
        .fallback(move |_| async move { status(http::StatusCode::OK, name) })
        .start()
        .await
}

async fn with_engine(
    internal: &Upstream,
    public: &Upstream,
    engine: &str,
    extra: &str,
) -> Shadowtap {
    let listener = format!("{}\n{extra}", engine_line(engine));
    Shadowtap::start(config(&by_host_toml(internal, public, &listener))).await
}

#[tokio::test]
async fn missing_repeated_or_invalid_host_is_refused_on_both_engines() {
    let internal = recording("internal").await;
    let public = recording("public").await;
    let shapes: [(&str, &str); 12] = [
        ("no Host on HTTP/1.1", "GET /x HTTP/1.1\r\n\r\n"),
        (
            "no Host on HTTP/1.1, absolute-form",
            "GET http://internal.example/x HTTP/1.1\r\n\r\n",
        ),
        (
            "two equal Host fields",
            "GET /x HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        ),
        (
            "two different Host fields",
            "GET /x HTTP/1.1\r\nHost: public.example\r\nHost: internal.example\r\n\r\n",
        ),
        (
            "two Host fields on HTTP/1.0",
            "GET /x HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
        ),
        ("Host with a space", "GET /x HTTP/1.1\r\nHost: a b\r\n\r\n"),
        (
            "Host with userinfo",
            "GET /x HTTP/1.1\r\nHost: user@a\r\n\r\n",
        ),
        (
            "Host list",
            "GET /x HTTP/1.1\r\nHost: a, internal.example\r\n\r\n",
        ),
        (
            "Host with a bad port",
            "GET /x HTTP/1.1\r\nHost: a:8o\r\n\r\n",
        ),
        ("Host with a path", "GET /x HTTP/1.1\r\nHost: a/b\r\n\r\n"),
        (
            "unclosed IP literal",
            "GET /x HTTP/1.1\r\nHost: [::1\r\n\r\n",
        ),
        (
            "absolute-form with userinfo",
            "GET http://u@internal.example/x HTTP/1.1\r\nHost: internal.example\r\n\r\n",
        ),
    ];
    let mut failures = Vec::new();
    for engine in ENGINES {
        let proxy = with_engine(&internal, &public, engine, "").await;
        for (shape, request) in shapes {
            let (answer, closed) =
                raw_exchange_within(proxy.addr, request.as_bytes(), Duration::from_secs(2)).await;
            let refused =
                answer.starts_with("HTTP/1.1 400 ") || answer.starts_with("HTTP/1.0 400 ");
            if !refused || !closed {
                failures.push(format!(
                    "{engine}: {shape}: closed {closed}, got {answer:?}"
                ));
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let forwarded = internal.count() + public.count();
    assert!(
        failures.is_empty() && forwarded == 0,
        "forwarded {forwarded}\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn valid_hosts_are_forwarded_on_both_engines() {
    let internal = recording("internal").await;
    let public = recording("public").await;
    for engine in ENGINES {
        let proxy = with_engine(&internal, &public, engine, "").await;
        for (host, upstream) in [
            ("internal.example", "internal"),
            ("INTERNAL.example.:8080", "internal"),
            ("[::1]:80", "public"),
            ("127.0.0.1", "public"),
        ] {
            let request = format!("GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            let answer = raw_exchange(proxy.addr, request.as_bytes()).await;
            assert!(answer.ends_with(upstream), "{engine}: {host}: {answer}");
        }
        // HTTP/1.0 needs no Host.
        let answer = raw_exchange(proxy.addr, b"GET /x HTTP/1.0\r\n\r\n").await;
        assert!(answer.ends_with("public"), "{engine}: {answer}");
    }
}

/// RFC 9112 §3.2.2: the absolute-form target's authority is the request's host, for the
/// route and for the Host the upstream receives.
#[tokio::test]
async fn absolute_form_authority_wins_for_routing_and_forwarded_host_on_both_engines() {
    let internal = recording("internal").await;
    let public = recording("public").await;
    for engine in ENGINES {
        let proxy = with_engine(&internal, &public, engine, "").await;
        let request = "GET http://internal.example/x HTTP/1.1\r\nHost: public.example\r\nConnection: close\r\n\r\n";
        let answer = raw_exchange(proxy.addr, request.as_bytes()).await;
        assert!(answer.ends_with("internal"), "{engine}: {answer}");
        let seen = internal.last();
        assert_eq!(seen.header_all("host"), ["internal.example"], "{engine}");
        assert_eq!(
            seen.header("x-forwarded-host"),
            Some("internal.example"),
            "{engine}"
        );
        assert_eq!(seen.uri.path(), "/x", "{engine}");

        // And the other way round.
        let request = "GET http://public.example:8080/y HTTP/1.1\r\nHost: internal.example\r\nConnection: close\r\n\r\n";
        let answer = raw_exchange(proxy.addr, request.as_bytes()).await;
        assert!(answer.ends_with("public"), "{engine}: {answer}");
        assert_eq!(
            public.last().header_all("host"),
            ["public.example:8080"],
            "{engine}"
        );
    }
}

/// Over h2c the `:authority` wins over a `host` field the same way.
#[tokio::test]
async fn h2c_authority_wins_over_a_host_field() {
    let internal = recording("internal").await;
    let public = recording("public").await;
    let proxy = with_engine(&internal, &public, "native", "").await;
    // hyper's connection-level client: `:authority` is the URI's, whatever socket it is on.
    let mut sender = h2_connection(proxy.addr).await;
    let mut request = get_request("http://internal.example/x");
    request
        .headers_mut()
        .insert(http::header::HOST, "public.example".parse().unwrap());
    let response = within("h2c request", sender.send_request(request))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = internal.last();
    assert_eq!(seen.header_all("host"), ["internal.example"]);
    assert_eq!(public.count(), 0);
}

#[tokio::test]
async fn via_is_appended_to_requests_and_responses_on_both_engines() {
    let app = upstream()
        .fallback(|r: Received| async move {
            let mut response = http::Response::new(full(r.header_all("via").join(" | ")));
            response
                .headers_mut()
                .insert("via", "1.1 app-side".parse().unwrap());
            response
        })
        .start()
        .await;
    for engine in ENGINES {
        for (extra, ours) in [
            ("", Some("shadowtap")),
            ("via = \"edge-7\"", Some("edge-7")),
            ("via = true", Some("shadowtap")),
            ("via = false", None),
        ] {
            let proxy = shadowtap_on(app.addr, engine, extra, "").await;
            let request =
                "GET /v HTTP/1.1\r\nHost: a\r\nVia: 1.0 front\r\nConnection: close\r\n\r\n";
            let answer = raw_exchange(proxy.addr, request.as_bytes()).await;
            let lower = answer.to_ascii_lowercase();
            let (request_via, response_via) = match ours {
                Some(name) => (
                    format!("1.0 front, 1.1 {name}"),
                    format!("via: 1.1 app-side, 1.1 {name}\r\n"),
                ),
                None => ("1.0 front".to_string(), "via: 1.1 app-side\r\n".to_string()),
            };
            assert!(
                answer.ends_with(&request_via),
                "{engine} {extra}: upstream saw {answer}"
            );
            assert!(
                lower.contains(&response_via),
                "{engine} {extra}: client got {answer}"
            );
            assert_eq!(
                lower.matches("\r\nvia:").count(),
                1,
                "{engine} {extra}: {answer}"
            );
        }
    }
    // An HTTP/2 request is received as `2`.
    let proxy = Shadowtap::in_front_of(app.addr).await;
    let reply = send(&h2_client(), get_request(&proxy.url("/v")))
        .await
        .unwrap();
    assert_eq!(reply.text(), "2 shadowtap");
    assert_eq!(reply.headers["via"], "1.1 app-side, 1.1 shadowtap");
}

/// The shadow's copy carries the Via the primary's request carried.
#[tokio::test]
async fn shadow_copies_carry_the_same_via_as_the_primary() {
    for engine in ENGINES {
        let primary = recording("primary").await;
        let shadow = recording("shadow").await;
        let toml = engine_toml(
            &mirror_toml(primary.addr, shadow.addr, &Policy::default()),
            engine,
        );
        let proxy = Shadowtap::start(config(&toml)).await;
        let request = "GET /m HTTP/1.1\r\nHost: a\r\nVia: 1.0 front\r\nConnection: close\r\n\r\n";
        let answer = raw_exchange(proxy.addr, request.as_bytes()).await;
        assert!(answer.ends_with("primary"), "{engine}: {answer}");
        let copy = received_at_least(&shadow, 1).await.remove(0);
        let primary_via = primary.last().header_all("via").join(",");
        assert_eq!(primary_via, "1.0 front, 1.1 shadowtap", "{engine}");
        assert_eq!(copy.header_all("via").join(","), primary_via, "{engine}");
    }
}

#[test]
fn a_bad_via_pseudonym_is_an_error_naming_the_key() {
    for bad in ["\"two words\"", "\"\"", "\"a,b\"", "\"ünï\"", "5"] {
        let text = simple_toml("127.0.0.1:1".parse().unwrap(), &format!("via = {bad}"), "");
        let error = shadowtap::config::Config::from_toml(&text, &Default::default())
            .err()
            .unwrap_or_else(|| panic!("via = {bad} was accepted"))
            .to_string();
        assert!(error.contains("listeners[0].via"), "via = {bad}: {error}");
    }
    // The effective config prints `via` as the file takes it, and it reads back the same.
    for (good, printed_line) in [
        ("via = false", "via = false"),
        ("via = \"edge.1\"", "via = \"edge.1\""),
        ("", "via = \"shadowtap\""),
    ] {
        let text = simple_toml("127.0.0.1:1".parse().unwrap(), good, "");
        let printed = config(&text).to_toml().unwrap();
        assert!(printed.contains(printed_line), "{good}: {printed}");
        let again = simple_toml("127.0.0.1:1".parse().unwrap(), printed_line, "");
        assert!(
            config(&again).to_toml().unwrap().contains(printed_line),
            "{good}"
        );
    }
}

/// The element names the version each message was received as: an HTTP/1.0 upstream's
/// answer gets `1.0`.
#[tokio::test]
async fn via_names_the_version_an_answer_was_received_as() {
    fn answer(_: &str) -> Vec<u8> {
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
    }
    let app = scripted_upstream(answer).await;
    for engine in ENGINES {
        let proxy = shadowtap_with_engine(app.addr, engine).await;
        let answer = raw_exchange(
            proxy.addr,
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(
            answer.contains("via: 1.0 shadowtap\r\n"),
            "{engine}: {answer}"
        );
    }
}
