//! Request -> route, and path -> bounded metric label.
//!
//! Routes are tried in config order and the first whose host and path prefix match wins
//! (Envoy's rule: predictable, and a catch-all goes last). Within a route, the path is
//! matched against its templates (`/users/{id}`) to get the `route` label; a path no
//! template fits is counted under `<route>:other`, so label sets stay bounded by the config,
//! never by traffic.

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod shape;

use crate::config::{HostMatch, RouteConfig};
use std::borrow::Cow;

/// Suffix of the label for paths that match a route but none of its templates.
pub const OTHER_LABEL_SUFFIX: &str = ":other";

/// One template segment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}`: exactly one non-empty segment.
    Param,
    /// A final `*`: the rest of the path, possibly empty.
    Rest,
}

/// A compiled path template.
#[derive(Debug, Clone)]
struct Template {
    segments: Vec<Segment>,
}

impl Template {
    fn compile(text: &str) -> Result<Template, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err("a template must start with '/'".into());
        };
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let last = parts.len().saturating_sub(1);
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let segment = if *part == "*" {
                if i != last {
                    return Err("'*' may only be the last segment".into());
                }
                Segment::Rest
            } else if part.starts_with('{') && part.ends_with('}') && part.len() > 2 {
                Segment::Param
            } else if part.contains(['{', '}', '*']) {
                return Err(format!(
                    "segment {part:?}: use {{name}} for a whole segment or a final *"
                ));
            } else {
                Segment::Literal((*part).to_string())
            };
            segments.push(segment);
        }
        Ok(Template { segments })
    }

    fn matches(&self, path: &str) -> bool {
        let rest = path.strip_prefix('/').unwrap_or(path);
        // "/" has no segments; split("") would yield one empty one.
        let mut parts = (!rest.is_empty())
            .then(|| rest.split('/'))
            .into_iter()
            .flatten();
        for segment in &self.segments {
            match segment {
                Segment::Rest => return true,
                Segment::Literal(literal) => match parts.next() {
                    Some(part) if part == literal => {}
                    _ => return false,
                },
                Segment::Param => match parts.next() {
                    Some(part) if !part.is_empty() => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }
}

/// Checks a template's syntax (used by config validation).
pub fn check_template(text: &str) -> Result<(), String> {
    Template::compile(text).map(|_| ())
}

/// A route ready for matching.
#[derive(Debug)]
struct CompiledRoute {
    host: Option<HostMatch>,
    path_prefix: String,
    templates: Vec<Template>,
}

/// The result of routing: which route, and which of its labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMatch {
    /// Index into the config's routes.
    pub route: usize,
    /// Index into [`Router::labels`] of that route.
    pub label: usize,
}

/// Matches requests to routes. Built once at start; read-only afterwards.
#[derive(Debug)]
pub struct Router {
    routes: Vec<CompiledRoute>,
    labels: Vec<Vec<String>>,
}

impl Router {
    /// Compiles the routes. Templates were checked by config validation; an invalid one here
    /// (only possible through a hand-built config) is skipped rather than crashing.
    pub fn new(routes: &[RouteConfig]) -> Router {
        let mut compiled = Vec::with_capacity(routes.len());
        let mut labels = Vec::with_capacity(routes.len());
        for route in routes {
            let templates: Vec<(Template, String)> = route
                .templates
                .iter()
                .filter_map(|text| Template::compile(text).ok().map(|t| (t, text.clone())))
                .collect();
            let mut route_labels: Vec<String> =
                templates.iter().map(|(_, text)| text.clone()).collect();
            // The last label is the route's fallback: its name, or `<name>:other` when it has
            // templates and the path fits none of them.
            if templates.is_empty() {
                route_labels.push(route.name.clone());
            } else {
                route_labels.push(format!("{}{OTHER_LABEL_SUFFIX}", route.name));
            }
            labels.push(route_labels);
            compiled.push(CompiledRoute {
                host: route.host.clone(),
                path_prefix: route.path_prefix.clone(),
                templates: templates.into_iter().map(|(t, _)| t).collect(),
            });
        }
        Router {
            routes: compiled,
            labels,
        }
    }

    /// The label values of each route, in label-index order (for registering metrics).
    pub fn labels(&self) -> &[Vec<String>] {
        &self.labels
    }

    /// Finds the route for a request. `host` is lowercase without port, if the request had one.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<RouteMatch> {
        let (index, route) = self.routes.iter().enumerate().find(|(_, route)| {
            host_matches(route.host.as_ref(), host) && path.starts_with(route.path_prefix.as_str())
        })?;
        let label = route
            .templates
            .iter()
            .position(|template| template.matches(path))
            .unwrap_or(route.templates.len());
        Some(RouteMatch {
            route: index,
            label,
        })
    }
}

fn host_matches(rule: Option<&HostMatch>, host: Option<&str>) -> bool {
    match (rule, host) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(HostMatch::Exact(want)), Some(host)) => want == host,
        (Some(HostMatch::Suffix(suffix)), Some(host)) => {
            host.len() > suffix.len() && host.ends_with(suffix.as_str())
        }
    }
}

/// The request's host, lowercase and without port: from the target's authority (HTTP/2,
/// absolute-form) or the Host field.
pub fn request_host<B>(request: &http::Request<B>) -> Option<Cow<'_, str>> {
    match request.uri().authority() {
        Some(authority) => Some(routing_host(authority.host())),
        None => {
            let host = request.headers().get(http::header::HOST)?.to_str().ok()?;
            Some(routing_host(strip_port(host)))
        }
    }
}

/// A host as routes match it: without a trailing dot, lowercase (borrowed when it already is).
pub fn routing_host(raw: &str) -> Cow<'_, str> {
    let raw = raw.strip_suffix('.').unwrap_or(raw);
    if raw.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(raw.to_ascii_lowercase())
    } else {
        Cow::Borrowed(raw)
    }
}

/// A Host field's value without its port (`[v6]:port` keeps the brackets).
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [v6]:port; without its `]` (not a valid Host, refused later) it is left whole.
        return host
            .find(']')
            .and_then(|end| host.get(..=end))
            .unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, host: Option<HostMatch>, prefix: &str, templates: &[&str]) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            host,
            path_prefix: prefix.into(),
            primary: "p".into(),
            templates: templates.iter().map(|t| t.to_string()).collect(),
            host_rewrite: None,
            mirror: None,
            compare: Default::default(),
        }
    }

    #[test]
    fn first_matching_route_wins_and_templates_pick_the_label() {
        let router = Router::new(&[
            route(
                "api",
                Some(HostMatch::Exact("api.test".into())),
                "/users",
                &["/users/{id}", "/users/{id}/orders/*"],
            ),
            route(
                "wild",
                Some(HostMatch::Suffix(".example.com".into())),
                "/",
                &[],
            ),
            route("default", None, "/", &[]),
        ]);
        let m = router.find(Some("api.test"), "/users/42").unwrap();
        assert_eq!(
            (m.route, router.labels()[m.route][m.label].as_str()),
            (0, "/users/{id}")
        );
        let m = router
            .find(Some("api.test"), "/users/42/orders/7/items")
            .unwrap();
        assert_eq!(router.labels()[m.route][m.label], "/users/{id}/orders/*");
        let m = router.find(Some("api.test"), "/users/42/profile").unwrap();
        assert_eq!(router.labels()[m.route][m.label], "api:other");
        let m = router.find(Some("api.test"), "/users/").unwrap();
        assert_eq!(
            router.labels()[m.route][m.label],
            "api:other",
            "empty segment is no {{id}}"
        );
        let m = router.find(Some("a.example.com"), "/x").unwrap();
        assert_eq!(router.labels()[m.route][m.label], "wild");
        let m = router.find(Some("example.com"), "/x").unwrap();
        assert_eq!(
            router.labels()[m.route][m.label],
            "default",
            "suffix needs a subdomain"
        );
        let m = router.find(None, "/users/1").unwrap();
        assert_eq!(
            m.route, 2,
            "a host rule never matches a request without host"
        );
    }

    #[test]
    fn no_catch_all_means_no_route() {
        let router = Router::new(&[route("api", None, "/api/", &[])]);
        assert!(router.find(None, "/other").is_none());
        assert!(router.find(None, "/api/x").is_some());
    }

    #[test]
    fn template_syntax() {
        assert!(check_template("/users/{id}").is_ok());
        assert!(check_template("/").is_ok());
        assert!(check_template("/static/*").is_ok());
        assert!(check_template("users").is_err());
        assert!(check_template("/a/*/b").is_err());
        assert!(check_template("/a/x{id}").is_err());
        let root = Template::compile("/").unwrap();
        assert!(root.matches("/"));
        assert!(!root.matches("/a"));
    }
}
