//! `[listeners.tls]`: the certificates a listener terminates TLS with, chosen by SNI, how
//! often they are re-read, and the optional client certificates (mTLS).
//!
//! Validation reads every file it names and checks each key against its certificate, so
//! `check` refuses a config that `run` would fail on, with the key path and the reason.

use super::check::duration;
use super::error::Problems;
use crate::tls::certificates::{self, ServerNames};
pub use crate::tls::settings::{ClientAuth, ListenerTls, SniCertificate};
use serde::Deserialize;
use std::path::PathBuf;

/// Defaults of `[listeners.tls]`.
pub(crate) mod defaults {
    pub const HANDSHAKE_TIMEOUT: &str = "10s";
    pub const RELOAD_INTERVAL: &str = "30s";
}

/// `[listeners.tls]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListenerTls {
    pub cert: Option<String>,
    pub key: Option<String>,
    #[serde(default)]
    pub certificates: Vec<RawSniCertificate>,
    pub handshake_timeout: Option<String>,
    pub reload_interval: Option<String>,
    pub client_ca: Option<String>,
    pub client_auth: Option<String>,
    pub client_subject_header: Option<String>,
}

/// `[admin.tls]` as written: a listener's TLS without `client_subject_header` (the admin
/// port forwards no request to pass a subject on to).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdminTls {
    pub cert: Option<String>,
    pub key: Option<String>,
    #[serde(default)]
    pub certificates: Vec<RawSniCertificate>,
    pub handshake_timeout: Option<String>,
    pub reload_interval: Option<String>,
    pub client_ca: Option<String>,
    pub client_auth: Option<String>,
}

impl From<RawAdminTls> for RawListenerTls {
    fn from(admin: RawAdminTls) -> RawListenerTls {
        RawListenerTls {
            cert: admin.cert,
            key: admin.key,
            certificates: admin.certificates,
            handshake_timeout: admin.handshake_timeout,
            reload_interval: admin.reload_interval,
            client_ca: admin.client_ca,
            client_auth: admin.client_auth,
            client_subject_header: None,
        }
    }
}

/// One `[[listeners.tls.certificates]]` entry as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSniCertificate {
    #[serde(default)]
    pub server_names: Vec<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// Validates `[listeners.tls]` at `path` (`listeners[0].tls`).
pub(crate) fn validate(
    path: &str,
    raw: RawListenerTls,
    problems: &mut Problems,
) -> Option<ListenerTls> {
    let before = problems.len();
    let handshake_timeout = duration(
        &format!("{path}.handshake_timeout"),
        raw.handshake_timeout.as_deref(),
        defaults::HANDSHAKE_TIMEOUT,
        problems,
    );
    let reload_interval = duration(
        &format!("{path}.reload_interval"),
        raw.reload_interval.as_deref(),
        defaults::RELOAD_INTERVAL,
        problems,
    );
    let (cert, key) = match (raw.cert, raw.key) {
        (Some(cert), Some(key)) => {
            let (cert, key) = (PathBuf::from(cert), PathBuf::from(key));
            check_pair(&format!("{path}.cert"), &cert, &key, problems);
            (Some(cert), Some(key))
        }
        (None, None) => (None, None),
        (Some(_), None) => {
            problems.push(format!("{path}.key"), "missing: `cert` needs its `key`");
            (None, None)
        }
        (None, Some(_)) => {
            problems.push(format!("{path}.cert"), "missing: `key` needs its `cert`");
            (None, None)
        }
    };
    let mut seen = std::collections::HashSet::new();
    let mut sni = Vec::new();
    for (index, entry) in raw.certificates.into_iter().enumerate() {
        let entry_path = format!("{path}.certificates[{index}]");
        if let Some(entry) = validate_sni(&entry_path, entry, &mut seen, problems) {
            sni.push(entry);
        }
    }
    if cert.is_none() && sni.is_empty() && problems.len() == before {
        problems.push(
            format!("{path}.cert"),
            "missing: a TLS listener needs `cert` and `key`, or [[certificates]] chosen by SNI",
        );
    }
    let client_auth = match raw.client_auth.as_deref() {
        None => None,
        Some("required") => Some(ClientAuth::Required),
        Some("optional") => Some(ClientAuth::Optional),
        Some(other) => {
            problems.push(
                format!("{path}.client_auth"),
                format!("unknown mode {other:?} (expected \"required\" or \"optional\")"),
            );
            None
        }
    };
    let client_ca = raw.client_ca.map(PathBuf::from);
    match &client_ca {
        Some(ca) => {
            if let Err(error) = certificates::client_roots(ca) {
                problems.push(format!("{path}.client_ca"), error.to_string());
            }
        }
        None if raw.client_auth.is_some() => problems.push(
            format!("{path}.client_auth"),
            "needs `client_ca`, the CA bundle client certificates are verified against",
        ),
        None => {}
    }
    let client_subject_header = raw.client_subject_header.map(|name| {
        let key = format!("{path}.client_subject_header");
        super::check::header_name(&key, &name, problems);
        // A field the header rules own (hop-by-hop, framing, Host, X-Forwarded-*, Via, the
        // request id) would be rewritten after the subject is set, or change the message.
        if crate::header_rules::classify(name.as_bytes()) != crate::header_rules::FieldClass::EndToEnd {
            problems.push(
                key.clone(),
                format!("{name:?} is a field the proxy manages itself; pick another name, e.g. \"x-client-subject\""),
            );
        }
        if client_ca.is_none() {
            problems.push(
                key,
                "needs `client_ca`: without client certificates there is no subject to pass",
            );
        }
        name.to_ascii_lowercase()
    });
    if problems.len() != before {
        return None;
    }
    Some(ListenerTls {
        client_auth: client_ca
            .as_ref()
            .map(|_| client_auth.unwrap_or(ClientAuth::Required)),
        cert,
        key,
        certificates: sni,
        handshake_timeout,
        reload_interval,
        client_ca,
        client_subject_header,
    })
}

fn validate_sni(
    path: &str,
    raw: RawSniCertificate,
    seen: &mut std::collections::HashSet<String>,
    problems: &mut Problems,
) -> Option<SniCertificate> {
    let before = problems.len();
    if raw.server_names.is_empty() {
        problems.push(
            format!("{path}.server_names"),
            "missing: list the names (\"example.com\", \"*.example.com\") this certificate serves",
        );
    }
    let mut names = Vec::new();
    for (index, name) in raw.server_names.iter().enumerate() {
        let key = format!("{path}.server_names[{index}]");
        match ServerNames::normalise(name) {
            Ok(name) => {
                if !seen.insert(name.clone()) {
                    problems.push(key, format!("{name:?} is served by two certificates"));
                }
                names.push(name);
            }
            Err(reason) => problems.push(key, format!("{name:?}: {reason}")),
        }
    }
    let cert = raw.cert.map(PathBuf::from);
    let key = raw.key.map(PathBuf::from);
    if cert.is_none() {
        problems.push(
            format!("{path}.cert"),
            "missing: the certificate chain file",
        );
    }
    if key.is_none() {
        problems.push(format!("{path}.key"), "missing: the private key file");
    }
    let (Some(cert), Some(key)) = (cert, key) else {
        return None;
    };
    check_pair(&format!("{path}.cert"), &cert, &key, problems);
    (problems.len() == before).then_some(SniCertificate {
        server_names: names,
        cert,
        key,
    })
}

/// Reads a chain and its key as a reload would, so `check` reports an unreadable file or a
/// key that does not belong to the certificate.
fn check_pair(path: &str, cert: &std::path::Path, key: &std::path::Path, problems: &mut Problems) {
    if let Err(error) = certificates::load(cert, key) {
        problems.push(path, error.to_string());
    }
}
