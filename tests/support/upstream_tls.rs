//! TLS for tests: a private CA made at run time ([`Pki`], rcgen), and real TLS upstreams
//! ([`tls_upstream`]: tokio-rustls in front of hyper-util's server, HTTP/1.1 and h2 by what
//! the client speaks) that count the connections they accept and the handshakes that fail.

// ring's provider is the project's (Cargo.toml); rustls marks it deprecated for lacking
// post-quantum key exchange, which these tests do not need.
#![allow(deprecated)]

use super::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use std::path::PathBuf;
use tokio_rustls::TlsAcceptor;

/// A private CA in a temporary directory: `ca.pem` there, and leaves it signs.
pub struct Pki {
    pub dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    /// A new CA; its certificate is written to [`Self::ca_file`].
    pub fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("test CA {name}"));
        let ca = params.self_signed(&ca_key).expect("CA certificate");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write ca.pem");
        Pki { dir, ca, ca_key }
    }

    /// The CA certificate's PEM file.
    pub fn ca_file(&self) -> String {
        self.dir.path().join("ca.pem").display().to_string()
    }

    /// A leaf for `names` (DNS names, or IP addresses, which become IP SANs), signed by the CA.
    pub fn leaf(&self, names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let certificate = rcgen::CertificateParams::new(names)
            .expect("leaf params")
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("leaf certificate");
        (
            vec![certificate.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }

    /// A leaf written as `NAME.pem` and `NAME.key` in the directory (a client certificate):
    /// (certificate file, key file).
    pub fn leaf_files(&self, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let certificate = rcgen::CertificateParams::new(vec![format!("{name}.test")])
            .expect("leaf params")
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("leaf certificate");
        let cert_file: PathBuf = self.dir.path().join(format!("{name}.pem"));
        let key_file: PathBuf = self.dir.path().join(format!("{name}.key"));
        std::fs::write(&cert_file, certificate.pem()).expect("write certificate");
        std::fs::write(&key_file, key.serialize_pem()).expect("write key");
        (
            cert_file.display().to_string(),
            key_file.display().to_string(),
        )
    }

    /// Trust anchors of this CA, for a server that checks client certificates.
    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("CA as a root");
        roots
    }
}

/// A TLS upstream: where it listens, and what it counted.
pub struct TlsUpstream {
    pub addr: SocketAddr,
    /// TCP connections accepted.
    pub accepted: Arc<AtomicUsize>,
    /// Handshakes that failed.
    pub failed_handshakes: Arc<AtomicUsize>,
    /// Requests answered.
    pub requests: Arc<AtomicUsize>,
    /// Handshakes that resumed an earlier session.
    pub resumed: Arc<AtomicUsize>,
}

impl TlsUpstream {
    /// `https://ADDR` as the config's upstream URL.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

/// How a [`tls_upstream`] is set up.
pub struct TlsServer<'a> {
    /// The CA that signs its certificate.
    pub pki: &'a Pki,
    /// The names its certificate is for.
    pub names: &'a [&'a str],
    /// ALPN protocols it accepts, in preference order (empty: no ALPN).
    pub alpn: &'a [&'a [u8]],
    /// A CA whose client certificates it requires (mTLS).
    pub client_ca: Option<&'a Pki>,
}

/// Starts a TLS upstream on `127.0.0.1:0` that answers every request `200` with the body
/// `tls VERSION PATH` (the HTTP version it was spoken to in), followed, for a path
/// `/big/N`, by N bytes `b` (many TLS records).
pub async fn tls_upstream(server: TlsServer<'_>) -> TlsUpstream {
    let (chain, key) = server.pki.leaf(server.names);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions");
    let builder = match server.client_ca {
        Some(ca) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(Arc::new(ca.roots()), provider)
                .build()
                .expect("client verifier"),
        ),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .expect("server certificate");
    config.alpn_protocols = server.alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let accepted = Arc::new(AtomicUsize::new(0));
    let failed_handshakes = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let resumed = Arc::new(AtomicUsize::new(0));
    let counts = (
        accepted.clone(),
        failed_handshakes.clone(),
        requests.clone(),
        resumed.clone(),
    );
    tokio::spawn(async move {
        let (accepted, failed, requests, resumed) = counts;
        while let Ok((tcp, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            let failed = failed.clone();
            let requests = requests.clone();
            let resumed = resumed.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    failed.fetch_add(1, Ordering::SeqCst);
                    return;
                };
                if tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                    resumed.fetch_add(1, Ordering::SeqCst);
                }
                let service = service_fn(move |request: Request<Incoming>| {
                    requests.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let path = request.uri().path();
                        let mut body = format!("tls {:?} {path}", request.version());
                        if let Some(size) = path.strip_prefix("/big/") {
                            body.push_str(&"b".repeat(size.parse().unwrap_or(0)));
                        }
                        Ok::<_, Infallible>(Response::new(full(body)))
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    TlsUpstream {
        addr,
        accepted,
        failed_handshakes,
        requests,
        resumed,
    }
}
