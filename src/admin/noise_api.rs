//! `PUT /api/v1/noise`: pin a field of a route as noise or signal at runtime, with the
//! effect of a config pin (see [`crate::compare::pins`]).

use super::reply::{json, parse_json, Refusal, Reply};
use crate::compare::noise::Pin;
use crate::compare::pins::pin_field;
use crate::report::Reporter;
use http::StatusCode;
use serde::Deserialize;

/// The body: the route's name, the field key (`status`, `header:<name>`, a JSON pointer
/// pattern; also accepted as `pointer`), and `noise`, `signal`, or `none` to remove a
/// runtime pin.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    route: String,
    #[serde(alias = "pointer")]
    field: String,
    pin: String,
}

/// Sets the pin: 200, 400 naming a bad field, 404 for an unknown route.
pub fn put(report: &Reporter, body: &[u8]) -> Reply {
    match pin(report, body) {
        Ok(reply) => reply,
        Err(refusal) => refusal.reply(),
    }
}

fn pin(report: &Reporter, body: &[u8]) -> Result<Reply, Refusal> {
    let body: Body = parse_json(body)?;
    let field = pin_field(&body.field)
        .map_err(|error| Refusal::new(StatusCode::BAD_REQUEST, "field", error))?;
    let pin = match body.pin.as_str() {
        "noise" => Some(Pin::Noise),
        "signal" => Some(Pin::Signal),
        "none" => None,
        other => {
            let reason = format!("{other:?}: expected \"noise\", \"signal\" or \"none\"");
            return Err(Refusal::new(StatusCode::BAD_REQUEST, "pin", reason));
        }
    };
    report
        .pin(&body.route, field.clone(), pin)
        .map_err(|error| Refusal::new(StatusCode::NOT_FOUND, "route", error))?;
    Ok(json(&serde_json::json!({
        "result": "success",
        "route": body.route,
        "field": field,
        "pin": body.pin,
    })))
}
