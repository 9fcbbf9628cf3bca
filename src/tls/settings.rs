//! A TLS listener's settings as validated (`[listeners.tls]`, read and checked by
//! `config`): kept here, below their consumers (the config that validates them, the listener that serves with them), so the TLS side needs
//! nothing from the config layer above it.

use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// A listener's TLS settings. Paths are as written (relative ones resolve against the
/// working directory), so a reload re-reads the same files.
#[derive(Debug, Clone, Serialize)]
pub struct ListenerTls {
    /// The default certificate chain: served when no SNI entry matches (or no SNI is sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// The default certificate's key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Certificates chosen by the client's SNI, in config order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<SniCertificate>,
    /// A client must complete its handshake within this time.
    #[serde(serialize_with = "humantime_str")]
    pub handshake_timeout: Duration,
    /// How often the certificate files are checked for a change.
    #[serde(serialize_with = "humantime_str")]
    pub reload_interval: Duration,
    /// CA bundle client certificates are verified against; `None`: no client certificates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
    /// Whether a client certificate is required or only verified when sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<ClientAuth>,
    /// The request field that carries the verified client subject upstream (lowercase). A
    /// client-sent field of this name is always removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_subject_header: Option<String>,
}

/// One certificate served for the names it lists.
#[derive(Debug, Clone, Serialize)]
pub struct SniCertificate {
    /// Exact names and `*.` wildcards (one label deep), lowercase.
    pub server_names: Vec<String>,
    /// The certificate chain.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
}

/// `client_auth`: what a listener with a `client_ca` asks of clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// A handshake without a verified client certificate fails.
    Required,
    /// A client certificate is verified when sent; clients without one are served.
    Optional,
}

/// Durations print as the config writes them ("10s"), so `check`'s output reads back.
fn humantime_str<S: serde::Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&humantime::format_duration(*duration).to_string())
}
