//! What the verdict tests share: one mirrored route with three templates over real
//! upstreams, traffic in chosen amounts, and the real binary's `verdict` run to its exit.
//!
//! | template | the shadow's answers |
//! |---|---|
//! | `/clean` | the primary's |
//! | `/flaky` | the primary's, except every tenth (counted over the shadow's whole life) |
//! | `/broken` | always different |

// Each verdict test file compiles this module and uses a part of it.
#![allow(dead_code)]

use crate::support::compare::{json_ok, mirror_toml, wait_compared, Mirrored};
use crate::support::{config, get, upstream, Shadowtap, Upstream, BIN};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The route templates (and so the `route` labels).
pub const TEMPLATES: [&str; 3] = ["/clean", "/flaky", "/broken"];

/// The primary and the shadow every instance forwards to.
pub struct Upstreams {
    pub primary: Upstream,
    pub shadow: Upstream,
}

/// Starts the primary and the shadow.
pub async fn upstreams() -> Upstreams {
    let answer = |_| async { json_ok(r#"{"ok":true,"items":[1,2,3]}"#) };
    let primary = upstream()
        .route("/clean", answer)
        .route("/flaky", answer)
        .route("/broken", answer)
        .start()
        .await;
    let flaky = Arc::new(AtomicU64::new(0));
    let shadow = upstream()
        .route("/clean", answer)
        .route("/flaky", move |_| {
            let serial = flaky.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if serial % 10 == 0 {
                    json_ok(r#"{"ok":false,"items":[1,2,3]}"#)
                } else {
                    json_ok(r#"{"ok":true,"items":[1,2,3]}"#)
                }
            }
        })
        .route("/broken", |_| async {
            json_ok(r#"{"ok":true,"items":[]}"#)
        })
        .start()
        .await;
    Upstreams { primary, shadow }
}

/// A shadowtap in front of `upstreams`, mirroring everything to the shadow.
pub async fn instance(upstreams: &Upstreams) -> Shadowtap {
    let mirrored = Mirrored::pair(upstreams.primary.addr, upstreams.shadow.addr);
    Shadowtap::start(config(&mirror_toml(&mirrored, &TEMPLATES, "", ""))).await
}

/// Sends `count` GETs of `path` through `proxy`, then waits until all are compared (the
/// route had `before` comparisons).
pub async fn traffic(proxy: &Shadowtap, path: &str, count: usize, before: usize) {
    for _ in 0..count {
        let reply = get(&proxy.url(path)).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    }
    wait_compared(proxy, path, before + count).await;
}

/// What `shadowtap verdict ARGS` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The whole output, for assertion messages.
    pub fn shown(&self) -> String {
        format!(
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// The table line of `route` (its verdict word first).
    pub fn line(&self, route: &str) -> &str {
        self.stdout
            .lines()
            .find(|line| line.split_whitespace().nth(1) == Some(route))
            .unwrap_or_else(|| panic!("no line for {route}:\n{}", self.shown()))
    }

    /// The JSON report (`--format json`).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("not JSON ({error}):\n{}", self.shown()))
    }
}

/// Runs the real binary's `verdict` with `args` to its exit (off the runtime's threads, so
/// the in-process instances it asks keep serving).
pub async fn verdict(args: &[&str]) -> Run {
    verdict_with_env(args, &[]).await
}

/// [`verdict`] with `env` set, and without any `SHADOWTAP_ADMIN_TOKEN` of the test's own.
pub async fn verdict_with_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new(BIN)
            .arg("verdict")
            .args(&args)
            .env_remove("SHADOWTAP_ADMIN_TOKEN")
            .envs(env)
            .output()
            .expect("run shadowtap verdict");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .expect("the verdict run finishes")
}
