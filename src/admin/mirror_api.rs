//! `GET` and `PUT /api/v1/mirror`: the runtime mirror switches (see
//! [`crate::shadow::control`]).

use super::reply::{json, parse_json, Refusal, Reply};
use crate::shadow::control::{ControlError, MirrorChange, MirrorControl};
use http::StatusCode;
use serde::Deserialize;

/// The `PUT` body: `route` and `shadow` narrow the change (absent: all); `paused` and
/// `percent` are applied when given.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    route: Option<String>,
    shadow: Option<String>,
    paused: Option<bool>,
    percent: Option<f64>,
}

/// Every switch and the percent in force for each (route, shadow).
pub fn get(control: &MirrorControl) -> Reply {
    json(&control.view())
}

/// Applies a change from the next request on: 200 with every switch after it, 400 naming
/// a bad field, 404 for an unknown route or shadow.
pub fn put(control: &MirrorControl, body: &[u8]) -> Reply {
    match change(control, body) {
        Ok(reply) => reply,
        Err(refusal) => refusal.reply(),
    }
}

fn change(control: &MirrorControl, body: &[u8]) -> Result<Reply, Refusal> {
    let body: Body = parse_json(body)?;
    let bad = |field: &str, reason: String| Refusal::new(StatusCode::BAD_REQUEST, field, reason);
    if let Some(percent) = body.percent {
        if !(0.0..=100.0).contains(&percent) {
            return Err(bad("percent", format!("{percent} is not from 0 to 100")));
        }
    }
    if body.paused.is_none() && body.percent.is_none() {
        let reason = "nothing to change: give \"paused\" and/or \"percent\"".to_string();
        return Err(bad("body", reason));
    }
    let change = MirrorChange {
        route: body.route,
        shadow: body.shadow,
        paused: body.paused,
        percent: body.percent,
    };
    let view = control.apply(&change).map_err(|error| {
        let field = match error {
            ControlError::UnknownRoute(_) => "route",
            ControlError::UnknownShadow(_) | ControlError::UnknownShadowOnRoute { .. } => "shadow",
        };
        Refusal::new(StatusCode::NOT_FOUND, field, error)
    })?;
    Ok(json(&view))
}
