#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `MirrorLayer` outside the proxy: a real axum app wrapped in the layer, a real client, real
//! shadow servers on loopback. The comparison must be recorded exactly as the proxy records
//! it, and a dead or hanging shadow must not change or delay the live answer.
//!
//! The example `examples/axum_shadow.rs` is compiled here as a module (`#[path]`): an
//! integration test cannot depend on an example's binary, but it can run the very functions
//! the example's `main` runs (`shadow_config`, `start_builtin_shadow`, `serve`), with a
//! listener on port 0 and a shutdown it controls. So `cargo test` builds and exercises the
//! example's code, and a change that breaks it fails here.

mod support;

#[allow(dead_code)] // its `main` is the binary's entry, unused here
#[path = "../examples/axum_shadow.rs"]
mod example;

use http::StatusCode;
use shadowtap::config::Overrides;
use shadowtap::router::RouteMatch;
use shadowtap::shadow::Mirror;
use shadowtap::telemetry::metrics::{COMPARISONS_TOTAL, MIRROR_REQUESTS_TOTAL};
use shadowtap::{Config, Shadowing};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::compare::{json_ok, SHADOW};
use support::metrics::metric_sum;
use support::{closed_port, get, upstream, within, STEP};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// One route over the whole app mirrored to `shadow` (named [`SHADOW`]); its primary, the
/// app itself, is never dialled.
fn layer_config(shadow: SocketAddr, mirror_extra: &str) -> Config {
    let toml = format!(
        r#"
[upstreams.app]
url = "http://127.0.0.1:9"

[upstreams.{SHADOW}]
url = "http://{shadow}"

[mirror]
{mirror_extra}

[[routes]]
name = "app"
primary = "app"
template = ["/users/{{id}}", "/health"]

[[routes.mirror.shadows]]
upstream = "{SHADOW}"
percent = 100
"#
    );
    Config::from_toml(&toml, &Overrides::default()).expect("layer config is valid")
}

/// The example's app (version 1) wrapped in `shadowing`'s layer, served on port 0 until the
/// returned sender is dropped.
async fn serve_wrapped(shadowing: &Shadowing) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let app = example::app(1).layer(shadowing.layer());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    (address, stop)
}

/// Polls the layer's metrics until `done` holds; returns that text.
async fn wait_metrics(shadowing: &Shadowing, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + STEP;
    loop {
        let text = shadowing.metrics().render();
        if done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn comparisons(metrics: &str, route: &str, result: &str) -> f64 {
    metric_sum(
        metrics,
        COMPARISONS_TOTAL,
        &[("route", route), ("shadow", SHADOW), ("result", result)],
    )
}

fn outcomes(metrics: &str, outcome: &str) -> f64 {
    metric_sum(
        metrics,
        MIRROR_REQUESTS_TOTAL,
        &[("shadow", SHADOW), ("outcome", outcome)],
    )
}

#[tokio::test]
async fn a_wrapped_service_is_mirrored_and_compared_like_the_proxy() {
    let shadow = upstream()
        .route("/users/7", |_| async {
            json_ok(r#"{"id":7,"name":"user-7","plan":"starter"}"#)
        })
        .route("/health", |_| async { json_ok(r#"{"ok":true}"#) })
        .start()
        .await;
    let shadowing = Shadowing::start(&layer_config(shadow.addr, "")).expect("mirror side starts");
    let (app, _stop) = serve_wrapped(&shadowing).await;

    let user = get(&format!("http://{app}/users/7")).await;
    assert_eq!(user.status, StatusCode::OK);
    assert_eq!(user.text(), r#"{"id":7,"name":"user-7","plan":"free"}"#);
    let health = get(&format!("http://{app}/health")).await;
    assert_eq!(health.text(), r#"{"ok":true}"#);

    let metrics = wait_metrics(&shadowing, "two comparisons", |m| {
        metric_sum(m, COMPARISONS_TOTAL, &[("shadow", SHADOW)]) >= 2.0
    })
    .await;
    // The routes' template labels, as the proxy labels them; one divergence, one match.
    assert_eq!(comparisons(&metrics, "/users/{id}", "diverged"), 1.0);
    assert_eq!(comparisons(&metrics, "/health", "match"), 1.0);
    assert_eq!(outcomes(&metrics, "completed"), 2.0);
    let summary = shadowing.report().routes();
    let users = summary
        .iter()
        .find(|route| route.route == "/users/{id}")
        .expect("a summary for /users/{id}");
    assert_eq!(
        users.top_fields.first().map(|f| f.field.as_str()),
        Some("/plan")
    );
    // The shadow got the request as the app did: same method and path.
    let paths: Vec<String> = shadow
        .received()
        .iter()
        .map(|r| r.uri.to_string())
        .collect();
    assert!(paths.contains(&"/users/7".to_string()), "{paths:?}");
    shadowing.stop();
}

#[tokio::test]
async fn a_dead_shadow_changes_nothing_for_the_live_answer() {
    let dead = closed_port().await;
    let shadowing = Shadowing::start(&layer_config(dead, "")).expect("mirror side starts");
    let (app, _stop) = serve_wrapped(&shadowing).await;
    // The same app without the layer: the live answer must be the same, field for field.
    let plain = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let plain_address = plain.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(plain, example::app(1)).await });

    for _ in 0..3 {
        let started = Instant::now();
        let wrapped = get(&format!("http://{app}/users/7")).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        let direct = get(&format!("http://{plain_address}/users/7")).await;
        assert_eq!(wrapped.status, direct.status);
        assert_eq!(wrapped.body, direct.body);
        assert_eq!(
            wrapped.headers.get("content-type"),
            direct.headers.get("content-type")
        );
        assert_eq!(
            wrapped.headers.get("content-length"),
            direct.headers.get("content-length")
        );
    }
    // Each copy failed and was counted, as the proxy counts it.
    wait_metrics(&shadowing, "three shadow errors", |m| {
        outcomes(m, "error") >= 3.0
    })
    .await;
    shadowing.stop();
}

#[tokio::test]
async fn a_hanging_shadow_does_not_delay_the_live_answer() {
    let shadow = upstream().hang().start().await;
    let shadowing = Shadowing::start(&layer_config(shadow.addr, "timeout = \"30s\""))
        .expect("mirror side starts");
    let (app, _stop) = serve_wrapped(&shadowing).await;

    let started = Instant::now();
    let user = get(&format!("http://{app}/users/7")).await;
    let waited = started.elapsed();
    assert_eq!(user.status, StatusCode::OK);
    assert_eq!(user.text(), r#"{"id":7,"name":"user-7","plan":"free"}"#);
    assert!(
        waited < Duration::from_secs(2),
        "the live answer waited {waited:?}"
    );
    // The copy did go out, and is still unanswered: the live answer did not wait for it.
    within("the shadow receives its copy", async {
        while shadow.count() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let metrics = shadowing.metrics().render();
    assert_eq!(metric_sum(&metrics, COMPARISONS_TOTAL, &[]), 0.0);
    shadowing.stop();
}

#[tokio::test]
async fn the_example_serves_and_shadows_to_its_builtin_candidate() {
    let candidate = example::start_builtin_shadow()
        .await
        .expect("built-in shadow starts");
    let config =
        example::shadow_config(&format!("http://{candidate}")).expect("example config valid");
    let shadowing = Shadowing::start(&config).expect("mirror side starts");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let app = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let served = example::serve(listener, &shadowing, shutdown);
    let client = async {
        let user = get(&format!("http://{app}/users/7")).await;
        assert_eq!(user.text(), r#"{"id":7,"name":"user-7","plan":"free"}"#);
        let health = get(&format!("http://{app}/health")).await;
        assert_eq!(health.text(), r#"{"ok":true}"#);
        let metrics = wait_metrics(&shadowing, "the example's two comparisons", |m| {
            metric_sum(m, COMPARISONS_TOTAL, &[("shadow", "candidate")]) >= 2.0
        })
        .await;
        let _ = stop.send(());
        metrics
    };
    let (served, metrics) = tokio::join!(served, client);
    served.expect("the example serves until shut down");
    let count = |route: &str, result: &str| {
        metric_sum(
            &metrics,
            COMPARISONS_TOTAL,
            &[
                ("route", route),
                ("shadow", "candidate"),
                ("result", result),
            ],
        )
    };
    assert_eq!(count("/users/{id}", "diverged"), 1.0);
    assert_eq!(count("/health", "match"), 1.0);
    shadowing.stop();
}

/// The config in the README's "Shadowing inside a Rust service" section is valid and means
/// what the example's does: the same route, templates and shadow.
#[test]
fn the_readme_layer_config_is_valid() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("## Shadowing inside a Rust service: MirrorLayer")
        .nth(1)
        .expect("the MirrorLayer section");
    let toml = section
        .split("r#\"")
        .nth(1)
        .and_then(|rest| rest.split("\"#").next())
        .expect("a TOML string in the section's example");
    let config = Config::from_toml(toml, &Overrides::default()).expect("README config is valid");
    let example = example::shadow_config("http://127.0.0.1:3001").expect("example config");
    assert_eq!(config.routes.len(), 1);
    assert_eq!(config.routes[0].templates, example.routes[0].templates);
    assert_eq!(
        Mirror::route_shadow_names(&config),
        Mirror::route_shadow_names(&example)
    );
    assert_eq!(
        config.upstreams["candidate"].authority,
        example.upstreams["candidate"].authority
    );
}

/// A stack that routed the request already says so with a `RouteMatch` extension, and the
/// layer takes it instead of routing again: here it names the `/users/{id}` label for a
/// request the layer's own router would label `/health`.
#[tokio::test]
async fn a_route_match_extension_is_used_instead_of_routing_again() {
    let shadow = upstream()
        .route("/health", |_| async { json_ok(r#"{"ok":true}"#) })
        .start()
        .await;
    let shadowing = Shadowing::start(&layer_config(shadow.addr, "")).expect("mirror side starts");
    let routed = RouteMatch { route: 0, label: 0 };
    let app = example::app(1)
        .layer(shadowing.layer())
        .layer(axum::Extension(routed));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let health = get(&format!("http://{address}/health")).await;
    assert_eq!(health.text(), r#"{"ok":true}"#);
    let metrics = wait_metrics(&shadowing, "one comparison", |m| {
        metric_sum(m, COMPARISONS_TOTAL, &[("shadow", SHADOW)]) >= 1.0
    })
    .await;
    assert_eq!(comparisons(&metrics, "/users/{id}", "match"), 1.0);
    assert_eq!(comparisons(&metrics, "/health", "match"), 0.0);
    shadowing.stop();
}
