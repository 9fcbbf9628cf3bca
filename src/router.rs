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
use crate::pattern::template::PathTemplate;
use std::borrow::Cow;

/// Suffix of the label for paths that match a route but none of its templates.
pub const OTHER_LABEL_SUFFIX: &str = ":other";

/// A route ready for matching.
#[derive(Debug)]
struct CompiledRoute {
    host: Option<HostMatch>,
    path_prefix: String,
    templates: Vec<PathTemplate>,
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
    /// Compiles the routes (their templates were parsed by config validation).
    pub fn new(routes: &[RouteConfig]) -> Router {
        let mut compiled = Vec::with_capacity(routes.len());
        let mut labels = Vec::with_capacity(routes.len());
        for route in routes {
            let templates = route.templates.clone();
            let mut route_labels: Vec<String> = templates
                .iter()
                .map(|template| template.as_str().to_string())
                .collect();
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
                templates,
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
    use crate::config::{Config, Overrides, UpstreamRef};

    /// A reference to an upstream `p`; only validation makes one, and routing never reads it.
    fn upstream_p() -> UpstreamRef {
        let config = Config::from_toml(
            "[upstreams.p]\nurl = \"http://127.0.0.1:9\"\n[[routes]]\nprimary = \"p\"\n",
            &Overrides::default(),
        )
        .unwrap();
        config.routes[0].primary.clone()
    }

    fn route(name: &str, host: Option<HostMatch>, prefix: &str, templates: &[&str]) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            host,
            path_prefix: prefix.into(),
            primary: upstream_p(),
            templates: templates
                .iter()
                .map(|t| PathTemplate::parse(t).unwrap())
                .collect(),
            host_rewrite: None,
            upgrade_idle_timeout: std::time::Duration::from_secs(3600),
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
}
