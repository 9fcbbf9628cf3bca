//! The config file as written: plain serde types that mirror the TOML.
//!
//! Nothing here is trusted yet. Every field is optional where a default exists so that
//! `validate` can fill defaults in one place and report every problem with its key path.
//! `deny_unknown_fields` everywhere: a misspelled key is an error, never silently ignored.

use super::compare::{RawCompare, RawRouteCompare};
use super::mirror::{RawMirror, RawRouteMirror};
use super::tls::RawListenerTls;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub listeners: Vec<RawListener>,
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    pub runtime: Option<RawRuntime>,
    pub shutdown: Option<RawShutdown>,
    pub logging: Option<RawLogging>,
    pub mirror: Option<RawMirror>,
    pub compare: Option<RawCompare>,
    pub verdict: Option<super::verdict::RawVerdict>,
    pub record: Option<super::record::RawRecord>,
}

/// One `[[listeners]]` entry.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub address: Option<String>,
    pub max_connections: Option<usize>,
    pub header_read_timeout: Option<String>,
    pub client_body_timeout: Option<String>,
    pub client_send_timeout: Option<String>,
    pub max_header_bytes: Option<usize>,
    pub max_headers: Option<usize>,
    pub http2: Option<bool>,
    pub trust_forwarded_headers: Option<bool>,
    pub http1_engine: Option<String>,
    pub via: Option<RawVia>,
    pub tls: Option<RawListenerTls>,
}

/// `via`: a pseudonym, or `true`/`false` to keep the default one or send none.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawVia {
    Switch(bool),
    Pseudonym(String),
}

/// `[admin]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub address: Option<String>,
    pub enabled: Option<bool>,
    pub token_file: Option<String>,
    pub read_only_open: Option<bool>,
    pub tls: Option<super::tls::RawAdminTls>,
}

/// One `[upstreams.NAME]` entry.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub url: Option<String>,
    pub connect_timeout: Option<String>,
    pub response_timeout: Option<String>,
    pub pool_max_idle: Option<usize>,
    pub pool_idle_timeout: Option<String>,
    pub protocol: Option<String>,
    pub tls: Option<super::upstream_tls::RawUpstreamTls>,
}

/// A route template: one string or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawTemplates {
    One(String),
    Many(Vec<String>),
}

/// One `[[routes]]` entry.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<String>,
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub primary: Option<String>,
    pub template: Option<RawTemplates>,
    pub host_rewrite: Option<String>,
    pub upgrade_idle_timeout: Option<String>,
    pub mirror: Option<RawRouteMirror>,
    pub compare: Option<RawRouteCompare>,
}

/// `[runtime]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuntime {
    pub worker_threads: Option<usize>,
}

/// `[shutdown]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShutdown {
    pub grace_period: Option<String>,
}

/// `[logging]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogging {
    pub format: Option<String>,
}
