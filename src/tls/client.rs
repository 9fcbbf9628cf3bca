//! TLS towards upstreams: one rustls `ClientConfig` per upstream, and the handshake.
//!
//! Why one config per upstream, built once: rustls keeps its session cache in the config,
//! so every pooled connection to the upstream (the live pool and a shadow's own pool share
//! the config) resumes the session of an earlier one instead of a full handshake. The
//! config is built when the file is validated, so `check` reports an unusable CA file, a
//! client key that does not match its certificate, or an empty system trust store.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::fmt;
use std::io;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The ALPN name of HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";
/// The ALPN name of HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// What the client offers by ALPN: one protocol when the upstream's `protocol` names it, both
/// (h2 preferred) for `protocol = "auto"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// `http/1.1` only.
    Http1,
    /// `h2` only.
    Http2,
    /// `h2` then `http/1.1`: the upstream chooses.
    Either,
}

impl Offer {
    fn protocols(self) -> Vec<Vec<u8>> {
        match self {
            Offer::Http1 => vec![ALPN_HTTP1.to_vec()],
            Offer::Http2 => vec![ALPN_H2.to_vec()],
            Offer::Either => vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()],
        }
    }
}

/// Whom the client trusts to sign the upstream's certificate.
pub enum Trust {
    /// The certificates of the upstream's `ca_file`.
    Roots(Vec<CertificateDer<'static>>),
    /// The operating system's trust store.
    System,
    /// Nobody is checked (`insecure_skip_verify`): test environments only.
    NoVerification,
}

/// Why an upstream's TLS client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientConfigError {
    /// Not one certificate of the system's trust store could be loaded.
    #[error("no trust roots could be loaded from the system store ({detail}); name a ca_file")]
    NoSystemRoots {
        /// What the loader reported, or that the store was empty.
        detail: String,
    },
    /// A certificate of the `ca_file` is not a usable trust anchor.
    #[error("a certificate of the ca_file is not a usable trust anchor")]
    BadRoot(#[source] rustls::Error),
    /// The client certificate and key were refused together (a key that does not match).
    #[error("the client certificate and key cannot be used together")]
    ClientAuth(#[source] rustls::Error),
    /// The provider refused the protocol versions (not expected with ring).
    #[error("the TLS provider refused TLS 1.2 and 1.3")]
    Versions(#[source] rustls::Error),
}

/// An upstream's TLS client: its config (and so its session cache) and the name its
/// certificate is verified against, sent as SNI. Cheap to clone: the pools of one upstream
/// share it, so they share the session cache.
#[derive(Clone)]
pub struct UpstreamTls {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl UpstreamTls {
    /// Builds the client: TLS 1.2 and 1.3 with ring's safe suites, `offer` by ALPN, the
    /// client certificate when there is one.
    pub fn new(
        server_name: ServerName<'static>,
        trust: Trust,
        client_auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
        offer: Offer,
    ) -> Result<UpstreamTls, ClientConfigError> {
        let provider = Arc::new(ring_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(ClientConfigError::Versions)?;
        let builder = match trust {
            Trust::Roots(certificates) => {
                let mut roots = RootCertStore::empty();
                for certificate in certificates {
                    roots.add(certificate).map_err(ClientConfigError::BadRoot)?;
                }
                builder.with_root_certificates(roots)
            }
            Trust::System => builder.with_root_certificates(system_roots()?),
            Trust::NoVerification => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider))),
        };
        let mut config = match client_auth {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(ClientConfigError::ClientAuth)?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = offer.protocols();
        Ok(UpstreamTls {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// The TLS handshake over a connected socket. A failure is an `io::Error` whose inner
    /// error is rustls' reason (a certificate the roots do not sign, a name it does not
    /// carry, a refused client certificate).
    pub async fn handshake(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        self.connector.connect(self.server_name.clone(), tcp).await
    }

    /// The config, for a connector that needs it directly (hyper's h2 client).
    pub fn config(&self) -> &Arc<ClientConfig> {
        self.connector.config()
    }
}

/// ring's provider: the project's choice because it builds with a C compiler alone
/// (Cargo.toml). rustls marks it deprecated for lacking post-quantum key exchange, which
/// only aws-lc-rs offers; the classical groups it has are the ones upstreams speak today.
#[allow(deprecated)]
fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The system's trust store; an error when not one root could be loaded.
fn system_roots() -> Result<RootCertStore, ClientConfigError> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let detail = match loaded.errors.first() {
            Some(error) => error.to_string(),
            None => "the store is empty".to_string(),
        };
        return Err(ClientConfigError::NoSystemRoots { detail });
    }
    Ok(roots)
}

/// `insecure_skip_verify`: any certificate for any name is accepted, but the handshake's
/// signatures are still checked (so the peer holds the key of the certificate it sent).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
