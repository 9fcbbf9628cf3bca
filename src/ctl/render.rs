//! `ctl`'s human output: the mirror switches as a table, a reload's changes or errors.

use super::client::Answer;
use super::{not_served, CtlCommand};
use crate::shadow::control::ControlView;
use http::StatusCode;
use serde::Deserialize;
use std::fmt::Write;

/// The failure shape of every mutating endpoint, and the success shape of a reload.
#[derive(Debug, Default, Deserialize)]
struct Outcome {
    #[serde(default)]
    errors: Vec<String>,
    #[serde(default)]
    changes: Vec<String>,
}

/// What a successful answer says, for people.
pub(super) fn success(command: &CtlCommand, answer: &Answer) -> String {
    match command {
        CtlCommand::Reload => {
            let outcome: Outcome = serde_json::from_slice(&answer.body).unwrap_or_default();
            let mut out = String::from("reloaded: the new config is in force\n");
            if outcome.changes.is_empty() {
                out.push_str("  (nothing changed)\n");
            }
            for change in outcome.changes {
                let _ = writeln!(out, "  {change}");
            }
            out
        }
        CtlCommand::Status | CtlCommand::Mirror(_) => {
            match serde_json::from_slice::<MirrorView>(&answer.body) {
                Ok(view) => switches(&view),
                Err(_) => String::from_utf8_lossy(&answer.body).into_owned(),
            }
        }
    }
}

/// What a refusal says, for people.
pub(super) fn failure(command: &CtlCommand, answer: &Answer) -> String {
    if answer.status == StatusCode::UNAUTHORIZED {
        return "error: 401 unauthorized: the admin port wants its bearer token \
                (--token-file FILE, or SHADOWTAP_ADMIN_TOKEN)\n"
            .to_string();
    }
    if matches!(command, CtlCommand::Reload) && not_served(answer) {
        return "error: 404: this shadowtap does not serve POST /api/v1/reload \
                (it was built without hot reload); restart it to change its config\n"
            .to_string();
    }
    let outcome: Option<Outcome> = serde_json::from_slice(&answer.body).ok();
    let mut out = match command {
        CtlCommand::Reload => format!(
            "error: {}: reload refused; the running config is unchanged\n",
            answer.status
        ),
        _ => format!("error: {}\n", answer.status),
    };
    match outcome {
        Some(outcome) if !outcome.errors.is_empty() => {
            for error in outcome.errors {
                let _ = writeln!(out, "  {error}");
            }
        }
        _ => {
            let text = String::from_utf8_lossy(&answer.body);
            let _ = writeln!(out, "  {}", text.trim_end());
        }
    }
    out
}

/// `GET /api/v1/mirror` as read back (the shape of [`ControlView`]).
type MirrorView = ControlView;

fn switches(view: &MirrorView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mirroring: {}",
        if view.paused {
            "PAUSED for every route"
        } else {
            "on"
        }
    );
    let _ = writeln!(
        out,
        "{:<24} {:<24} {:<8} PERCENT",
        "ROUTE", "SHADOW", "STATE"
    );
    for route in &view.routes {
        for shadow in &route.shadows {
            let percent = if shadow.percent_overridden {
                format!("{} (config {})", shadow.percent, shadow.config_percent)
            } else {
                shadow.percent.to_string()
            };
            let _ = writeln!(
                out,
                "{:<24} {:<24} {:<8} {percent}",
                route.route,
                shadow.shadow,
                if shadow.paused { "paused" } else { "on" },
            );
        }
    }
    out
}
