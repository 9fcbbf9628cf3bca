//! `[upstreams.NAME.tls]`: how an `https://` upstream is spoken to, checked and built once.
//!
//! The files are read and the rustls client built while the config is validated, so
//! `check` reports an unreadable CA file or a key that does not match its certificate, and
//! the running proxy holds one client per upstream (one session cache) from the start.

use super::error::Problems;
use super::UpstreamProtocol;
use crate::tls::client::{Offer, Trust, UpstreamTls};
use crate::tls::pem;
use rustls_pki_types::ServerName;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[upstreams.NAME.tls]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    pub ca_file: Option<PathBuf>,
    pub server_name: Option<String>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub insecure_skip_verify: Option<bool>,
}

/// An `https://` upstream's TLS settings, as written (printed back by `check`), and the
/// client built from them.
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamTlsConfig {
    /// PEM file of the CA certificates the upstream's certificate must chain to; `None`:
    /// the system's trust store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// SNI and the name the certificate is verified against; `None`: the URL's host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// PEM certificate chain presented to an upstream that asks for one (mTLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    /// The private key of `client_cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    /// Accept any certificate for any name: for test environments only.
    pub insecure_skip_verify: bool,
    /// The client: one per upstream, so its pools share one session cache.
    #[serde(skip)]
    pub client: UpstreamTls,
}

/// Checks `[upstreams.NAME.tls]` (`path` is its key path) for an upstream on `host`, reading
/// its files; every problem is reported. `None` when one was.
pub(crate) fn validate(
    path: &str,
    raw: RawUpstreamTls,
    host: &str,
    protocol: UpstreamProtocol,
    problems: &mut Problems,
) -> Option<UpstreamTlsConfig> {
    let insecure_skip_verify = raw.insecure_skip_verify.unwrap_or(false);
    let name = raw.server_name.clone().unwrap_or_else(|| host.to_string());
    // An IP literal is verified as an IP SAN; brackets are the URL's, not the address's.
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let server_name = match ServerName::try_from(name.to_string()) {
        Ok(server_name) => Some(server_name),
        Err(_) => {
            problems.push(
                format!("{path}.server_name"),
                format!("{name:?} is neither a DNS name nor an IP address"),
            );
            None
        }
    };
    let trust = match (&raw.ca_file, insecure_skip_verify) {
        (Some(_), true) => {
            problems.push(
                format!("{path}.insecure_skip_verify"),
                "verification is skipped: a ca_file would not be used; remove one of them",
            );
            None
        }
        (_, true) => Some(Trust::NoVerification),
        (Some(file), false) => match pem::read_certificates(file) {
            Ok(certificates) => Some(Trust::Roots(certificates)),
            Err(error) => {
                problems.push(format!("{path}.ca_file"), error.to_string());
                None
            }
        },
        (None, false) => Some(Trust::System),
    };
    let client_auth = match (&raw.client_cert, &raw.client_key) {
        (None, None) => Some(None),
        (Some(cert), Some(key)) => {
            let chain = pem::read_certificates(cert).map_err(|error| {
                problems.push(format!("{path}.client_cert"), error.to_string());
            });
            let key = pem::read_private_key(key).map_err(|error| {
                problems.push(format!("{path}.client_key"), error.to_string());
            });
            match (chain, key) {
                (Ok(chain), Ok(key)) => Some(Some((chain, key))),
                _ => None,
            }
        }
        (Some(_), None) => {
            problems.push(
                format!("{path}.client_key"),
                "missing: client_cert needs its client_key",
            );
            None
        }
        (None, Some(_)) => {
            problems.push(
                format!("{path}.client_cert"),
                "missing: client_key needs its client_cert",
            );
            None
        }
    };
    let (Some(server_name), Some(trust), Some(client_auth)) = (server_name, trust, client_auth)
    else {
        return None;
    };
    let offer = match protocol {
        UpstreamProtocol::Http1 => Offer::Http1,
        UpstreamProtocol::Http2 => Offer::Http2,
        UpstreamProtocol::Auto => Offer::Either,
    };
    let client = match UpstreamTls::new(server_name, trust, client_auth, offer) {
        Ok(client) => client,
        Err(error) => {
            let reason = match std::error::Error::source(&error) {
                Some(source) => format!("{error}: {source}"),
                None => error.to_string(),
            };
            problems.push(path, reason);
            return None;
        }
    };
    Some(UpstreamTlsConfig {
        ca_file: raw.ca_file,
        server_name: raw.server_name,
        client_cert: raw.client_cert,
        client_key: raw.client_key,
        insecure_skip_verify,
        client,
    })
}

impl super::Config {
    /// What is valid but dangerous, for `check` to print and `run` to log at start-up: each
    /// upstream whose certificate is not verified, and an admin token file not readable here.
    pub fn warnings(&self) -> Vec<String> {
        let admin = self.admin.warning();
        self.upstreams
            .iter()
            .filter(|(_, upstream)| {
                upstream
                    .tls
                    .as_ref()
                    .is_some_and(|tls| tls.insecure_skip_verify)
            })
            .map(|(name, _)| {
                format!(
                    "upstreams.{name}.tls.insecure_skip_verify = true: the upstream's certificate \
                     is NOT verified; anyone on the path can read and change this traffic \
                     (test environments only)"
                )
            })
            .chain(admin)
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "upstream_tls_tests.rs"]
mod tests;
