//! Configuration: TOML file and CLI flags -> one validated, typed [`Config`].
//!
//! The pipeline is `parse` (text -> raw serde types, shape errors) -> [`Overrides`] (CLI
//! flags replace file values) -> `validate` (raw -> typed, meaning errors). Every problem
//! from every stage is collected and reported together, each with its key path.

mod admin;
mod check;
pub(crate) mod compare;
mod error;
mod mirror;
mod parse;
mod raw;
pub mod record;
mod tls;
mod upstream_tls;
mod upstreams;
mod validate;
pub mod verdict;
mod writable;

pub use admin::{AdminConfig, AdminToken};
pub use compare::{CompareConfig, RouteCompare};
pub use error::{ConfigError, Problem};
pub use mirror::{
    AllMethods, BreakerSettings, MethodSet, MirrorConfig, PathRewrite, RouteMirror, ShadowPolicy,
    StickySource,
};
pub use record::RecordConfig;
pub use tls::{ClientAuth, ListenerTls, SniCertificate};
pub use upstream_tls::UpstreamTlsConfig;
pub use upstreams::{UpstreamId, UpstreamRef, Upstreams};
pub use verdict::{Thresholds, VerdictConfig};

use crate::pattern::template::PathTemplate;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The validated configuration the proxy runs with. Every default is filled in.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Where live traffic is accepted.
    pub listeners: Vec<ListenerConfig>,
    /// The admin port (health, readiness, metrics).
    pub admin: AdminConfig,
    /// Named upstreams that routes refer to, by [`UpstreamRef`].
    pub upstreams: Upstreams,
    /// Routes in match order: the first that matches a request wins.
    pub routes: Vec<RouteConfig>,
    /// Tokio runtime settings.
    pub runtime: RuntimeConfig,
    /// Graceful shutdown settings.
    pub shutdown: ShutdownConfig,
    /// Log output settings.
    pub logging: LoggingConfig,
    /// Global mirroring limits (queues, in-flight caps, deadlines, breaker).
    pub mirror: MirrorConfig,
    /// Comparison budget and reporting limits.
    pub compare: CompareConfig,
    /// `[verdict]`: the thresholds `shadowtap verdict` judges shadows against.
    pub verdict: VerdictConfig,
    /// `[record]` (or `--record FILE`): live exchanges written for `shadowtap replay`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<RecordConfig>,
    /// Kept private so that a `Config` is made only by validation ([`Config::from_toml`]):
    /// its routes' [`UpstreamRef`]s then point into its own `upstreams`.
    #[serde(skip)]
    _validated: Validated,
}

/// The proof, private to this module, that a [`Config`] came out of validation.
#[derive(Debug, Clone, Copy)]
struct Validated;

/// One listening socket for live traffic (HTTP/1.1 and h2c on the same port).
#[derive(Debug, Clone, Serialize)]
pub struct ListenerConfig {
    /// `IP:PORT`; port 0 picks a free port (tests).
    pub address: SocketAddr,
    /// Connections beyond this wait in the kernel backlog instead of being accepted.
    pub max_connections: usize,
    /// A client must send a complete request head within this time (slowloris guard).
    #[serde(with = "duration_str")]
    pub header_read_timeout: Duration,
    /// A client that sends nothing of its request body for this long gets a 408 (as nginx's
    /// `client_body_timeout`): a stalled upload must not hold an upstream connection, and
    /// the upstream must not be blamed for the client's silence.
    #[serde(with = "duration_str")]
    pub client_body_timeout: Duration,
    /// A client that takes no byte of its response for this long is disconnected (as
    /// nginx's `send_timeout`): a client that stops reading must not hold an upstream
    /// connection and the proxy's buffers forever.
    #[serde(with = "duration_str")]
    pub client_send_timeout: Duration,
    /// Largest request head accepted (HTTP/1 read buffer, HTTP/2 header list size).
    pub max_header_bytes: usize,
    /// Most header fields accepted in one HTTP/1 request.
    pub max_headers: usize,
    /// Accept HTTP/2 with prior knowledge (h2c) besides HTTP/1.1.
    pub http2: bool,
    /// Keep incoming `X-Forwarded-Proto`/`-Host` (behind a trusted proxy) instead of overwriting.
    pub trust_forwarded_headers: bool,
    /// Which implementation serves plain HTTP/1.1 requests.
    pub http1_engine: Http1Engine,
    /// The `Via` element added to forwarded requests and responses, or none.
    pub via: ViaConfig,
    /// `[listeners.tls]`: terminate TLS on this listener (`None`: plaintext).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
}

/// `[[listeners]] via`: the pseudonym this listener names itself by in `Via` (RFC 9110
/// §7.6.3) on the requests it forwards and the responses it returns, or `false` for none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViaConfig {
    /// No `Via` is added.
    Off,
    /// `Via: <version> <pseudonym>` is appended.
    Pseudonym(ViaName),
}

impl ViaConfig {
    /// The default pseudonym.
    pub const DEFAULT: &'static str = "shadowtap";

    /// The pseudonym, when `Via` is on.
    pub fn pseudonym(&self) -> Option<&ViaName> {
        match self {
            ViaConfig::Off => None,
            ViaConfig::Pseudonym(name) => Some(name),
        }
    }
}

// Written as the file takes it (a name, or `false`), so a printed config reads back the same.
impl Serialize for ViaConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ViaConfig::Off => serializer.serialize_bool(false),
            ViaConfig::Pseudonym(name) => serializer.serialize_str(name.name()),
        }
    }
}

/// A validated `via` pseudonym with its HTTP/1 field lines made once, so the native engine
/// writes a request's or response's `Via` with one copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaName {
    name: String,
    /// `via: 1.0 NAME\r\n` and `via: 1.1 NAME\r\n`.
    lines: [Box<[u8]>; 2],
}

impl ViaName {
    /// The lines for `name` (validation checks it is a token first).
    pub fn new(name: &str) -> ViaName {
        let line = |version: &str| format!("via: {version} {name}\r\n").into_bytes().into();
        ViaName {
            name: name.to_string(),
            lines: [line("1.0"), line("1.1")],
        }
    }

    /// The pseudonym.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The whole field line for a message received as HTTP/1.`minor`.
    pub fn line(&self, minor: u8) -> &[u8] {
        let [http10, http11] = &self.lines;
        match minor {
            0 => http10,
            _ => http11,
        }
    }

    /// Just the element (`1.1 NAME`) for a message received as HTTP/1.`minor`.
    pub fn element(&self, minor: u8) -> &[u8] {
        let line = self.line(minor);
        line.get(b"via: ".len()..line.len().saturating_sub(2))
            .unwrap_or_default()
    }
}

/// The implementation that serves plain HTTP/1.1 requests on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Http1Engine {
    /// shadowtap's own HTTP/1.1 engine (`src/h1`): the cheapest live path. Requests it does not
    /// serve (mirrored routes, chunked uploads, HTTP/1.0, ...) go to hyper on the same port.
    Native,
    /// hyper for every request (the reference behaviour; for comparison and as a fallback).
    Hyper,
}

/// The wire protocol spoken to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive.
    Http1,
    /// HTTP/2: with prior knowledge (h2c), or offered alone by ALPN over TLS.
    Http2,
    /// `https://` only: h2 or HTTP/1.1, as the upstream chooses by ALPN.
    Auto,
}

/// A named upstream: where requests are forwarded and how patiently.
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamConfig {
    /// `http://host:port` or `https://host:port` as written (normalised).
    pub url: String,
    /// Scheme and authority used to build the forwarded request URI.
    #[serde(skip)]
    pub authority: http::uri::Authority,
    /// Time allowed to establish a TCP connection (exceeded: 502).
    #[serde(with = "duration_str")]
    pub connect_timeout: Duration,
    /// Time allowed from the end of the request to its response head, and for each pause of
    /// the upstream in taking a request body (exceeded: 504).
    #[serde(with = "duration_str")]
    pub response_timeout: Duration,
    /// Idle keep-alive connections kept per upstream host.
    pub pool_max_idle: usize,
    /// An idle pooled connection is closed after this long.
    #[serde(with = "duration_str")]
    pub pool_idle_timeout: Duration,
    /// HTTP/1.1 or HTTP/2 (h2c, or h2 over TLS).
    pub protocol: UpstreamProtocol,
    /// TLS settings of an `https://` upstream (`None`: plaintext). Printed last: a table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTlsConfig>,
}

/// How a route matches the request's host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum HostMatch {
    /// Exactly this host (lowercase, no port).
    Exact(String),
    /// `*.example.com`: any host ending in `.example.com` (stored with the leading dot).
    Suffix(String),
}

impl From<HostMatch> for String {
    fn from(host: HostMatch) -> String {
        match host {
            HostMatch::Exact(host) => host,
            HostMatch::Suffix(suffix) => format!("*{suffix}"),
        }
    }
}

/// A route: which requests it takes, where they go, and how they are labelled.
#[derive(Debug, Clone, Serialize)]
pub struct RouteConfig {
    /// Unique name; the metric label when no template applies.
    pub name: String,
    /// `None` matches any host.
    pub host: Option<HostMatch>,
    /// Path prefix the request path must start with (`/` takes everything).
    pub path_prefix: String,
    /// The upstream serving live traffic.
    pub primary: UpstreamRef,
    /// Path templates such as `/users/{id}` used as the `route` metric label. Printed under
    /// the key it is written with (`template`), so `check`'s output reads back in.
    #[serde(rename = "template")]
    pub templates: Vec<PathTemplate>,
    /// Replace the `Host` header sent upstream (default: keep the client's).
    pub host_rewrite: Option<String>,
    /// How long an upgraded connection (WebSocket, another protocol after `101`) may carry
    /// no byte either way before it is closed: a stream nobody uses must not hold two
    /// sockets forever.
    #[serde(with = "duration_str")]
    pub upgrade_idle_timeout: Duration,
    /// Mirroring policy; `None` when the route has no shadows.
    pub mirror: Option<RouteMirror>,
    /// How this route's pairs are compared.
    pub compare: RouteCompare,
}

/// Runtime settings.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeConfig {
    /// Worker threads; `None` means one per core.
    pub worker_threads: Option<usize>,
}

/// Graceful shutdown settings.
#[derive(Debug, Clone, Serialize)]
pub struct ShutdownConfig {
    /// After SIGINT/SIGTERM, in-flight requests get this long to finish.
    #[serde(with = "duration_str")]
    pub grace_period: Duration,
}

/// Log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, Serialize)]
pub struct LoggingConfig {
    /// Human or JSON output (the level comes from `RUST_LOG`).
    pub format: LogFormat,
}

/// Values given as CLI flags (`shadowtap run`); each replaces its counterpart in the file.
/// The doc comments below are the flags' `--help` text.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Overrides {
    /// Live-traffic listen address (replaces the file's listeners) [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Primary upstream URL (sets upstreams.primary.url; adds a catch-all route if none).
    #[arg(long, value_name = "URL")]
    pub primary: Option<String>,
    /// Admin listen address for /healthz, /readyz, /metrics and /api/v1
    /// [default: 127.0.0.1:9901].
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// File holding the admin port's bearer token (sets admin.token_file); required when
    /// --admin is not a loopback address.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<String>,
    /// Log format: human or json (level from RUST_LOG, default info) [default: human].
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Shadow upstream URL to mirror to (repeatable: upstreams shadow, shadow2, ...);
    /// replaces the routes' shadows.
    #[arg(long = "shadow", value_name = "URL")]
    pub shadows: Vec<String>,
    /// Percentage of requests mirrored to each --shadow (0-100, fractional) [default: 100].
    #[arg(long, value_name = "PERCENT")]
    pub sample: Option<String>,
    /// Methods mirrored to --shadow: a comma list (GET,HEAD,POST) or "all"; other methods
    /// may have side effects [default: GET,HEAD,OPTIONS].
    #[arg(long, value_name = "LIST|all")]
    pub mirror_methods: Option<String>,
    /// Append one JSON object per divergent pair to FILE (rotated by size; its directory
    /// must be writable) [default: none].
    #[arg(long, value_name = "FILE")]
    pub diff_log: Option<String>,
    /// Terminate TLS on the listeners with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<String>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<String>,
    /// Record sampled live exchanges to FILE, one HAR entry per line, for `shadowtap replay`
    /// (sets record.file; rotated by size within a disk cap) [default: none].
    #[arg(long, value_name = "FILE")]
    pub record: Option<String>,
    /// Percentage of requests recorded (0-100, fractional; sets record.sample) [default: 100].
    #[arg(long, value_name = "PERCENT")]
    pub record_sample: Option<String>,
}

/// A config part's serialized form, for telling whether a reload changed it: every field is
/// compared, without a `PartialEq` on each config type (they hold durations, paths and TLS
/// objects that serialize but do not compare).
pub fn settings_text<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

impl Config {
    /// Loads a config file (or none: flags alone) and applies the CLI overrides.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?,
            None => String::new(),
        };
        Config::from_toml(&text, overrides)
    }

    /// Parses and validates config text with overrides; all problems are reported together.
    pub fn from_toml(text: &str, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut problems = error::Problems::default();
        let mut raw = parse::parse_toml(text, &mut problems);
        validate::apply_overrides(&mut raw, overrides, &mut problems);
        let config = validate::validate(raw, overrides.diff_log.as_deref(), &mut problems);
        if let Some(path) = config.compare.diff_log.as_deref().filter(|p| !p.is_empty()) {
            if let Err(reason) = writable::appendable(Path::new(path)) {
                let key = match overrides.diff_log {
                    Some(_) => "--diff-log",
                    None => "compare.diff_log",
                };
                problems.push(key, reason);
            }
        }
        port_clashes(&config, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems.into_error())
        }
    }

    /// The effective config as TOML, for `shadowtap check`: a config file that reads back
    /// to the same config. An error (a value TOML cannot hold) must fail `check`, never be
    /// printed as if it were the config.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }
}

impl VerdictConfig {
    /// Reads only `[verdict]` from a config file: the whole file's shape is checked (a
    /// misspelled key anywhere is reported with its path), but a file holding nothing but
    /// `[verdict]` is accepted, as a CI job that judges a fleet has no proxy to configure.
    pub fn load(path: &Path) -> Result<VerdictConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut problems = error::Problems::default();
        let raw = parse::parse_toml(&text, &mut problems);
        let verdict = verdict::validate(raw.verdict, &mut problems);
        if problems.is_empty() {
            Ok(verdict)
        } else {
            Err(problems.into_error())
        }
    }
}

/// Sockets `run` could not bind together, reported while loading so that `check` does not
/// pass a config that `run` then fails on: the same port on the same address, or on a
/// wildcard address that covers the other (`0.0.0.0` covers IPv4; `[::]` covers both, as
/// Linux binds it dual-stack by default). Port 0 never clashes. Two listeners on exactly the
/// same address are already reported by validation.
fn port_clashes(config: &Config, problems: &mut error::Problems) {
    let mut sockets: Vec<(String, SocketAddr)> = config
        .listeners
        .iter()
        .enumerate()
        .map(|(index, listener)| (format!("listeners[{index}].address"), listener.address))
        .collect();
    if let Some(admin) = config.admin.address {
        sockets.push(("admin.address".to_string(), admin));
    }
    let covers = |wildcard: &SocketAddr, other: &SocketAddr| {
        wildcard.ip().is_unspecified() && (wildcard.is_ipv6() || other.is_ipv4())
    };
    for (later, (key, address)) in sockets.iter().enumerate() {
        for (earlier_key, earlier) in sockets.iter().take(later) {
            let both_listeners =
                key.starts_with("listeners") && earlier_key.starts_with("listeners");
            let clash = address.port() != 0
                && address.port() == earlier.port()
                && (address.ip() == earlier.ip()
                    || covers(address, earlier)
                    || covers(earlier, address));
            if clash && !(both_listeners && address == earlier) {
                problems.push(
                    key.clone(),
                    format!(
                        "{address} cannot be bound next to {earlier_key} ({earlier}): same port"
                    ),
                );
            }
        }
    }
}

/// Durations are written and printed as humantime strings ("250ms", "10s").
pub(crate) mod duration_str {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*duration).to_string())
    }
}
