//! The proxy config a replay runs: the user's routes, comparison rules, redaction, noise
//! learning and verdict thresholds (`--config`), with every route's primary pointed at the
//! recorded answers (or `--primary`), every route mirrored in full to `--shadow`, and
//! `--secondary` as each route's secondary. Listeners, the admin port and `[record]` are the
//! replay's own.

use super::answers::ENTRY_HEADER;
use toml::Value;

/// Where the replay sends what.
pub struct Targets<'a> {
    /// The primary's URL (the recorded answers' server, or `--primary`).
    pub primary: &'a str,
    /// `--shadow`.
    pub shadow: &'a str,
    /// `--secondary`.
    pub secondary: Option<&'a str>,
}

/// Route keys kept from the user's config; the rest (primary, mirror, host_rewrite) are the
/// replay's.
const ROUTE_KEYS: [&str; 5] = ["name", "host", "path_prefix", "template", "compare"];
/// Top-level sections kept from the user's config.
const KEPT_SECTIONS: [&str; 3] = ["compare", "verdict", "mirror"];

/// The replay's config text from the user's (`None`: one catch-all route).
pub fn config_text(user: Option<&str>, targets: &Targets<'_>) -> Result<String, String> {
    let user: toml::Table = match user {
        Some(text) => text.parse().map_err(|error| format!("{error}"))?,
        None => toml::Table::new(),
    };
    let mut out = toml::Table::new();
    for section in KEPT_SECTIONS {
        if let Some(value) = user.get(section) {
            out.insert(section.to_string(), value.clone());
        }
    }
    out.insert(
        "listeners".into(),
        Value::Array(vec![Value::Table(table([("address", "127.0.0.1:0")]))]),
    );
    out.insert(
        "admin".into(),
        Value::Table(table([("address", "127.0.0.1:0")])),
    );
    let mut upstreams = toml::Table::new();
    upstreams.insert(
        "primary".into(),
        Value::Table(table([("url", targets.primary)])),
    );
    upstreams.insert(
        "shadow".into(),
        Value::Table(table([("url", targets.shadow)])),
    );
    if let Some(secondary) = targets.secondary {
        upstreams.insert(
            "secondary".into(),
            Value::Table(table([("url", secondary)])),
        );
    }
    out.insert("upstreams".into(), Value::Table(upstreams));
    let user_routes: Vec<toml::Table> = match user.get("routes") {
        Some(Value::Array(routes)) => routes
            .iter()
            .filter_map(|route| route.as_table().cloned())
            .collect(),
        _ => Vec::new(),
    };
    let user_routes = if user_routes.is_empty() {
        vec![table([("name", "replay"), ("path_prefix", "/")])]
    } else {
        user_routes
    };
    let routes = user_routes
        .into_iter()
        .map(|route| {
            let mut kept: toml::Table = route
                .into_iter()
                .filter(|(key, _)| ROUTE_KEYS.contains(&key.as_str()))
                .collect();
            kept.insert("primary".into(), Value::String("primary".into()));
            kept.insert(
                "mirror".into(),
                Value::Table(mirror(targets.secondary.is_some())),
            );
            Value::Table(kept)
        })
        .collect();
    out.insert("routes".into(), Value::Array(routes));
    toml::to_string(&out).map_err(|error| error.to_string())
}

/// Every request to the shadow (the filters already chose them), without the replay's own
/// field.
fn mirror(secondary: bool) -> toml::Table {
    let mut shadow = toml::Table::new();
    shadow.insert("upstream".into(), Value::String("shadow".into()));
    shadow.insert("percent".into(), Value::Float(100.0));
    shadow.insert("methods".into(), Value::String("all".into()));
    shadow.insert(
        "remove_headers".into(),
        Value::Array(vec![Value::String(ENTRY_HEADER.into())]),
    );
    let mut mirror = toml::Table::new();
    mirror.insert("shadows".into(), Value::Array(vec![Value::Table(shadow)]));
    if secondary {
        mirror.insert("secondary".into(), Value::String("secondary".into()));
    }
    mirror
}

fn table<const N: usize>(pairs: [(&str, &str); N]) -> toml::Table {
    pairs
        .into_iter()
        .map(|(key, value)| (key.to_string(), Value::String(value.to_string())))
        .collect()
}
