#![allow(clippy::unwrap_used, clippy::expect_used)]
//! TLS towards upstreams, end to end: real TLS upstreams on `127.0.0.1:0` with certificates
//! of a private CA made at run time, behind the real app on both HTTP/1.1 engines.

mod support;

use http::StatusCode;
use std::sync::atomic::Ordering;
use support::shadow::{eventually, outcomes, shadow_gauge};
use support::upstream_tls::{tls_upstream, Pki, TlsServer, TlsUpstream};
use support::*;

const HTTP1: &[&[u8]] = &[b"http/1.1"];

/// A config with one route `default` to upstream `app` at `url`, `tls` lines in its
/// `[upstreams.app.tls]` and `upstream_extra` lines in `[upstreams.app]`, on `engine`.
fn tls_toml(url: &str, upstream_extra: &str, tls: &str, engine: &str) -> String {
    let head = listener_and_admin(&engine_line(engine));
    format!(
        "{head}\n[upstreams.app]\nurl = \"{url}\"\nconnect_timeout = \"2s\"\n{upstream_extra}\n\
         [upstreams.app.tls]\n{tls}\n\n[[routes]]\nname = \"default\"\nprimary = \"app\"\n"
    )
}

async fn upstream_on(pki: &Pki, names: &[&str]) -> TlsUpstream {
    tls_upstream(TlsServer {
        pki,
        names,
        alpn: HTTP1,
        client_ca: None,
    })
    .await
}

#[tokio::test]
async fn an_https_primary_with_a_private_ca_is_reached_over_one_kept_alive_connection() {
    let pki = Pki::new("primary");
    // The URL's host is an IP: verified as the certificate's IP SAN.
    let upstream = upstream_on(&pki, &["127.0.0.1"]).await;
    for engine in ENGINES {
        let before = upstream.accepted.load(Ordering::SeqCst);
        let toml = tls_toml(
            &upstream.url(),
            "",
            &format!("ca_file = {:?}", pki.ca_file()),
            engine,
        );
        let proxy = Shadowtap::start(config(&toml)).await;
        let client = http1_client();
        for index in 0..5 {
            let url = proxy.url(&format!("/item/{index}"));
            let reply = send(&client, get_request(&url)).await.unwrap();
            assert_eq!(reply.status, StatusCode::OK, "{engine}: {}", reply.text());
            assert_eq!(
                reply.text(),
                format!("tls HTTP/1.1 /item/{index}"),
                "{engine}"
            );
        }
        // A body of many TLS records coming down, and one going up.
        let reply = send(&client, get_request(&proxy.url("/big/1000000")))
            .await
            .unwrap();
        let expected = format!("tls HTTP/1.1 /big/1000000{}", "b".repeat(1_000_000));
        assert!(
            reply.text() == expected,
            "{engine}: {} bytes",
            reply.body.len()
        );
        let reply = send(
            &client,
            post_request(&proxy.url("/upload"), vec![b'x'; 100_000]),
        )
        .await
        .unwrap();
        assert_eq!(reply.text(), "tls HTTP/1.1 /upload", "{engine}");
        assert_eq!(
            upstream.accepted.load(Ordering::SeqCst) - before,
            1,
            "{engine}: seven requests, one TLS connection"
        );
    }
    assert_eq!(upstream.failed_handshakes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_new_connection_to_an_upstream_resumes_the_session_of_an_earlier_one() {
    let pki = Pki::new("resume");
    let upstream = upstream_on(&pki, &["127.0.0.1"]).await;
    let ca = format!("ca_file = {:?}", pki.ca_file());
    // No idle connection kept: every request dials, and all but the first resume.
    let toml = tls_toml(&upstream.url(), "pool_max_idle = 0", &ca, "native");
    let proxy = Shadowtap::start(config(&toml)).await;
    for index in 0..3 {
        let reply = get(&proxy.url(&format!("/r/{index}"))).await;
        assert_eq!(reply.text(), format!("tls HTTP/1.1 /r/{index}"));
    }
    assert_eq!(upstream.accepted.load(Ordering::SeqCst), 3);
    assert_eq!(upstream.resumed.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn h2_over_tls_is_spoken_when_named_and_auto_follows_what_the_upstream_chooses_by_alpn() {
    let pki = Pki::new("alpn");
    let ca = format!("ca_file = {:?}", pki.ca_file());
    let h2_first: &[&[u8]] = &[b"h2", b"http/1.1"];
    // (what the upstream accepts by ALPN, protocol, the version it is spoken to in)
    for (alpn, protocol, version) in [
        (h2_first, "http2", "HTTP/2.0"),
        (h2_first, "auto", "HTTP/2.0"),
        (HTTP1, "auto", "HTTP/1.1"),
        (h2_first, "http1", "HTTP/1.1"),
    ] {
        let upstream = tls_upstream(TlsServer {
            pki: &pki,
            names: &["127.0.0.1"],
            alpn,
            client_ca: None,
        })
        .await;
        for engine in ENGINES {
            let protocol_line = format!("protocol = \"{protocol}\"");
            let toml = tls_toml(&upstream.url(), &protocol_line, &ca, engine);
            let proxy = Shadowtap::start(config(&toml)).await;
            let client = http1_client();
            for index in 0..3 {
                let url = proxy.url(&format!("/v/{index}"));
                let reply = send(&client, get_request(&url)).await.unwrap();
                assert_eq!(
                    reply.text(),
                    format!("tls {version} /v/{index}"),
                    "{protocol} on {engine}"
                );
            }
            let reply = send(&client, post_request(&proxy.url("/up"), vec![b'y'; 70_000]))
                .await
                .unwrap();
            assert_eq!(reply.text(), format!("tls {version} /up"), "{protocol}");
        }
        // One connection per proxy (auto's first one, which found h2, is given up for the
        // h2 client's own).
        let per_proxy = if protocol == "auto" && version == "HTTP/2.0" {
            2
        } else {
            1
        };
        assert_eq!(
            upstream.accepted.load(Ordering::SeqCst),
            per_proxy * ENGINES.len(),
            "{protocol} with {alpn:?}"
        );
    }
}

#[tokio::test]
async fn an_upstream_certificate_of_another_ca_is_a_502_counted_as_upstream_tls() {
    let theirs = Pki::new("theirs");
    let ours = Pki::new("ours");
    let upstream = upstream_on(&theirs, &["127.0.0.1"]).await;
    for (engine, protocol) in [("native", "http1"), ("hyper", "http1"), ("native", "http2")] {
        let toml = tls_toml(
            &upstream.url(),
            &format!("protocol = \"{protocol}\""),
            &format!("ca_file = {:?}", ours.ca_file()),
            engine,
        );
        let proxy = Shadowtap::start(config(&toml)).await;
        let reply = get(&proxy.url("/x")).await;
        assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{engine} {protocol}");
        assert_eq!(
            proxy.proxy_errors("upstream_tls").await,
            1.0,
            "{engine} {protocol}"
        );
        assert_eq!(proxy.proxy_errors("upstream_unreachable").await, 0.0);
    }
    assert_eq!(upstream.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_verification_name_is_server_name_when_set_and_a_name_not_in_the_certificate_fails() {
    let pki = Pki::new("names");
    let upstream = upstream_on(&pki, &["api.internal"]).await;
    let ca = format!("ca_file = {:?}", pki.ca_file());
    for (server_name, status) in [
        (Some("api.internal"), StatusCode::OK),
        (Some("other.internal"), StatusCode::BAD_GATEWAY),
        // The URL's host, 127.0.0.1, is not in the certificate.
        (None, StatusCode::BAD_GATEWAY),
    ] {
        let tls = match server_name {
            Some(name) => format!("{ca}\nserver_name = \"{name}\""),
            None => ca.clone(),
        };
        let proxy = Shadowtap::start(config(&tls_toml(&upstream.url(), "", &tls, "native"))).await;
        let reply = get(&proxy.url("/n")).await;
        assert_eq!(reply.status, status, "server_name {server_name:?}");
        let tls_errors = proxy.proxy_errors("upstream_tls").await;
        assert_eq!(tls_errors, f64::from(u8::from(status != StatusCode::OK)));
    }
}

#[tokio::test]
async fn a_client_certificate_is_presented_to_an_upstream_that_requires_one() {
    let server_ca = Pki::new("server");
    let client_ca = Pki::new("clients");
    let upstream = tls_upstream(TlsServer {
        pki: &server_ca,
        names: &["127.0.0.1"],
        alpn: HTTP1,
        client_ca: Some(&client_ca),
    })
    .await;
    let (cert, key) = client_ca.leaf_files("proxy");
    let ca = format!("ca_file = {:?}", server_ca.ca_file());
    let with_cert = format!("{ca}\nclient_cert = {cert:?}\nclient_key = {key:?}");
    for engine in ENGINES {
        let proxy =
            Shadowtap::start(config(&tls_toml(&upstream.url(), "", &with_cert, engine))).await;
        let reply = get(&proxy.url("/m")).await;
        assert_eq!(reply.status, StatusCode::OK, "{engine}: {}", reply.text());
        assert_eq!(reply.text(), "tls HTTP/1.1 /m");
    }
    assert_eq!(upstream.failed_handshakes.load(Ordering::SeqCst), 0);
    // Without one the upstream refuses the handshake (in TLS 1.3 the client learns it from
    // an alert at its first read): a TLS failure, and nothing reaches the upstream's handler.
    for (engine, protocol) in [("native", "http1"), ("hyper", "http1"), ("native", "http2")] {
        let protocol = format!("protocol = \"{protocol}\"");
        let toml = tls_toml(&upstream.url(), &protocol, &ca, engine);
        let proxy = Shadowtap::start(config(&toml)).await;
        let reply = get(&proxy.url("/m")).await;
        assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{engine} {protocol}");
        assert_eq!(
            proxy.proxy_errors("upstream_tls").await,
            1.0,
            "{engine} {protocol}"
        );
    }
    assert_eq!(upstream.requests.load(Ordering::SeqCst), 2);
    until("the upstream to count the refused handshakes", || {
        upstream.failed_handshakes.load(Ordering::SeqCst) >= 3
    })
    .await;
}

/// A route `default` to the TLS primary `app`, mirrored 100 % to the TLS shadow `shadow`;
/// `shadow_tls` lines in `[upstreams.shadow.tls]`, `global` lines in `[mirror]`.
fn mirrored_toml(
    primary: &TlsUpstream,
    primary_ca: &str,
    shadow: &TlsUpstream,
    shadow_tls: &str,
    global: &str,
) -> String {
    let head = listener_and_admin("");
    format!(
        "{head}\n[upstreams.app]\nurl = \"{}\"\n[upstreams.app.tls]\nca_file = {primary_ca:?}\n\n\
         [upstreams.shadow]\nurl = \"{}\"\nconnect_timeout = \"1s\"\n[upstreams.shadow.tls]\n{shadow_tls}\n\n\
         [mirror]\n{global}\n\n[[routes]]\nname = \"default\"\nprimary = \"app\"\n\n\
         [[routes.mirror.shadows]]\nupstream = \"shadow\"\npercent = 100\n",
        primary.url(),
        shadow.url(),
    )
}

#[tokio::test]
async fn an_https_shadow_is_mirrored_to_and_compared_end_to_end() {
    let pki = Pki::new("mesh");
    let primary = upstream_on(&pki, &["127.0.0.1"]).await;
    let shadow = upstream_on(&pki, &["127.0.0.1"]).await;
    let ca = pki.ca_file();
    let toml = mirrored_toml(&primary, &ca, &shadow, &format!("ca_file = {ca:?}"), "");
    let proxy = Shadowtap::start(config(&toml)).await;
    let mut metrics = String::new();
    for index in 0..4 {
        let reply = get(&proxy.url(&format!("/m/{index}"))).await;
        assert_eq!(reply.text(), format!("tls HTTP/1.1 /m/{index}"));
        // One at a time, so the shadow's pooled connection is back before the next copy.
        metrics = eventually(&proxy, "the pair to match", |metrics| {
            metric_sum(
                metrics,
                "shadowtap_comparisons_total",
                &[
                    ("route", "default"),
                    ("shadow", "shadow"),
                    ("result", "match"),
                ],
            ) == f64::from(index + 1)
        })
        .await;
    }
    assert_eq!(outcomes(&metrics)["completed"], 4, "{metrics}");
    assert_eq!(shadow.requests.load(Ordering::SeqCst), 4);
    assert_eq!(
        shadow.accepted.load(Ordering::SeqCst),
        1,
        "pooled: one connection"
    );
}

#[tokio::test]
async fn an_https_shadow_that_fails_its_handshake_never_touches_the_client_and_opens_the_breaker() {
    let pki = Pki::new("live");
    let stranger = Pki::new("stranger");
    let primary = upstream_on(&pki, &["127.0.0.1"]).await;
    let shadow = upstream_on(&stranger, &["127.0.0.1"]).await;
    let ca = pki.ca_file();
    let breaker = "[mirror.circuit_breaker]\nwindow = \"30s\"\nmin_requests = 4\n\
                   error_ratio = 0.5\ncooldown = \"60s\"";
    let toml = mirrored_toml(
        &primary,
        &ca,
        &shadow,
        &format!("ca_file = {ca:?}"),
        breaker,
    );
    let proxy = Shadowtap::start(config(&toml)).await;
    let client = http1_client();
    for index in 0..6 {
        let path = format!("/p/{index}");
        let reply = send(&client, get_request(&proxy.url(&path))).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.text(), format!("tls HTTP/1.1 {path}"));
    }
    let metrics = eventually(
        &proxy,
        "the breaker to open on handshake errors",
        |metrics| shadow_gauge(metrics, "circuit_state") != 0.0,
    )
    .await;
    let seen = outcomes(&metrics);
    assert!(seen["error"] >= 4, "{seen:?}");
    assert_eq!(seen["completed"], 0, "{seen:?}");
    assert_eq!(
        proxy.proxy_errors("upstream_tls").await,
        0.0,
        "live path untouched"
    );
    assert_eq!(shadow.requests.load(Ordering::SeqCst), 0);
    assert!(shadow.failed_handshakes.load(Ordering::SeqCst) >= 4);
}

#[tokio::test]
async fn check_accepts_insecure_skip_verify_but_warns_about_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("insecure.toml");
    let toml = tls_toml(
        "https://127.0.0.1:9443",
        "",
        "insecure_skip_verify = true",
        "native",
    );
    std::fs::write(&file, toml).unwrap();
    let output = std::process::Command::new(BIN)
        .args(["check", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("WARNING: upstreams.app.tls.insecure_skip_verify = true")
            && stderr.contains("NOT verified"),
        "{stderr}"
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("insecure_skip_verify = true"), "{printed}");
}

#[tokio::test]
async fn insecure_skip_verify_reaches_an_upstream_whose_certificate_nobody_signed_for_us() {
    let stranger = Pki::new("unknown");
    let upstream = upstream_on(&stranger, &["somewhere.else"]).await;
    let toml = tls_toml(&upstream.url(), "", "insecure_skip_verify = true", "native");
    let proxy = Shadowtap::start(config(&toml)).await;
    let reply = get(&proxy.url("/i")).await;
    assert_eq!(reply.text(), "tls HTTP/1.1 /i");
}

#[tokio::test]
async fn the_binary_logs_the_rustls_cause_of_a_failed_handshake_once_and_warns_of_skipped_checks() {
    let theirs = Pki::new("theirs");
    let ours = Pki::new("ours");
    let upstream = upstream_on(&theirs, &["127.0.0.1"]).await;
    let listen = closed_port().await.to_string();
    let admin = closed_port().await.to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("run.toml");
    let toml = format!(
        "[[listeners]]\naddress = \"{listen}\"\n[admin]\naddress = \"{admin}\"\n\
         [upstreams.app]\nurl = \"{}\"\ntls = {{ ca_file = {:?} }}\n\
         [upstreams.lab]\nurl = \"https://127.0.0.1:9\"\ntls = {{ insecure_skip_verify = true }}\n\
         [[routes]]\nprimary = \"app\"\n",
        upstream.url(),
        ours.ca_file(),
    );
    std::fs::write(&file, toml).unwrap();
    let mut child = Process::start(
        &["run", "--config", file.to_str().unwrap()],
        &[("RUST_LOG", "info"), ("NO_COLOR", "")],
    );
    child.ready(&admin).await;
    let reply = get(&format!("http://{listen}/x")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    child
        .wait_stderr(STEP, |stderr| {
            stderr.contains("UnknownIssuer").then_some(())
        })
        .await;
    child.terminate().await;
    let stderr = child.stderr();
    let failed: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("request failed"))
        .collect();
    assert_eq!(failed.len(), 1, "{stderr}");
    assert!(failed[0].contains("upstream_tls"), "{stderr}");
    assert_eq!(stderr.matches("UnknownIssuer").count(), 1, "{stderr}");
    assert!(
        stderr.contains("upstreams.lab.tls.insecure_skip_verify = true"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_shadow_handshake_failure_is_logged_with_its_tls_cause() {
    let pki = Pki::new("live");
    let stranger = Pki::new("stranger");
    let primary = upstream_on(&pki, &["127.0.0.1"]).await;
    let shadow = upstream_on(&stranger, &["127.0.0.1"]).await;
    let listen = closed_port().await.to_string();
    let admin = closed_port().await.to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("run.toml");
    let ca = pki.ca_file();
    let toml = format!(
        "[[listeners]]\naddress = \"{listen}\"\n[admin]\naddress = \"{admin}\"\n\
         [upstreams.app]\nurl = \"{}\"\ntls = {{ ca_file = {ca:?} }}\n\
         [upstreams.shadow]\nurl = \"{}\"\ntls = {{ ca_file = {ca:?} }}\n\
         [[routes]]\nprimary = \"app\"\n[[routes.mirror.shadows]]\nupstream = \"shadow\"\n",
        primary.url(),
        shadow.url(),
    );
    std::fs::write(&file, toml).unwrap();
    let mut child = Process::start(
        &["run", "--config", file.to_str().unwrap()],
        &[("RUST_LOG", "warn"), ("NO_COLOR", "")],
    );
    child.ready(&admin).await;
    let reply = get(&format!("http://{listen}/s")).await;
    assert_eq!(reply.text(), "tls HTTP/1.1 /s");
    let line = child
        .wait_stderr(STEP, |stderr| {
            stderr
                .lines()
                .find(|line| line.contains("shadow request failed"))
                .map(str::to_string)
        })
        .await;
    assert!(line.contains("UnknownIssuer"), "{line}");
    child.terminate().await;
    let stderr = child.stderr();
    let live_failures = stderr
        .lines()
        .filter(|line| line.contains("request failed") && !line.contains("shadow request failed"))
        .count();
    assert_eq!(live_failures, 0, "the live request did not fail:\n{stderr}");
}
