//! Raw config -> typed [`Config`]: defaults, cross-references and value checks.
//!
//! Each check adds a problem with the key path and keeps going, so the user sees every
//! mistake in one run. Defaults live here and only here.

use super::check::duration;
use super::error::Problems;
use super::mirror::{RawMethods, RawRouteMirror, RawShadow};
use super::raw::{RawConfig, RawListener, RawRoute, RawTemplates, RawUpstream, RawVia};
use super::upstreams::UpstreamNames;
use super::*;
use std::collections::HashSet;

/// Defaults, named so README and code cannot drift apart silently.
pub(crate) mod defaults {
    pub const LISTEN: &str = "127.0.0.1:8080";
    pub const ADMIN: &str = "127.0.0.1:9901";
    pub const MAX_CONNECTIONS: usize = 10_000;
    pub const HEADER_READ_TIMEOUT: &str = "10s";
    pub const CLIENT_BODY_TIMEOUT: &str = "60s";
    pub const CLIENT_SEND_TIMEOUT: &str = "60s";
    pub const MAX_HEADER_BYTES: usize = 64 * 1024;
    pub const MAX_HEADERS: usize = 100;
    pub const CONNECT_TIMEOUT: &str = "2s";
    pub const RESPONSE_TIMEOUT: &str = "30s";
    pub const POOL_MAX_IDLE: usize = 256;
    pub const POOL_IDLE_TIMEOUT: &str = "90s";
    pub const GRACE_PERIOD: &str = "30s";
    /// The upstream `--primary` defines, and the catch-all route it gets without a file.
    pub const PRIMARY_UPSTREAM: &str = "primary";
    pub const CATCH_ALL_ROUTE: &str = "default";
}

/// hyper refuses a smaller HTTP/1 read buffer.
const MIN_HEADER_BYTES: usize = 8 * 1024;

/// A route's `upgrade_idle_timeout` when it sets none: long enough for a quiet WebSocket that
/// pings now and then, short enough that forgotten ones are reclaimed.
const DEFAULT_UPGRADE_IDLE_TIMEOUT: &str = "1h";

pub(crate) fn apply_overrides(raw: &mut RawConfig, overrides: &Overrides, problems: &mut Problems) {
    super::record::apply_overrides(
        &mut raw.record,
        overrides.record.as_deref(),
        overrides.record_sample.as_deref(),
        problems,
    );
    if let Some(listen) = &overrides.listen {
        if listen.parse::<SocketAddr>().is_err() {
            problems.push("--listen", format!("{listen:?} is not an IP:PORT address"));
        }
        let template = raw.listeners.first().cloned().unwrap_or_default();
        raw.listeners = vec![RawListener {
            address: Some(listen.clone()),
            ..template
        }];
    }
    if let Some(admin) = &overrides.admin {
        let section = raw.admin.get_or_insert_with(Default::default);
        section.address = Some(admin.clone());
        section.enabled = Some(true);
    }
    if let Some(file) = &overrides.admin_token_file {
        raw.admin.get_or_insert_with(Default::default).token_file = Some(file.clone());
    }
    if let Some(format) = &overrides.log_format {
        raw.logging.get_or_insert_with(Default::default).format = Some(format.clone());
    }
    apply_mirror_overrides(raw, overrides, problems);
    apply_tls_overrides(raw, overrides, problems);
    if let Some(primary) = &overrides.primary {
        raw.upstreams
            .entry(defaults::PRIMARY_UPSTREAM.to_string())
            .or_default()
            .url = Some(primary.clone());
        if raw.routes.is_empty() {
            raw.routes.push(RawRoute {
                name: Some(defaults::CATCH_ALL_ROUTE.to_string()),
                primary: Some(defaults::PRIMARY_UPSTREAM.to_string()),
                ..RawRoute::default()
            });
        }
    }
}

/// `--tls-cert FILE --tls-key FILE`: every listener (with flags alone, the default one)
/// terminates TLS with this certificate as its default.
fn apply_tls_overrides(raw: &mut RawConfig, overrides: &Overrides, problems: &mut Problems) {
    let (cert, key) = match (&overrides.tls_cert, &overrides.tls_key) {
        (None, None) => return,
        (Some(cert), Some(key)) => (cert, key),
        (Some(_), None) => return problems.push("--tls-key", "missing: --tls-cert needs it"),
        (None, Some(_)) => return problems.push("--tls-cert", "missing: --tls-key needs it"),
    };
    if raw.listeners.is_empty() {
        raw.listeners.push(RawListener::default());
    }
    for listener in &mut raw.listeners {
        let tls = listener.tls.get_or_insert_with(Default::default);
        tls.cert = Some(cert.clone());
        tls.key = Some(key.clone());
    }
}

/// `--shadow URL` (repeatable), `--sample PERCENT`, `--mirror-methods LIST|all`: every
/// route (with flags alone, the catch-all route) mirrors to these shadows instead of the
/// file's. The shadows become upstreams `shadow`, `shadow2`, ...
fn apply_mirror_overrides(raw: &mut RawConfig, overrides: &Overrides, problems: &mut Problems) {
    if overrides.shadows.is_empty() {
        if overrides.sample.is_some() {
            problems.push("--sample", "needs at least one --shadow URL");
        }
        if overrides.mirror_methods.is_some() {
            problems.push("--mirror-methods", "needs at least one --shadow URL");
        }
        return;
    }
    let percent = overrides.sample.as_deref().and_then(|text| {
        match text.trim_end_matches('%').parse::<f64>() {
            Ok(percent) if (0.0..=100.0).contains(&percent) => Some(percent),
            _ => {
                problems.push(
                    "--sample",
                    format!("{text:?} is not a percentage between 0 and 100"),
                );
                None
            }
        }
    });
    let methods = overrides.mirror_methods.as_deref().map(|text| {
        if text.eq_ignore_ascii_case("all") {
            RawMethods::All(text.to_string())
        } else {
            RawMethods::List(
                text.split(',')
                    .map(|m| m.trim().to_string())
                    .filter(|m| !m.is_empty())
                    .collect(),
            )
        }
    });
    let mut shadows = Vec::new();
    for (index, url) in overrides.shadows.iter().enumerate() {
        let name = if index == 0 {
            "shadow".to_string()
        } else {
            format!("shadow{}", index + 1)
        };
        raw.upstreams.entry(name.clone()).or_default().url = Some(url.clone());
        shadows.push(RawShadow {
            upstream: Some(name),
            percent,
            methods: methods.clone(),
            ..RawShadow::default()
        });
    }
    if raw.routes.is_empty() && overrides.primary.is_none() {
        problems.push(
            "--shadow",
            "needs routes: pass --primary URL or a config file with [[routes]]",
        );
    }
    // Routes that --primary is about to add get the shadows when they are created.
    for route in &mut raw.routes {
        route.mirror.get_or_insert_with(Default::default).shadows = shadows.clone();
    }
    if raw.routes.is_empty() {
        raw.routes.push(RawRoute {
            name: Some(defaults::CATCH_ALL_ROUTE.to_string()),
            primary: Some(defaults::PRIMARY_UPSTREAM.to_string()),
            mirror: Some(RawRouteMirror {
                max_body_bytes: None,
                secondary: None,
                shadows,
            }),
            ..RawRoute::default()
        });
    }
}

pub(crate) fn validate(raw: RawConfig, diff_log: Option<&str>, problems: &mut Problems) -> Config {
    let listeners = validate_listeners(raw.listeners, problems);

    let admin_raw = raw.admin.unwrap_or_default();
    let admin = super::admin::validate_admin(admin_raw, defaults::ADMIN, parse_addr, problems);

    // Upstreams that fail validation are still "known", so a route naming them does not get
    // a second, misleading "unknown upstream" problem. Collected before validation drops them.
    let known_upstreams: HashSet<String> = raw.upstreams.keys().cloned().collect();
    let mut upstreams = BTreeMap::new();
    for (name, upstream) in raw.upstreams {
        let path = format!("upstreams.{name}");
        check_name(&path, &name, problems);
        if let Some(upstream) = validate_upstream(&path, upstream, problems) {
            upstreams.insert(name, upstream);
        }
    }
    let upstreams = UpstreamNames::new(known_upstreams, upstreams);

    if raw.routes.is_empty() {
        problems.push(
            "routes",
            "no routes: add a [[routes]] entry, or pass --primary URL for a catch-all route",
        );
    }
    let mut names = HashSet::new();
    let mut routes = Vec::new();
    for (index, route) in raw.routes.into_iter().enumerate() {
        let path = format!("routes[{index}]");
        let (name, route) = validate_route(&path, index, route, &upstreams, problems);
        if !names.insert(name.clone()) {
            problems.push(
                format!("{path}.name"),
                format!("duplicate route name {name:?}"),
            );
        }
        routes.extend(route);
    }

    let mirror = super::mirror::validate_global(raw.mirror, problems);
    let compare = super::compare::validate_global(raw.compare, diff_log, problems);
    let verdict = super::verdict::validate(raw.verdict, problems);
    let route_names: Vec<String> = routes.iter().map(|route| route.name.clone()).collect();
    let record = super::record::validate(raw.record, &route_names, problems);

    let runtime = RuntimeConfig {
        worker_threads: raw
            .runtime
            .and_then(|runtime| runtime.worker_threads)
            .and_then(|n| {
                if n == 0 {
                    problems.push(
                        "runtime.worker_threads",
                        "must be at least 1 (omit it for one per core)",
                    );
                    None
                } else {
                    Some(n)
                }
            }),
    };

    let grace = raw.shutdown.and_then(|s| s.grace_period);
    let shutdown = ShutdownConfig {
        grace_period: duration(
            "shutdown.grace_period",
            grace.as_deref(),
            defaults::GRACE_PERIOD,
            problems,
        ),
    };

    let format = raw.logging.and_then(|l| l.format);
    let logging = LoggingConfig {
        format: match format.as_deref() {
            None | Some("human") => LogFormat::Human,
            Some("json") => LogFormat::Json,
            Some(other) => {
                problems.push(
                    "logging.format",
                    format!("unknown format {other:?} (expected \"human\" or \"json\")"),
                );
                LogFormat::Human
            }
        },
    };

    Config {
        listeners,
        admin,
        upstreams: upstreams.into_upstreams(),
        routes,
        runtime,
        shutdown,
        logging,
        mirror,
        compare,
        verdict,
        record,
        _validated: Validated,
    }
}

fn validate_listeners(raw: Vec<RawListener>, problems: &mut Problems) -> Vec<ListenerConfig> {
    let raw = if raw.is_empty() {
        vec![RawListener::default()]
    } else {
        raw
    };
    let mut seen = HashSet::new();
    let mut listeners = Vec::new();
    for (index, listener) in raw.into_iter().enumerate() {
        let path = format!("listeners[{index}]");
        let address_text = listener.address.as_deref().unwrap_or(defaults::LISTEN);
        let address = parse_addr(&format!("{path}.address"), address_text, problems);
        if let Some(address) = address {
            if address.port() != 0 && !seen.insert(address) {
                problems.push(
                    format!("{path}.address"),
                    format!("{address} is used by two listeners"),
                );
            }
        }
        let max_connections = listener
            .max_connections
            .unwrap_or(defaults::MAX_CONNECTIONS);
        if max_connections == 0 {
            problems.push(format!("{path}.max_connections"), "must be at least 1");
        }
        let max_header_bytes = listener
            .max_header_bytes
            .unwrap_or(defaults::MAX_HEADER_BYTES);
        if max_header_bytes < MIN_HEADER_BYTES {
            problems.push(
                format!("{path}.max_header_bytes"),
                format!("must be at least {MIN_HEADER_BYTES}"),
            );
        }
        let max_headers = listener.max_headers.unwrap_or(defaults::MAX_HEADERS);
        if max_headers == 0 {
            problems.push(format!("{path}.max_headers"), "must be at least 1");
        }
        let header_read_timeout = duration(
            &format!("{path}.header_read_timeout"),
            listener.header_read_timeout.as_deref(),
            defaults::HEADER_READ_TIMEOUT,
            problems,
        );
        let client_body_timeout = duration(
            &format!("{path}.client_body_timeout"),
            listener.client_body_timeout.as_deref(),
            defaults::CLIENT_BODY_TIMEOUT,
            problems,
        );
        let client_send_timeout = duration(
            &format!("{path}.client_send_timeout"),
            listener.client_send_timeout.as_deref(),
            defaults::CLIENT_SEND_TIMEOUT,
            problems,
        );
        let http1_engine = match listener.http1_engine.as_deref() {
            None | Some("native") => Http1Engine::Native,
            Some("hyper") => Http1Engine::Hyper,
            Some(other) => {
                problems.push(
                    format!("{path}.http1_engine"),
                    format!("unknown engine {other:?} (expected \"native\" or \"hyper\")"),
                );
                Http1Engine::Native
            }
        };
        let via = match listener.via {
            None | Some(RawVia::Switch(true)) => {
                ViaConfig::Pseudonym(ViaName::new(ViaConfig::DEFAULT))
            }
            Some(RawVia::Switch(false)) => ViaConfig::Off,
            Some(RawVia::Pseudonym(name)) if is_token(&name) && name.len() <= MAX_VIA_LEN => {
                ViaConfig::Pseudonym(ViaName::new(&name))
            }
            Some(RawVia::Pseudonym(name)) => {
                problems.push(
                    format!("{path}.via"),
                    format!(
                        "{name:?} is not a valid pseudonym: it must be 1 to {MAX_VIA_LEN} token \
                         characters (letters, digits and !#$%&'*+-.^_`|~), or false to send no Via"
                    ),
                );
                ViaConfig::Off
            }
        };
        let tls = listener
            .tls
            .and_then(|tls| super::tls::validate(&format!("{path}.tls"), tls, problems));
        if let Some(address) = address {
            listeners.push(ListenerConfig {
                tls,
                address,
                max_connections,
                header_read_timeout,
                client_body_timeout,
                client_send_timeout,
                max_header_bytes,
                max_headers,
                http2: listener.http2.unwrap_or(true),
                trust_forwarded_headers: listener.trust_forwarded_headers.unwrap_or(false),
                http1_engine,
                via,
            });
        }
    }
    listeners
}

fn validate_upstream(
    path: &str,
    raw: RawUpstream,
    problems: &mut Problems,
) -> Option<UpstreamConfig> {
    let connect_timeout = duration(
        &format!("{path}.connect_timeout"),
        raw.connect_timeout.as_deref(),
        defaults::CONNECT_TIMEOUT,
        problems,
    );
    let response_timeout = duration(
        &format!("{path}.response_timeout"),
        raw.response_timeout.as_deref(),
        defaults::RESPONSE_TIMEOUT,
        problems,
    );
    let pool_idle_timeout = duration(
        &format!("{path}.pool_idle_timeout"),
        raw.pool_idle_timeout.as_deref(),
        defaults::POOL_IDLE_TIMEOUT,
        problems,
    );
    let protocol = match raw.protocol.as_deref() {
        None | Some("http1") => UpstreamProtocol::Http1,
        Some("http2") => UpstreamProtocol::Http2,
        Some("auto") => UpstreamProtocol::Auto,
        Some(other) => {
            problems.push(
                format!("{path}.protocol"),
                format!("unknown protocol {other:?} (expected \"http1\", \"http2\" or \"auto\")"),
            );
            UpstreamProtocol::Http1
        }
    };
    let url_path = format!("{path}.url");
    let Some(url) = raw.url else {
        problems.push(
            url_path,
            "missing: every upstream needs a url such as \"http://127.0.0.1:8081\"",
        );
        return None;
    };
    let (authority, https) = parse_upstream_url(&url_path, &url, problems)?;
    let tls = match (https, raw.tls) {
        (true, raw_tls) => Some(super::upstream_tls::validate(
            &format!("{path}.tls"),
            raw_tls.unwrap_or_default(),
            authority.host(),
            protocol,
            problems,
        )?),
        (false, _) if protocol == UpstreamProtocol::Auto => {
            problems.push(
                format!("{path}.protocol"),
                format!("\"auto\" chooses by ALPN, which needs TLS: {url:?} is plaintext"),
            );
            return None;
        }
        (false, None) => None,
        (false, Some(_)) => {
            problems.push(
                format!("{path}.tls"),
                format!("{url:?} is plaintext: TLS settings need an https:// URL"),
            );
            return None;
        }
    };
    let scheme = if https { "https" } else { "http" };
    Some(UpstreamConfig {
        url: format!("{scheme}://{authority}"),
        authority,
        connect_timeout,
        response_timeout,
        pool_max_idle: raw.pool_max_idle.unwrap_or(defaults::POOL_MAX_IDLE),
        pool_idle_timeout,
        protocol,
        tls,
    })
}

/// Accepts `http://host[:port][/]` and `https://...` (the flag: TLS); anything the proxy
/// would silently drop is an error.
fn parse_upstream_url(
    path: &str,
    url: &str,
    problems: &mut Problems,
) -> Option<(http::uri::Authority, bool)> {
    let uri: http::Uri = match url.parse() {
        Ok(uri) => uri,
        Err(err) => {
            problems.push(path, format!("{url:?} is not a valid URL: {err}"));
            return None;
        }
    };
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        Some(other) => {
            problems.push(
                path,
                format!("{url:?}: unsupported scheme {other:?} (expected http or https)"),
            );
            return None;
        }
        None => {
            problems.push(
                path,
                format!("{url:?}: missing scheme (expected http://host:port)"),
            );
            return None;
        }
    };
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        problems.push(
            path,
            format!("{url:?}: an upstream URL takes no path or query (the request's path is forwarded as is)"),
        );
        return None;
    }
    let Some(authority) = uri.authority().cloned() else {
        problems.push(path, format!("{url:?}: missing host"));
        return None;
    };
    if authority.as_str().contains('@') {
        problems.push(
            path,
            format!("{url:?}: credentials in upstream URLs are not supported"),
        );
        return None;
    }
    Some((authority, https))
}

/// The route's name, which the duplicate check needs even when the route itself cannot be
/// built, and the route.
fn validate_route(
    path: &str,
    index: usize,
    raw: RawRoute,
    upstreams: &UpstreamNames,
    problems: &mut Problems,
) -> (String, Option<RouteConfig>) {
    let name = raw.name.unwrap_or_else(|| format!("route{index}"));
    check_name(&format!("{path}.name"), &name, problems);

    let host = raw
        .host
        .as_deref()
        .and_then(|host| parse_host_match(&format!("{path}.host"), host, problems));

    let path_prefix = raw.path_prefix.unwrap_or_else(|| "/".to_string());
    if !path_prefix.starts_with('/') {
        problems.push(
            format!("{path}.path_prefix"),
            format!("{path_prefix:?} must start with '/'"),
        );
    }

    let primary = match raw.primary {
        Some(primary) => {
            if !upstreams.is_known(&primary) {
                problems.push(
                    format!("{path}.primary"),
                    format!("unknown upstream {primary:?}"),
                );
            }
            upstreams.resolve(&primary)
        }
        None => {
            problems.push(
                format!("{path}.primary"),
                "missing: name the upstream that serves this route",
            );
            None
        }
    };

    let templates = match raw.template {
        None => Vec::new(),
        Some(RawTemplates::One(template)) => vec![template],
        Some(RawTemplates::Many(templates)) => templates,
    };
    let templates = templates
        .iter()
        .enumerate()
        .filter_map(|(i, template)| match PathTemplate::parse(template) {
            Ok(template) => Some(template),
            Err(reason) => {
                problems.push(
                    format!("{path}.template[{i}]"),
                    format!("{template:?}: {reason}"),
                );
                None
            }
        })
        .collect();

    if let Some(rewrite) = &raw.host_rewrite {
        if rewrite.is_empty() || http::HeaderValue::from_str(rewrite).is_err() {
            problems.push(
                format!("{path}.host_rewrite"),
                format!("{rewrite:?} is not a valid Host value"),
            );
        }
    }

    let upgrade_idle_timeout = duration(
        &format!("{path}.upgrade_idle_timeout"),
        raw.upgrade_idle_timeout.as_deref(),
        DEFAULT_UPGRADE_IDLE_TIMEOUT,
        problems,
    );

    let mirror = raw
        .mirror
        .map(|mirror| {
            super::mirror::validate_route_mirror(
                &format!("{path}.mirror"),
                mirror,
                upstreams,
                problems,
            )
        })
        .filter(|mirror| !mirror.shadows.is_empty());

    let compare = super::compare::validate_route(&format!("{path}.compare"), raw.compare, problems);

    // Without its primary the route is left out; that is always reported above (or by the
    // upstream's own checks), so the config is refused anyway.
    let route = primary.map(|primary| RouteConfig {
        compare,
        mirror,
        name: name.clone(),
        host,
        path_prefix,
        primary,
        templates,
        host_rewrite: raw.host_rewrite,
        upgrade_idle_timeout,
    });
    (name, route)
}

fn parse_host_match(path: &str, host: &str, problems: &mut Problems) -> Option<HostMatch> {
    let host = host.to_ascii_lowercase();
    let (suffix, bare) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest.to_string()),
        None => (false, host.clone()),
    };
    let valid = !bare.is_empty()
        && bare
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if !valid {
        problems.push(
            path,
            format!("{host:?} is not a host name (use \"example.com\" or \"*.example.com\", without port)"),
        );
        return None;
    }
    Some(if suffix {
        HostMatch::Suffix(format!(".{bare}"))
    } else {
        HostMatch::Exact(bare)
    })
}

/// Names become metric label values and log fields: keep them plain.
fn check_name(path: &str, name: &str, problems: &mut Problems) {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        problems.push(
            path,
            format!("{name:?}: names use 1-64 characters from A-Z a-z 0-9 - _ ."),
        );
    }
}

fn parse_addr(path: &str, text: &str, problems: &mut Problems) -> Option<SocketAddr> {
    match text.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            problems.push(
                path,
                format!(
                    "{text:?} is not an IP:PORT address (e.g. \"127.0.0.1:8080\" or \"[::]:8080\")"
                ),
            );
            None
        }
    }
}

/// Longest `via` pseudonym accepted.
const MAX_VIA_LEN: usize = 64;

/// Whether `text` is an HTTP token (RFC 9110 §5.6.2).
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
