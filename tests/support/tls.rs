//! TLS for tests: a private CA made at test time (rcgen), leaf and client certificates it
//! signs written to a temporary directory, and a rustls client that speaks HTTP/1.1 or h2
//! by ALPN through hyper.

use super::{within, Body};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A certificate authority and the directory its certificates are written to.
pub struct Pki {
    pub dir: tempfile::TempDir,
    ca: Certificate,
    ca_key: KeyPair,
    ca_pem: String,
}

/// A certificate and key written as PEM files, and the certificate's DER.
#[derive(Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl Pki {
    /// A fresh CA named `name`.
    pub fn new(name: &str) -> Pki {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("CA certificate");
        Pki {
            dir: tempfile::tempdir().expect("temp dir"),
            ca_pem: cert.pem(),
            ca: cert,
            ca_key: key,
        }
    }

    /// The CA certificate, written as `file`.
    pub fn ca_file(&self, file: &str) -> PathBuf {
        let path = self.dir.path().join(file);
        std::fs::write(&path, &self.ca_pem).expect("write CA");
        path
    }

    /// A server certificate for `names`, written as `stem.pem` / `stem.key`.
    pub fn server(&self, stem: &str, names: &[&str]) -> Issued {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, stem);
        self.issue(stem, params)
    }

    /// A client certificate whose subject is `CN=cn, O=org`.
    pub fn client(&self, stem: &str, cn: &str, org: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(stem, params)
    }

    fn issue(&self, stem: &str, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("sign leaf");
        let issued = Issued {
            cert: self.dir.path().join(format!("{stem}.pem")),
            key: self.dir.path().join(format!("{stem}.key")),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        };
        issued.write_to(&issued.cert, &issued.key);
        issued
    }

    /// The client's trust anchors: this CA.
    pub fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        let der = CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).expect("CA der");
        roots.add(der).expect("CA root");
        roots
    }
}

use rustls::pki_types::pem::PemObject;

impl Issued {
    /// Writes this certificate and key to `cert` and `key` (a rotation, in tests).
    pub fn write_to(&self, cert: &PathBuf, key: &PathBuf) {
        std::fs::write(cert, &self.cert_pem).expect("write cert");
        std::fs::write(key, &self.key_pem).expect("write key");
    }

    fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("key der")
    }
}

/// A rustls client trusting `pki`, offering `alpn`, presenting `identity` when given.
pub fn client_config(
    pki: &Pki,
    alpn: &[&str],
    identity: Option<&Issued>,
) -> Arc<rustls::ClientConfig> {
    client_config_versions(pki, alpn, identity, rustls::DEFAULT_VERSIONS)
}

/// [`client_config`] offering only `versions`.
pub fn client_config_versions(
    pki: &Pki,
    alpn: &[&str],
    identity: Option<&Issued>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    // ring, as the proxy uses (it builds with gcc alone); it has no post-quantum groups.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(pki.roots());
    let mut config = match identity {
        Some(identity) => builder
            .with_client_auth_cert(vec![identity.der.clone()], identity.key_der())
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

/// Connects to `addr` and completes a handshake naming `sni`.
pub async fn handshake(
    addr: SocketAddr,
    sni: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_string()).expect("server name");
    within(
        "TLS handshake",
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
}

/// The leaf certificate the server presented on `stream`.
pub fn served_certificate(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    let (_, connection) = stream.get_ref();
    connection.peer_certificates().expect("server certificate")[0].clone()
}

/// An HTTP sender over an established TLS stream: h2 when ALPN chose it, else HTTP/1.1.
pub enum Sender {
    Http1(hyper::client::conn::http1::SendRequest<Body>),
    Http2(hyper::client::conn::http2::SendRequest<Body>),
}

impl Sender {
    /// Starts HTTP over `stream` by its ALPN outcome.
    pub async fn over(stream: TlsStream<TcpStream>) -> hyper::Result<Sender> {
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(stream);
        if h2 {
            let (sender, connection) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await?;
            tokio::spawn(connection);
            Ok(Sender::Http2(sender))
        } else {
            let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(connection);
            Ok(Sender::Http1(sender))
        }
    }

    /// Sends `request`; returns the response with its body read.
    pub async fn send(&mut self, request: Request<Body>) -> hyper::Result<Response<Bytes>> {
        let response = within("TLS request", async {
            match self {
                Sender::Http1(sender) => {
                    sender.ready().await?;
                    sender.send_request(request).await
                }
                Sender::Http2(sender) => {
                    sender.ready().await?;
                    sender.send_request(request).await
                }
            }
        })
        .await?;
        let (parts, body) = response.into_parts();
        let body = within("TLS response body", body.collect())
            .await?
            .to_bytes();
        Ok(Response::from_parts(parts, body))
    }
}

impl Issued {
    /// The `cert` and `key` lines naming these files, for a `[listeners.tls]` section.
    pub fn pair(&self) -> String {
        format!("cert = {:?}\nkey = {:?}\n", self.cert, self.key)
    }
}

/// `text`'s one listener with `tls` lines in its `[listeners.tls]` section (`text` as the
/// support configs write it: the listener, then `[admin]`).
pub fn with_listener_tls(text: &str, tls: &str) -> String {
    text.replacen(
        "\n[admin]",
        &format!("\n[listeners.tls]\n{tls}\n\n[admin]"),
        1,
    )
}
