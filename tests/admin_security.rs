#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The admin port's security model on the real binary: a non-loopback admin port without a
//! token file is refused (by `check` and by `run`, naming the key); an empty token file is
//! a config error; with a token, mutating endpoints (and reads, unless
//! `admin.read_only_open`) answer 401 with `WWW-Authenticate: Bearer` to a missing or wrong
//! token, counted by endpoint, and work with the right one; the token is never logged. A
//! browser's cross-site request to a mutating endpoint is refused with 403, token or not.

mod support;

use http::{Method, StatusCode};
use std::time::Duration;
use support::admin::*;
use support::shadow::*;
use support::*;

const TOKEN: &str = "tok-3f9a1c77e2";

async fn mirrored_text() -> (String, Upstream, Upstream) {
    let primary = echo_primary().await;
    let shadow = healthy_shadow(Duration::ZERO).await;
    let text = mirror_toml(primary.addr, shadow.addr, &Policy::default());
    (text, primary, shadow)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_admin_without_a_token_file_is_refused_by_check_and_run() {
    let (text, _primary, _shadow) = mirrored_text().await;
    let (path, _, _, _dir) = write_config(&text, "0.0.0.0", "", TOKEN);
    let path = path.to_str().unwrap();
    for command in ["check", "run"] {
        let mut child = Spawned::start(&[command, "--config", path]);
        let status = child.wait(STEP);
        let stderr = child.stderr();
        assert_eq!(status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("admin.token_file: required")
                && stderr.contains("not a loopback address"),
            "{command}: {stderr}"
        );
    }

    let (path, _, _, dir) = write_config(&text, "0.0.0.0", "token_file = \"TOKEN_FILE\"", "");
    std::fs::write(dir.path().join("admin-token"), "  \n").unwrap();
    let mut child = Spawned::start(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(child.wait(STEP).code(), Some(2));
    let stderr = child.stderr();
    assert!(
        stderr.contains("admin.token_file:") && stderr.contains("is empty"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_that_cannot_be_read_passes_check_with_a_warning_and_stops_run() {
    let (text, _primary, _shadow) = mirrored_text().await;
    let (path, _, _, dir) = write_config(&text, "0.0.0.0", "token_file = \"TOKEN_FILE\"", TOKEN);
    std::fs::remove_file(dir.path().join("admin-token")).unwrap();
    let path = path.to_str().unwrap();
    let mut check = Spawned::start(&["check", "--config", path]);
    assert!(check.wait(STEP).success());
    let stderr = check.stderr();
    assert!(
        stderr.contains("WARNING: admin.token_file: cannot read"),
        "{stderr}"
    );
    let mut run = Spawned::start(&["run", "--config", path]);
    assert_eq!(run.wait(STEP).code(), Some(1));
    let stderr = run.stderr();
    assert!(stderr.contains("admin.token_file: cannot read"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_every_change_needs_the_token_and_a_wrong_one_is_counted() {
    let (text, _primary, shadow) = mirrored_text().await;
    // Bound on all interfaces, reached through 127.0.0.1.
    let running = Running::start(&text, "0.0.0.0", "token_file = \"TOKEN_FILE\"", TOKEN).await;
    let pause = Some(r#"{"paused": true}"#);
    let changes: [(Method, &str, Option<&str>, &str); 3] = [
        (Method::PUT, "/api/v1/mirror", pause, "mirror"),
        (
            Method::PUT,
            "/api/v1/noise",
            Some(r#"{"route": "default", "field": "/a", "pin": "noise"}"#),
            "noise",
        ),
        (Method::POST, "/api/v1/reload", None, "reload"),
    ];
    for (method, path, body, _) in &changes {
        for token in [
            None,
            Some("wrong"),
            Some("tok-3f9a1c77e"),
            Some("tok-3f9a1c77e2x"),
        ] {
            let reply = running.admin(method.clone(), path, *body, token).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path} {token:?}");
            assert_eq!(
                reply
                    .headers
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap()),
                Some("Bearer"),
                "{path}"
            );
        }
    }
    // Reads need the token too (read_only_open is off), probes never do.
    let reply = running
        .admin(Method::GET, "/api/v1/mirror", None, None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = running
        .admin(Method::GET, "/metrics", None, Some("wrong"))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    for probe in ["/healthz", "/readyz"] {
        let reply = running.admin(Method::GET, probe, None, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{probe}");
    }

    let metrics = running.metrics(Some(TOKEN)).await;
    let refused = |endpoint| {
        metric_value(
            &metrics,
            "shadowtap_admin_unauthorized_total",
            &[("endpoint", endpoint)],
        )
    };
    for (_, _, _, endpoint) in &changes {
        assert_eq!(refused(endpoint), Some(4.0), "{endpoint}:\n{metrics}");
    }
    assert_eq!(refused("api"), Some(1.0));
    assert_eq!(refused("metrics"), Some(1.0));
    assert_eq!(refused("health"), Some(0.0));

    // Nothing was paused by the refused requests: mirroring goes on.
    running.get_live("/before").await;
    received_at_least(&shadow, 1).await;

    // The right token changes things.
    let reply = running
        .admin(Method::PUT, "/api/v1/mirror", pause, Some(TOKEN))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(json_body(&reply)["paused"], true);
    let reply = running
        .admin(Method::PUT, "/api/v1/noise", changes[1].2, Some(TOKEN))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

    let mut process = running.process;
    let status = process.terminate().await;
    assert!(status.success());
    let logs = format!("{}{}", process.stdout(), process.stderr());
    assert!(logs.contains("admin request refused"), "{logs}");
    assert!(!logs.contains(TOKEN), "the token was logged:\n{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_open_leaves_reads_open_and_changes_closed() {
    let (text, _primary, _shadow) = mirrored_text().await;
    let extra = "token_file = \"TOKEN_FILE\"\nread_only_open = true";
    let running = Running::start(&text, "127.0.0.1", extra, TOKEN).await;
    for path in [
        "/metrics",
        "/api/v1/routes",
        "/api/v1/mirror",
        "/api/v1/noise",
    ] {
        let reply = running.admin(Method::GET, path, None, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }
    // A token file on loopback still guards every change.
    let reply = running
        .admin(
            Method::PUT,
            "/api/v1/mirror",
            Some(r#"{"paused": true}"#),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = running
        .admin(
            Method::PUT,
            "/api/v1/mirror",
            Some(r#"{"paused": true}"#),
            Some(TOKEN),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_alone_need_admin_token_file_for_a_wildcard_admin() {
    let primary = echo_primary().await;
    let listen = closed_port().await.to_string();
    let port = closed_port().await.port();
    let wildcard = format!("0.0.0.0:{port}");
    let mut refused = Spawned::run(&primary.url(""), &listen, &wildcard, &[]);
    assert_eq!(refused.wait(STEP).code(), Some(2));
    let stderr = refused.stderr();
    assert!(
        stderr.contains("admin.token_file: required") && stderr.contains("--admin-token-file"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let mut child = Spawned::run(
        &primary.url(""),
        &listen,
        &wildcard,
        &["--admin-token-file", token.to_str().unwrap()],
    );
    let admin = format!("127.0.0.1:{port}");
    child.ready(&admin).await;
    let request = |token: Option<&str>| {
        let mut request = http::Request::builder()
            .method(Method::PUT)
            .uri(format!("http://{admin}/api/v1/noise"));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request
            .body(full(
                r#"{"route": "default", "field": "status", "pin": "signal"}"#,
            ))
            .unwrap()
    };
    let reply = send(&http1_client(), request(None)).await.unwrap();
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = send(&http1_client(), request(Some(TOKEN))).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let (status, stderr) = child.terminate().await;
    assert!(status.success(), "{stderr}");
}

/// A page on another site cannot make a visitor's browser change shadowtap (a text `POST`
/// needs no preflight): with no token on loopback, a cross-site reload or mirror change is
/// 403 and counted, while the same request from the page itself (same origin) and from
/// clients that send no browser headers (curl, `shadowtap ctl`) still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browsers_cross_site_change_is_refused_without_a_token_too() {
    let (text, _primary, _shadow) = mirrored_text().await;
    let running = Running::start(&text, "127.0.0.1", "", TOKEN).await;
    let admin = running.admin;
    let ask = |method: Method, path: &str, headers: &[(&str, String)]| {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("http://{admin}{path}"));
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let body = if path.ends_with("mirror") {
            r#"{"paused": false}"#
        } else {
            ""
        };
        request.body(full(body.to_string())).expect("valid request")
    };
    let client = http1_client();
    let evil = [
        ("origin", "https://evil.example".to_string()),
        ("sec-fetch-site", "cross-site".to_string()),
        ("content-type", "text/plain".to_string()),
    ];
    let old_browser = [("origin", "http://evil.example:8080".to_string())];
    for (method, path) in [
        (Method::POST, "/api/v1/reload"),
        (Method::PUT, "/api/v1/mirror"),
    ] {
        for headers in [&evil[..], &old_browser[..]] {
            let reply = send(&client, ask(method.clone(), path, headers))
                .await
                .expect("admin answers");
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{method} {path} {headers:?}"
            );
        }
    }
    let same_origin = [
        ("origin", format!("http://{admin}")),
        ("sec-fetch-site", "same-origin".to_string()),
    ];
    let reply = send(&client, ask(Method::PUT, "/api/v1/mirror", &same_origin))
        .await
        .expect("admin answers");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let reply = send(&client, ask(Method::PUT, "/api/v1/mirror", &[]))
        .await
        .expect("admin answers");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    // Reads stay open to a cross-site page as before (the browser keeps their answers from it).
    let reply = send(&client, ask(Method::GET, "/api/v1/routes", &evil))
        .await
        .expect("admin answers");
    assert_eq!(reply.status, StatusCode::OK);
    let metrics = running.metrics(None).await;
    let refused: f64 = ["reload", "mirror"]
        .iter()
        .map(|endpoint| {
            metric_value(
                &metrics,
                "shadowtap_admin_unauthorized_total",
                &[("endpoint", endpoint)],
            )
            .unwrap_or(0.0)
        })
        .sum();
    assert_eq!(refused, 4.0, "{metrics}");
}
