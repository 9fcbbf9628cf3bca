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
    /// upstream whose certificate is not verified.
    pub fn warnings(&self) -> Vec<String> {
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
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::config::{Config, Overrides};

    /// A CA certificate, a client certificate and its key, made now, in a temporary
    /// directory (kept alive by the returned handle).
    fn files() -> (tempfile::TempDir, impl Fn(&str) -> String) {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        let client_key = rcgen::KeyPair::generate().unwrap();
        let client = rcgen::CertificateParams::new(vec!["client.test".to_string()])
            .unwrap()
            .signed_by(&client_key, &ca, &key)
            .unwrap();
        std::fs::write(dir.path().join("client.pem"), client.pem()).unwrap();
        std::fs::write(dir.path().join("client.key"), client_key.serialize_pem()).unwrap();
        let root = dir.path().to_path_buf();
        (dir, move |name: &str| root.join(name).display().to_string())
    }

    fn load(upstream: &str) -> Result<Config, Vec<String>> {
        let text = format!("[upstreams.up]\n{upstream}\n[[routes]]\nprimary = \"up\"\n");
        Config::from_toml(&text, &Overrides::default())
            .map_err(|error| error.problems().iter().map(ToString::to_string).collect())
    }

    #[test]
    fn an_https_upstream_with_a_ca_file_and_a_client_certificate_is_accepted_and_printed_back() {
        let (_dir, file) = files();
        let config = load(&format!(
            "url = \"https://127.0.0.1:8443/\"\n[upstreams.up.tls]\nca_file = {:?}\n\
             client_cert = {:?}\nclient_key = {:?}\nserver_name = \"api.internal\"\n",
            file("ca.pem"),
            file("client.pem"),
            file("client.key"),
        ))
        .unwrap();
        let upstream = &config.upstreams["up"];
        assert_eq!(upstream.url, "https://127.0.0.1:8443");
        let tls = upstream.tls.as_ref().unwrap();
        assert_eq!(tls.server_name.as_deref(), Some("api.internal"));
        assert!(config.warnings().is_empty());
        let printed = config.to_toml().unwrap();
        assert!(printed.contains("[upstreams.up.tls]"), "{printed}");
        assert!(
            printed.contains("insecure_skip_verify = false"),
            "{printed}"
        );
    }

    #[test]
    fn every_tls_problem_is_reported_at_once_each_under_its_key() {
        let problems = load(
            "url = \"https://127.0.0.1:8443\"\n[upstreams.up.tls]\n\
             ca_file = \"/nonexistent/ca.pem\"\nclient_cert = \"/nonexistent/c.pem\"\n\
             server_name = \"not a name\"\n",
        )
        .unwrap_err();
        let paths: Vec<&str> = problems
            .iter()
            .map(|problem| problem.split(": ").next().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "upstreams.up.tls.server_name",
                "upstreams.up.tls.ca_file",
                "upstreams.up.tls.client_key",
            ],
            "{problems:#?}"
        );
        assert!(problems[1].contains("/nonexistent/ca.pem"), "{problems:#?}");
    }

    #[test]
    fn tls_settings_on_a_plaintext_url_and_a_skipped_verification_with_a_ca_are_refused() {
        let (_dir, file) = files();
        let problems =
            load("url = \"http://127.0.0.1:80\"\ntls = { server_name = \"x\" }\n").unwrap_err();
        assert!(
            problems[0].starts_with("upstreams.up.tls: "),
            "{problems:#?}"
        );
        let problems = load(&format!(
            "url = \"https://127.0.0.1\"\ntls = {{ ca_file = {:?}, insecure_skip_verify = true }}\n",
            file("ca.pem")
        ))
        .unwrap_err();
        assert!(
            problems[0].starts_with("upstreams.up.tls.insecure_skip_verify: "),
            "{problems:#?}"
        );
    }

    #[test]
    fn insecure_skip_verify_is_accepted_but_warned_about() {
        let config =
            load("url = \"https://[::1]:8443\"\ntls = { insecure_skip_verify = true }\n").unwrap();
        let warnings = config.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("upstreams.up.tls.insecure_skip_verify"));
        assert!(warnings[0].contains("NOT verified"));
    }

    #[test]
    fn a_client_key_that_is_not_a_key_is_reported_with_its_file() {
        let (_dir, file) = files();
        let problems = load(&format!(
            "url = \"https://127.0.0.1\"\ntls = {{ insecure_skip_verify = true, client_cert = {:?}, client_key = {:?} }}\n",
            file("client.pem"),
            file("client.pem"),
        ))
        .unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].starts_with("upstreams.up.tls.client_key: "),
            "{problems:#?}"
        );
        assert!(problems[0].contains("client.pem"), "{problems:#?}");
    }
}
