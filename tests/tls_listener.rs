#![allow(clippy::unwrap_used, clippy::expect_used)]
//! TLS on a listener, through the real app on 127.0.0.1:0 with certificates made at test
//! time: HTTP/1.1 and h2 by ALPN, SNI, client certificates, rotation without a restart,
//! and failed handshakes counted without disturbing other connections.

mod support;

use http::{Request, StatusCode};
use std::time::Duration;
use support::tls::{
    client_config, client_config_versions, handshake, served_certificate, with_listener_tls, Pki,
    Sender,
};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A config with one TLS listener (`tls` lines in `[listeners.tls]`) in front of `upstream`.
fn tls_toml(upstream: std::net::SocketAddr, tls: &str) -> String {
    with_listener_tls(&simple_toml(upstream, "", ""), tls)
}

async fn echo_upstream() -> Upstream {
    upstream()
        .fallback(|request: Received| async move {
            let subject = request.header("x-client-subject").unwrap_or_default();
            http::Response::new(full(subject.to_string()))
        })
        .start()
        .await
}

fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", "localhost")
        .body(empty())
        .unwrap()
}

async fn tls_errors(proxy: &Shadowtap, reason: &str) -> f64 {
    metric_sum(
        &proxy.metrics().await,
        "shadowtap_tls_handshake_errors_total",
        &[("reason", reason)],
    )
}

#[tokio::test]
async fn http1_and_h2_are_chosen_by_alpn_and_counted() {
    let pki = Pki::new("test CA");
    let leaf = pki.server("leaf", &["localhost"]);
    let upstream = echo_upstream().await;
    let proxy = Shadowtap::start(config(&tls_toml(upstream.addr, &leaf.pair()))).await;

    for (alpn, version) in [
        (vec!["h2", "http/1.1"], http::Version::HTTP_2),
        (vec!["http/1.1"], http::Version::HTTP_11),
        (vec![], http::Version::HTTP_11),
    ] {
        let stream = handshake(proxy.addr, "localhost", client_config(&pki, &alpn, None))
            .await
            .expect("handshake");
        let mut sender = Sender::over(stream).await.unwrap();
        let request = match version {
            // h2 names the authority in the target; HTTP/1.1 in Host.
            http::Version::HTTP_2 => Request::get("https://localhost/h2").body(empty()).unwrap(),
            _ => get("/http1"),
        };
        let response = sender.send(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.version(), version, "ALPN {alpn:?}");
        let last = upstream.last();
        assert_eq!(last.header("x-forwarded-proto"), Some("https"));
    }
    let metrics = proxy.metrics().await;
    for (alpn, count) in [("h2", 1.0), ("http/1.1", 1.0), ("none", 1.0)] {
        let counted = metric_sum(
            &metrics,
            "shadowtap_tls_handshakes_total",
            &[("alpn", alpn), ("version", "TLSv1.3")],
        );
        assert_eq!(counted, count, "{alpn}\n{metrics}");
    }
    let expiry = metric_sum(
        &metrics,
        "shadowtap_tls_certificate_expiry_timestamp_seconds",
        &[("server_name", "default")],
    );
    assert!(expiry > 1.7e9, "{metrics}");
}

#[tokio::test]
async fn tls_1_2_and_1_3_sessions_are_resumed() {
    let pki = Pki::new("test CA");
    let leaf = pki.server("leaf", &["localhost"]);
    let upstream = echo_upstream().await;
    let proxy = Shadowtap::start(config(&tls_toml(upstream.addr, &leaf.pair()))).await;
    for (version, label) in [
        (&rustls::version::TLS12, "TLSv1.2"),
        (&rustls::version::TLS13, "TLSv1.3"),
    ] {
        // One client config: its session store carries the session to the second connection.
        let client = client_config_versions(&pki, &["http/1.1"], None, &[version]);
        for expected in [rustls::HandshakeKind::Full, rustls::HandshakeKind::Resumed] {
            let stream = handshake(proxy.addr, "localhost", client.clone())
                .await
                .unwrap();
            assert_eq!(
                stream.get_ref().1.handshake_kind(),
                Some(expected),
                "{label}"
            );
            // A request and its answer: TLS 1.3 tickets arrive after the handshake.
            let mut sender = Sender::over(stream).await.unwrap();
            assert_eq!(
                sender.send(get("/")).await.unwrap().status(),
                StatusCode::OK
            );
        }
        let counted = metric_sum(
            &proxy.metrics().await,
            "shadowtap_tls_handshakes_total",
            &[("version", label)],
        );
        assert_eq!(counted, 2.0, "{label}");
    }
}

#[tokio::test]
async fn sni_chooses_exact_then_wildcard_and_an_unknown_name_without_default_fails() {
    let pki = Pki::new("test CA");
    let api = pki.server("api", &["api.example.test"]);
    let wild = pki.server("wild", &["*.example.test"]);
    let upstream = echo_upstream().await;
    let tls = format!(
        "[[listeners.tls.certificates]]\nserver_names = [\"api.example.test\"]\n{}\n\
         [[listeners.tls.certificates]]\nserver_names = [\"*.example.test\"]\n{}",
        api.pair(),
        wild.pair()
    );
    let proxy = Shadowtap::start(config(&tls_toml(upstream.addr, &tls))).await;
    let client = client_config(&pki, &["http/1.1"], None);
    let stream = handshake(proxy.addr, "api.example.test", client.clone())
        .await
        .unwrap();
    assert_eq!(served_certificate(&stream), api.der);
    let stream = handshake(proxy.addr, "www.example.test", client.clone())
        .await
        .unwrap();
    assert_eq!(served_certificate(&stream), wild.der);
    let mut sender = Sender::over(stream).await.unwrap();
    let response = sender.send(get("/sni")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Two labels below the wildcard, and a name nothing serves: no certificate, no default.
    for unknown in ["a.www.example.test", "other.test"] {
        let failed = handshake(proxy.addr, unknown, client.clone()).await;
        assert!(failed.is_err(), "{unknown} handshake succeeded");
    }
    until_metrics(
        proxy.admin,
        "unknown names counted",
        |m| {
            metric_sum(
                m,
                "shadowtap_tls_handshake_errors_total",
                &[("reason", "unknown_server_name")],
            ) == 2.0
        },
        |m| m.to_string(),
    )
    .await;
}

#[tokio::test]
async fn required_client_certificates_pass_the_subject_and_strip_a_forged_one() {
    let pki = Pki::new("test CA");
    let leaf = pki.server("leaf", &["localhost"]);
    let good = pki.client("good", "client-1", "Example Org");
    let stranger = Pki::new("other CA").client("stranger", "client-2", "Elsewhere");
    let upstream = echo_upstream().await;
    let ca = pki.ca_file("ca.pem");
    let tls = format!(
        "{}client_ca = {ca:?}\nclient_auth = \"required\"\nclient_subject_header = \"X-Client-Subject\"\n",
        leaf.pair()
    );
    let proxy = Shadowtap::start(config(&tls_toml(upstream.addr, &tls))).await;

    let stream = handshake(
        proxy.addr,
        "localhost",
        client_config(&pki, &["h2"], Some(&good)),
    )
    .await
    .unwrap();
    let mut sender = Sender::over(stream).await.unwrap();
    let forged = Request::get("https://localhost/whoami")
        .header("x-client-subject", "CN=admin")
        .body(empty())
        .unwrap();
    let response = sender.send(forged).await.unwrap();
    let subject = std::str::from_utf8(response.body()).unwrap().to_string();
    assert!(subject.contains("CN=client-1"), "{subject:?}");
    assert!(subject.contains("O=Example Org"), "{subject:?}");
    assert_eq!(upstream.last().header_all("x-client-subject").len(), 1);

    // No certificate, and one from another CA: the handshake (or, in TLS 1.3, the first
    // exchange after it) fails, and the upstream sees nothing more.
    let before = upstream.count();
    for identity in [None, Some(&stranger)] {
        let config = client_config(&pki, &["http/1.1"], identity);
        let refused = async {
            let stream = handshake(proxy.addr, "localhost", config).await.ok()?;
            let mut sender = Sender::over(stream).await.ok()?;
            sender.send(get("/denied")).await.ok()
        }
        .await;
        assert!(
            refused.is_none(),
            "served without a valid client certificate"
        );
    }
    assert_eq!(upstream.count(), before);
    until_metrics(
        proxy.admin,
        "client certificate failures counted",
        |m| {
            metric_sum(
                m,
                "shadowtap_tls_handshake_errors_total",
                &[("reason", "client_certificate")],
            ) == 2.0
        },
        |m| m.to_string(),
    )
    .await;
}

#[tokio::test]
async fn optional_client_certificates_serve_clients_without_one_and_still_strip_the_header() {
    let pki = Pki::new("test CA");
    let leaf = pki.server("leaf", &["localhost"]);
    let good = pki.client("good", "client-1", "Example Org");
    let upstream = echo_upstream().await;
    let ca = pki.ca_file("ca.pem");
    let tls = format!(
        "{}client_ca = {ca:?}\nclient_auth = \"optional\"\nclient_subject_header = \"x-client-subject\"\n",
        leaf.pair()
    );
    let proxy = Shadowtap::start(config(&tls_toml(upstream.addr, &tls))).await;
    for (identity, expected) in [(None, ""), (Some(&good), "CN=client-1")] {
        let client = client_config(&pki, &["http/1.1"], identity);
        let stream = handshake(proxy.addr, "localhost", client).await.unwrap();
        let mut sender = Sender::over(stream).await.unwrap();
        let forged = Request::get("/whoami")
            .header("host", "localhost")
            .header("x-client-subject", "CN=admin")
            .body(empty())
            .unwrap();
        let response = sender.send(forged).await.unwrap();
        let subject = std::str::from_utf8(response.body()).unwrap();
        assert!(subject.contains(expected), "{subject:?}");
        assert!(!subject.contains("admin"), "{subject:?}");
    }
}

#[tokio::test]
async fn rotation_serves_new_handshakes_the_new_certificate_and_refuses_a_bad_one() {
    let pki = Pki::new("test CA");
    let first = pki.server("first", &["localhost"]);
    let second = pki.server("second", &["localhost"]);
    let upstream = echo_upstream().await;
    let tls = format!("{}reload_interval = \"100ms\"\n", first.pair());
    let proxy = Shadowtap::start(config(&tls_toml(upstream.addr, &tls))).await;
    // A new client config for each handshake: a resumed session would report the
    // certificate of the session it resumes, not the one served now.
    let client = || client_config(&pki, &["http/1.1"], None);

    let kept = handshake(proxy.addr, "localhost", client()).await.unwrap();
    assert_eq!(served_certificate(&kept), first.der);
    let mut kept = Sender::over(kept).await.unwrap();
    assert_eq!(
        kept.send(get("/before")).await.unwrap().status(),
        StatusCode::OK
    );

    second.write_to(&first.cert, &first.key);
    until_metrics(
        proxy.admin,
        "reload counted",
        |m| metric_sum(m, "shadowtap_tls_reloads_total", &[("result", "success")]) == 1.0,
        |m| m.to_string(),
    )
    .await;
    let fresh = handshake(proxy.addr, "localhost", client()).await.unwrap();
    assert_eq!(served_certificate(&fresh), second.der);
    // The connection made before the rotation carries on.
    assert_eq!(
        kept.send(get("/after")).await.unwrap().status(),
        StatusCode::OK
    );

    // A key of another certificate: refused once, the second certificate still served.
    let third = pki.server("third", &["localhost"]);
    std::fs::write(&first.key, &third.key_pem).unwrap();
    until_metrics(
        proxy.admin,
        "bad reload counted",
        |m| metric_sum(m, "shadowtap_tls_reloads_total", &[("result", "failure")]) == 1.0,
        |m| m.to_string(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let metrics = proxy.metrics().await;
    let failures = metric_sum(
        &metrics,
        "shadowtap_tls_reloads_total",
        &[("result", "failure")],
    );
    assert_eq!(
        failures, 1.0,
        "a bad pair is counted once, not every interval"
    );
    let still = handshake(proxy.addr, "localhost", client()).await.unwrap();
    assert_eq!(served_certificate(&still), second.der);
}

#[tokio::test]
async fn plaintext_and_garbage_are_counted_and_do_not_disturb_a_live_tls_connection() {
    let pki = Pki::new("test CA");
    let leaf = pki.server("leaf", &["localhost"]);
    let upstream = echo_upstream().await;
    let tls = format!("{}handshake_timeout = \"300ms\"\n", leaf.pair());
    let proxy = Shadowtap::start(config(&tls_toml(upstream.addr, &tls))).await;
    let live = handshake(proxy.addr, "localhost", client_config(&pki, &["h2"], None))
        .await
        .unwrap();
    let mut live = Sender::over(live).await.unwrap();
    assert_eq!(live.send(get("/1")).await.unwrap().status(), StatusCode::OK);

    for bytes in [
        &b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n"[..],
        &b"\x16\x03\x01\x00\x05garbage that is no ClientHello"[..],
        &b"\x00\x01\x02\x03\xff\xfe\xfd\xfc\x00\x00\x00\x00"[..],
    ] {
        let mut raw = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        raw.write_all(bytes).await.unwrap();
        let mut answer = Vec::new();
        let _ = within("closed", raw.read_to_end(&mut answer)).await;
        assert!(!answer.starts_with(b"HTTP/"), "plaintext answered");
    }
    // A client that connects and says nothing: closed at handshake_timeout.
    let mut silent = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let mut answer = Vec::new();
    let _ = within("silent client closed", silent.read_to_end(&mut answer)).await;

    assert_eq!(live.send(get("/2")).await.unwrap().status(), StatusCode::OK);
    assert_eq!(tls_errors(&proxy, "timeout").await, 1.0);
    let not_tls = tls_errors(&proxy, "not_tls").await + tls_errors(&proxy, "protocol").await;
    assert_eq!(not_tls, 3.0, "{}", proxy.metrics().await);
    assert!(tls_errors(&proxy, "not_tls").await >= 2.0);
}

#[tokio::test]
async fn curl_and_openssl_speak_to_the_tls_listener_where_installed() {
    let installed = |tool: &str| {
        std::process::Command::new("which")
            .arg(tool)
            .output()
            .is_ok_and(|out| out.status.success())
    };
    let pki = Pki::new("test CA");
    let leaf = pki.server("leaf", &["localhost"]);
    let ca = pki.ca_file("ca.pem");
    let upstream = echo_upstream().await;
    let proxy = Shadowtap::start(config(&tls_toml(upstream.addr, &leaf.pair()))).await;
    let port = proxy.addr.port();
    if installed("curl") {
        let ca = ca.clone();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["-sS", "--http1.1", "--cacert"])
                .arg(&ca)
                .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
                .arg(format!("https://localhost:{port}/curl"))
                .args(["-o", "/dev/null", "-w", "%{http_code} %{ssl_verify_result}"])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout, "200 0", "{}", String::from_utf8_lossy(&out.stderr));
    } else {
        println!("skipped curl: not installed");
    }
    if installed("openssl") {
        let out = tokio::task::spawn_blocking(move || {
            let mut child = std::process::Command::new("openssl")
                .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
                .args(["-servername", "localhost", "-verify_return_error", "-brief"])
                .arg("-CAfile")
                .arg(&ca)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let _ = child.stdin.take();
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("Verification: OK"), "{text}");
        assert!(text.contains("TLSv1.3"), "{text}");
    } else {
        println!("skipped openssl s_client: not installed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_terminates_tls_from_flags_alone_and_reloads_on_sighup() {
    let pki = Pki::new("test CA");
    let first = pki.server("first", &["localhost"]);
    let second = pki.server("second", &["localhost"]);
    let upstream = echo_upstream().await;
    let listen = closed_port().await;
    let admin = closed_port().await;
    let (cert, key) = (first.cert.to_str().unwrap(), first.key.to_str().unwrap());
    let mut child = Spawned::run(
        &upstream.url(""),
        &listen.to_string(),
        &admin.to_string(),
        &["--tls-cert", cert, "--tls-key", key],
    );
    child.ready(&admin.to_string()).await;
    let client = || client_config(&pki, &["http/1.1"], None);
    let stream = handshake(listen, "localhost", client()).await.unwrap();
    assert_eq!(served_certificate(&stream), first.der);
    let mut sender = Sender::over(stream).await.unwrap();
    assert_eq!(
        sender.send(get("/cli")).await.unwrap().status(),
        StatusCode::OK
    );

    // The default reload_interval is 30 s: only the signal can explain a reload now.
    second.write_to(&first.cert, &first.key);
    let hangup = std::process::Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hangup.success());
    until_metrics(
        admin,
        "reload on SIGHUP",
        |m| metric_sum(m, "shadowtap_tls_reloads_total", &[("result", "success")]) == 1.0,
        |m| m.to_string(),
    )
    .await;
    let stream = handshake(listen, "localhost", client()).await.unwrap();
    assert_eq!(served_certificate(&stream), second.der);
    let (status, stderr) = child.terminate().await;
    assert!(status.success(), "{stderr}");
}

#[tokio::test]
async fn a_shadow_gets_the_verified_subject_and_never_the_forged_one() {
    let pki = Pki::new("test CA");
    let leaf = pki.server("leaf", &["localhost"]);
    let good = pki.client("good", "client-1", "Example Org");
    let ca = pki.ca_file("ca.pem");
    let primary = echo_upstream().await;
    let shadow = echo_upstream().await;
    let text = support::shadow::mirror_toml(primary.addr, shadow.addr, &Default::default())
        .replacen(
            "\n[admin]",
            &format!(
                "[listeners.tls]\n{}client_ca = {ca:?}\nclient_subject_header = \"x-client-subject\"\n\n[admin]",
                leaf.pair()
            ),
            1,
        );
    let proxy = Shadowtap::start(config(&text)).await;
    for identity in [Some(&good), None] {
        let client = client_config(&pki, &["h2"], identity);
        let stream = handshake(proxy.addr, "localhost", client).await.unwrap();
        let Ok(mut sender) = Sender::over(stream).await else {
            continue;
        };
        let forged = Request::get("https://localhost/mirrored")
            .header("x-client-subject", "CN=admin")
            .body(empty())
            .unwrap();
        // Without a certificate the required handshake fails: nothing reaches either side.
        let _ = sender.send(forged).await;
    }
    let copies = support::shadow::received_at_least(&shadow, 1).await;
    assert_eq!(
        copies.len(),
        1,
        "only the verified client's request is mirrored"
    );
    for received in [primary.last(), copies[0].clone()] {
        let subjects = received.header_all("x-client-subject");
        assert_eq!(subjects.len(), 1, "{subjects:?}");
        assert!(subjects[0].contains("CN=client-1"), "{subjects:?}");
    }
    assert_eq!(primary.count(), 1);
}

/// The listener's suite order decides, not the client's (audits rate a listener that lets the
/// client pick as a finding): a client listing AES-128-GCM before AES-256-GCM still gets the
/// provider's first choice, AES-256-GCM, in TLS 1.3 and in TLS 1.2.
#[tokio::test]
async fn the_server_chooses_the_cipher_suite_from_its_own_order() {
    // ring, as the proxy uses (support/tls.rs says why).
    #[allow(deprecated)]
    use rustls::crypto::ring::{cipher_suite, default_provider};
    let pki = Pki::new("test CA");
    let leaf = pki.server("leaf", &["localhost"]);
    let upstream = echo_upstream().await;
    let proxy = Shadowtap::start(config(&tls_toml(upstream.addr, &leaf.pair()))).await;
    let cases = [
        (
            &rustls::version::TLS13,
            vec![
                cipher_suite::TLS13_AES_128_GCM_SHA256,
                cipher_suite::TLS13_AES_256_GCM_SHA384,
            ],
            cipher_suite::TLS13_AES_256_GCM_SHA384,
        ),
        (
            &rustls::version::TLS12,
            vec![
                cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            ],
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
    ];
    for (version, client_order, expected) in cases {
        #[allow(deprecated)]
        let provider = rustls::crypto::CryptoProvider {
            cipher_suites: client_order,
            ..default_provider()
        };
        let client = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(pki.roots())
            .with_no_client_auth();
        let stream = handshake(proxy.addr, "localhost", std::sync::Arc::new(client))
            .await
            .unwrap();
        assert_eq!(
            stream
                .get_ref()
                .1
                .negotiated_cipher_suite()
                .map(|s| s.suite()),
            Some(expected.suite()),
            "{version:?}"
        );
    }
}
