//! A listener's certificates: loading a chain with its key, and choosing one by SNI.
//!
//! The set a listener serves is swapped whole when a reload changes a file
//! ([`SniResolver::replace`]); a handshake takes the set current when its ClientHello
//! arrives, so connections already established keep the certificate they were served.

use super::pem::{self, PemError};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Why a certificate, its key or a CA bundle cannot be served with; names the file.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The file is missing, unreadable, or not PEM of the expected kind.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// The key is PEM but not a key rustls can sign with.
    #[error("{path}: unsupported private key: {source}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// The key is not the one the certificate was issued for.
    #[error("{key}: this key does not belong to the certificate in {cert}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// A CA bundle with no certificate usable as a trust anchor.
    #[error("{path}: no usable CA certificate: {source}")]
    Roots {
        /// The CA file.
        path: PathBuf,
        /// What rustls said of the first certificate it refused.
        #[source]
        source: rustls::Error,
    },
}

/// Reads a certificate chain and its key, and checks that the key belongs to the leaf.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, CertificateError> {
    let chain = pem::read_certificates(cert)?;
    let private = pem::read_private_key(key)?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&private).map_err(|source| {
        CertificateError::Key {
            path: key.to_path_buf(),
            source,
        }
    })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        // `Unknown`: the key type cannot say its public key; the handshake will tell.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(Arc::new(certified))
        }
        Err(_) => Err(CertificateError::Mismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        }),
    }
}

/// The trust anchors client certificates are verified against.
pub fn client_roots(ca: &Path) -> Result<RootCertStore, CertificateError> {
    let mut roots = RootCertStore::empty();
    for certificate in pem::read_certificates(ca)? {
        roots
            .add(certificate)
            .map_err(|source| CertificateError::Roots {
                path: ca.to_path_buf(),
                source,
            })?;
    }
    Ok(roots)
}

/// Server names as a config lists them.
pub struct ServerNames;

impl ServerNames {
    /// Lowercases a name and checks its shape: a DNS name, or `*.` and one (a wildcard
    /// covers exactly one label, as in certificates: RFC 6125 §6.4.3).
    pub fn normalise(name: &str) -> Result<String, &'static str> {
        let name = name.to_ascii_lowercase();
        let bare = name.strip_prefix("*.").unwrap_or(&name);
        let valid = !bare.is_empty()
            && bare.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if valid {
            Ok(name)
        } else {
            Err("not a server name (use \"example.com\" or \"*.example.com\")")
        }
    }
}

/// The certificates of one listener at one moment: by exact name, by wildcard suffix, and
/// the default for a ClientHello that matches neither (or names no server).
#[derive(Default)]
pub struct CertificateSet {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by what follows `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl CertificateSet {
    /// Serves `key` for `names` (normalised by [`ServerNames::normalise`]).
    pub fn add(&mut self, names: &[String], key: &Arc<CertifiedKey>) {
        for name in names {
            match name.strip_prefix("*.") {
                Some(suffix) => self.wildcard.insert(suffix.to_string(), key.clone()),
                None => self.exact.insert(name.clone(), key.clone()),
            };
        }
    }

    /// Serves `key` when no name matches.
    pub fn set_default(&mut self, key: Arc<CertifiedKey>) {
        self.default = Some(key);
    }

    /// The certificate for `server_name`: an exact entry first, then a wildcard one label
    /// deep, then the default. `None`: the handshake cannot go on.
    pub fn choose(&self, server_name: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        let by_name = server_name.and_then(|name| {
            let name = name.to_ascii_lowercase();
            self.exact.get(&name).or_else(|| {
                let (_, parent) = name.split_once('.')?;
                self.wildcard.get(parent)
            })
        });
        by_name.or(self.default.as_ref())
    }
}

/// rustls' certificate choice for a listener, over the set a reload may replace. Asked
/// once per handshake; a lock held for a map lookup, never across an await.
#[derive(Default)]
pub struct SniResolver {
    current: RwLock<Arc<CertificateSet>>,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SniResolver")
    }
}

impl SniResolver {
    /// A resolver serving `set`.
    pub fn new(set: CertificateSet) -> SniResolver {
        SniResolver {
            current: RwLock::new(Arc::new(set)),
        }
    }

    /// The set new handshakes are served from.
    pub fn current(&self) -> Arc<CertificateSet> {
        match self.current.read() {
            Ok(set) => set.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// From now on, new handshakes are served from `set`.
    pub fn replace(&self, set: CertificateSet) {
        let set = Arc::new(set);
        match self.current.write() {
            Ok(mut current) => *current = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current().choose(client_hello.server_name()).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certified(name: &str) -> (Arc<CertifiedKey>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.path().join("c.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("k.pem"), key.serialize_pem()).unwrap();
        let loaded = load(&dir.path().join("c.pem"), &dir.path().join("k.pem")).unwrap();
        (loaded, dir)
    }

    #[test]
    fn exact_then_wildcard_one_label_deep_then_default() {
        let (exact, _a) = certified("api.example.com");
        let (wild, _b) = certified("*.example.com");
        let (fallback, _c) = certified("default");
        let mut set = CertificateSet::default();
        set.add(&["api.example.com".to_string()], &exact);
        set.add(&["*.example.com".to_string()], &wild);
        let pick = |set: &CertificateSet, name| set.choose(name).cloned();
        assert!(Arc::ptr_eq(
            &pick(&set, Some("API.example.com")).unwrap(),
            &exact
        ));
        assert!(Arc::ptr_eq(
            &pick(&set, Some("www.example.com")).unwrap(),
            &wild
        ));
        assert!(pick(&set, Some("a.b.example.com")).is_none());
        assert!(pick(&set, Some("example.com")).is_none());
        assert!(pick(&set, None).is_none());
        set.set_default(fallback.clone());
        assert!(Arc::ptr_eq(
            &pick(&set, Some("a.b.example.com")).unwrap(),
            &fallback
        ));
        assert!(Arc::ptr_eq(&pick(&set, None).unwrap(), &fallback));
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_by_name() {
        let (_, a) = certified("a.test");
        let (_, b) = certified("b.test");
        let error = load(&a.path().join("c.pem"), &b.path().join("k.pem")).unwrap_err();
        assert!(
            matches!(error, CertificateError::Mismatch { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("does not belong"), "{error}");
    }

    #[test]
    fn server_names_are_checked() {
        assert_eq!(
            ServerNames::normalise("*.Example.com").unwrap(),
            "*.example.com"
        );
        for bad in ["", "*.", "a..b", "*.*.a", "a b", "ex:443"] {
            assert!(ServerNames::normalise(bad).is_err(), "{bad:?}");
        }
    }
}

/// Why a TLS listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A certificate, key or CA file could not be used.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    /// rustls refused the settings (no ticketer, no protocol version).
    #[error("TLS settings refused: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client CA could not make a verifier.
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}
