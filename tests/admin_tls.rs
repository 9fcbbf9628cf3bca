#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The admin port over TLS (`[admin.tls]`, issue 22): the real binary serves its admin
//! endpoints over HTTPS with the listener's TLS code, refuses plaintext (counted), and
//! `shadowtap ctl` reaches it with `https://` and `--cacert`, the bearer token included.

mod support;

use std::net::SocketAddr;
use std::time::Duration;
use support::metrics::metric_value;
use support::tls::{client_config, handshake, Pki, Sender};
use support::*;

const LIMIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "s3cret-admin-token";

struct Running {
    process: Process,
    admin: SocketAddr,
    pki: Pki,
    token_file: std::path::PathBuf,
    config: std::path::PathBuf,
}

async fn start(upstream: SocketAddr) -> Running {
    let pki = Pki::new("admin test CA");
    let issued = pki.server("admin", &["localhost", "127.0.0.1"]);
    let token_file = pki.dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let toml = simple_toml(upstream, "", "").replacen(
        "\n[admin]\naddress = \"127.0.0.1:0\"\n",
        &format!(
            "\n[admin]\naddress = \"127.0.0.1:0\"\ntoken_file = {:?}\n\n[admin.tls]\n{}\n",
            token_file,
            issued.pair()
        ),
        1,
    );
    assert!(toml.contains("[admin.tls]"), "{toml}");
    let config = pki.dir.path().join("shadowtap.toml");
    std::fs::write(&config, &toml).unwrap();
    let process = Process::start(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--log-format",
            "json",
        ],
        &[("RUST_LOG", "info")],
    );
    let admin = process.announced("admin listening", LIMIT).await;
    Running {
        process,
        admin,
        pki,
        token_file,
        config,
    }
}

/// One HTTPS request to the admin port, trusting the test CA.
async fn https(running: &Running, request: http::Request<Body>) -> http::Response<bytes::Bytes> {
    let config = client_config(&running.pki, &["http/1.1"], None);
    let stream = handshake(running.admin, "localhost", config).await.unwrap();
    let mut sender = Sender::over(stream).await.unwrap();
    sender.send(request).await.unwrap()
}

fn admin_request(method: &str, path: &str, token: Option<&str>) -> http::Request<Body> {
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "localhost");
    if let Some(token) = token {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(empty()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_port_serves_https_and_refuses_plaintext() {
    let upstream = upstream().always(http::StatusCode::OK, "ok").start().await;
    let running = start(upstream.addr).await;
    until("the admin port to answer over TLS", || {
        std::net::TcpStream::connect(running.admin).is_ok()
    })
    .await;
    let ready = https(&running, admin_request("GET", "/readyz", None)).await;
    assert_eq!(ready.status(), 200, "{:?}", ready.body());

    // Plaintext HTTP gets no HTTP answer: the first bytes are not a ClientHello.
    let plain = send(
        &http1_client(),
        get_request(&format!("http://{}/healthz", running.admin)),
    )
    .await;
    assert!(plain.is_err() || plain.unwrap().status != 200);

    // The bearer token works as on a plaintext admin port: refused without, served with.
    let refused = https(&running, admin_request("POST", "/api/v1/reload", None)).await;
    assert_eq!(refused.status(), 401);
    let reloaded = https(
        &running,
        admin_request("POST", "/api/v1/reload", Some(TOKEN)),
    )
    .await;
    assert_eq!(reloaded.status(), 200, "{:?}", reloaded.body());

    let metrics = https(&running, admin_request("GET", "/metrics", Some(TOKEN))).await;
    let metrics = String::from_utf8_lossy(metrics.body()).to_string();
    let handshakes: f64 = ["TLSv1.2", "TLSv1.3"]
        .iter()
        .filter_map(|version| {
            metric_value(
                &metrics,
                "shadowtap_tls_handshakes_total",
                &[
                    ("listener", "admin"),
                    ("version", version),
                    ("alpn", "http/1.1"),
                ],
            )
        })
        .sum();
    assert!(handshakes >= 4.0, "{metrics}");
    assert_eq!(
        metric_value(
            &metrics,
            "shadowtap_tls_handshake_errors_total",
            &[("listener", "admin"), ("reason", "not_tls")]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(running.config.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadowtap_ctl_reaches_an_https_admin_port_with_its_ca() {
    let upstream = upstream().always(http::StatusCode::OK, "ok").start().await;
    let running = start(upstream.addr).await;
    let url = format!("https://localhost:{}", running.admin.port());
    let ca = running.pki.ca_file("ca.pem");
    let token_file = running.token_file.clone();
    let ctl = move |extra: Vec<String>| {
        let url = url.clone();
        let token_file = token_file.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut args = vec![
                    "ctl".to_string(),
                    "--admin".to_string(),
                    url,
                    "--token-file".to_string(),
                    token_file.to_str().unwrap().to_string(),
                ];
                args.extend(extra);
                args.push("status".to_string());
                std::process::Command::new(BIN)
                    .args(&args)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    until("the admin port to listen", || {
        std::net::TcpStream::connect(running.admin).is_ok()
    })
    .await;
    let trusted = ctl(vec!["--cacert".into(), ca.to_str().unwrap().into()]).await;
    assert_eq!(
        trusted.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&trusted.stdout),
        String::from_utf8_lossy(&trusted.stderr)
    );
    // Without the CA the certificate is not trusted: no exchange, exit 3 (unreachable).
    let untrusted = ctl(Vec::new()).await;
    assert_eq!(untrusted.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(stderr.contains("cannot reach the admin port"), "{stderr}");
    drop(running.process);
}
