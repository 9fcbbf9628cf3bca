//! An axum service that shadows its own traffic in-process with [`shadowtap::MirrorLayer`]:
//! no proxy, no extra hop. Each request is served by the app as usual; a sampled copy goes
//! to the shadow URL, and the two answers are compared off the request path.
//!
//! Run it:
//!
//! ```text
//! cargo run --example axum_shadow
//! curl http://127.0.0.1:3000/users/7
//! curl http://127.0.0.1:3000/health
//! ```
//!
//! `LISTEN` (default `127.0.0.1:3000`) is where the app serves; `SHADOW_URL` is where the
//! copies go. Without `SHADOW_URL` the example starts a shadow of its own: the next version
//! of the same app, which answers `/users/{id}` with one field changed, so a divergence
//! shows at once. On Ctrl-C it prints the comparison summary (per route and shadow) as JSON.
//!
//! `tests/mirror_layer.rs` compiles this file as a module and drives [`serve`] with a real
//! client, so what runs here is what the test checks.

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use shadowtap::config::{ConfigError, Overrides};
use shadowtap::{Config, Shadowing};
use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// The app: a couple of JSON routes. Version 2 is the candidate under test: it answers a
/// user's `plan` differently.
pub fn app(version: u32) -> Router {
    let user = move |Path(id): Path<u64>| async move {
        let plan = if version == 1 { "free" } else { "starter" };
        Json(json!({ "id": id, "name": format!("user-{id}"), "plan": plan }))
    };
    Router::new().route("/users/{id}", get(user)).route(
        "/health",
        get(|| async { Json::<Value>(json!({ "ok": true })) }),
    )
}

/// What is mirrored where, as a user writes it: one route over the whole app, its paths
/// labelled by template, every request copied to `shadow_url`. The route's primary is this
/// service itself: the layer never dials it.
pub fn shadow_config(shadow_url: &str) -> Result<Config, ConfigError> {
    let toml = format!(
        r#"
[upstreams.this-service]
url = "http://127.0.0.1:3000"

[upstreams.candidate]
url = "{shadow_url}"

[[routes]]
name = "app"
primary = "this-service"
template = ["/users/{{id}}", "/health"]

[[routes.mirror.shadows]]
upstream = "candidate"
percent = 100
"#
    );
    Config::from_toml(&toml, &Overrides::default())
}

/// Serves version 2 of the app on an ephemeral loopback port: the built-in shadow.
pub async fn start_builtin_shadow() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app(2)).await });
    Ok(address)
}

/// Serves version 1 of the app on `listener`, wrapped in `shadowing`'s layer, until
/// `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shadowing: &Shadowing,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app(1).layer(shadowing.layer());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_string());
    let shadow_url = match std::env::var("SHADOW_URL") {
        Ok(url) => url,
        Err(_) => format!("http://{}", start_builtin_shadow().await?),
    };
    let shadowing = Shadowing::start(&shadow_config(&shadow_url)?)?;
    let listener = TcpListener::bind(&listen).await?;
    println!(
        "serving http://{}, shadowing every request to {shadow_url} (Ctrl-C prints the comparison)",
        listener.local_addr()?
    );
    serve(listener, &shadowing, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&shadowing.report().routes())?
    );
    shadowing.stop();
    Ok(())
}
