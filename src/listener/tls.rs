//! A TLS listener's server side: one rustls `ServerConfig` per listener, and the handshake
//! of each accepted connection under the listener's `handshake_timeout`, counted once with
//! its outcome.
//!
//! TLS 1.2 and 1.3 only, the ring provider's default (safe) cipher suites, session
//! resumption by tickets and by a session cache, ALPN `h2` (when the listener takes HTTP/2)
//! and `http/1.1`. The ClientHello is read first (`LazyConfigAcceptor`), so plaintext and
//! garbage are told apart from TLS failures, and an SNI no certificate serves is counted as
//! such.

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use super::reload::{Reloader, Served};
use crate::telemetry::metrics::{TlsHandshakeError, TlsListenerMetrics};
use crate::telemetry::Metrics;
pub use crate::tls::certificates::TlsSetupError;
use crate::tls::certificates::{self, CertificateSet, SniResolver};
use crate::tls::settings::{ClientAuth, ListenerTls};
use rustls::server::{Acceptor, ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::ServerConfig;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

/// Sessions kept for resumption by session id (TLS 1.2 clients without tickets).
const SESSION_CACHE_SIZE: usize = 4096;

/// What a TLS listener needs for each connection, shared by its accept loop.
pub struct TlsListener {
    config: Arc<ServerConfig>,
    resolver: Arc<SniResolver>,
    metrics: Arc<TlsListenerMetrics>,
    handshake_timeout: Duration,
    client_subject_header: Option<http::HeaderName>,
}

/// A connection whose handshake completed.
pub struct Established {
    /// The TLS stream to serve HTTP on.
    pub stream: TlsStream<TcpStream>,
    /// The verified client certificate's subject (RFC 4514), when the listener has a
    /// `client_subject_header` and the client sent a certificate.
    pub client_subject: Option<http::HeaderValue>,
}

/// The ring provider: it builds with a C compiler alone (aws-lc-rs needs cmake). Its
/// deprecation only says it offers no post-quantum key exchange.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsListener {
    /// Reads the listener's certificates and builds its `ServerConfig`; the [`Reloader`]
    /// re-reads the files when they change. `listener` is the metrics' `listener` label;
    /// `http2` whether ALPN offers `h2`.
    pub fn new(
        settings: &ListenerTls,
        http2: bool,
        listener: &str,
        metrics: &Arc<Metrics>,
    ) -> Result<(TlsListener, Reloader), TlsSetupError> {
        let mut served = Vec::new();
        if let (Some(cert), Some(key)) = (&settings.cert, &settings.key) {
            served.push(Served::new(None, cert, key, certificates::load(cert, key)?));
        }
        for entry in &settings.certificates {
            let key = certificates::load(&entry.cert, &entry.key)?;
            served.push(Served::new(
                Some(entry.server_names.clone()),
                &entry.cert,
                &entry.key,
                key,
            ));
        }
        let resolver = Arc::new(SniResolver::new(CertificateSet::default()));
        let tls_metrics = Arc::new(metrics.tls_listener(listener));
        let reloader = Reloader::new(
            served,
            resolver.clone(),
            tls_metrics.clone(),
            metrics.clone(),
            listener,
            settings.reload_interval,
        );

        let provider = provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
        let builder = match &settings.client_ca {
            Some(ca) => {
                let roots = Arc::new(certificates::client_roots(ca)?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
                let verifier = match settings.client_auth {
                    Some(ClientAuth::Optional) => verifier.allow_unauthenticated(),
                    Some(ClientAuth::Required) | None => verifier,
                };
                builder.with_client_cert_verifier(verifier.build()?)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(resolver.clone());
        config.alpn_protocols = if http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        // The server's own suite order (the provider's, strongest first) decides, not the
        // client's: every suite offered is strong either way, but audits (testssl.sh) rate a
        // listener that lets the client pick as a finding.
        config.ignore_client_order = true;
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
        config.ticketer = ticketer()?;
        let client_subject_header = settings
            .client_subject_header
            .as_deref()
            .and_then(|name| http::HeaderName::from_bytes(name.as_bytes()).ok());
        Ok((
            TlsListener {
                config: Arc::new(config),
                resolver,
                metrics: tls_metrics,
                handshake_timeout: settings.handshake_timeout,
                client_subject_header,
            },
            reloader,
        ))
    }

    /// Runs the handshake on an accepted connection under the listener's timeout, and
    /// counts its outcome. `None`: it failed (counted, logged at debug); the socket is closed.
    pub async fn accept(&self, tcp: TcpStream) -> Option<Established> {
        let outcome = tokio::time::timeout(self.handshake_timeout, self.handshake(tcp)).await;
        let stream = match outcome {
            Ok(Ok(stream)) => stream,
            Ok(Err(reason)) => return self.failed(reason),
            Err(_) => return self.failed(TlsHandshakeError::Timeout),
        };
        let connection = stream.get_ref().1;
        let tls13 = connection.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3);
        self.metrics.handshake(tls13, connection.alpn_protocol());
        let client_subject = self
            .client_subject_header
            .as_ref()
            .and_then(|_| connection.peer_certificates()?.first())
            .and_then(|leaf| crate::tls::x509::subject(leaf))
            .and_then(|subject| http::HeaderValue::from_str(&subject).ok());
        Some(Established {
            stream,
            client_subject,
        })
    }

    /// `[listeners.tls] client_subject_header`: the field the verified subject travels in.
    pub fn client_subject_header(&self) -> Option<&http::HeaderName> {
        self.client_subject_header.as_ref()
    }

    async fn handshake(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, TlsHandshakeError> {
        let start = LazyConfigAcceptor::new(Acceptor::default(), tcp)
            .await
            .map_err(|error| match error.kind() {
                io::ErrorKind::InvalidData => TlsHandshakeError::NotTls,
                _ => TlsHandshakeError::Io,
            })?;
        let unknown = self
            .resolver
            .current()
            .choose(start.client_hello().server_name())
            .is_none();
        // Even for an unknown name the handshake goes on, so rustls answers with its alert.
        let result = start.into_stream(self.config.clone()).await;
        match result {
            _ if unknown => Err(TlsHandshakeError::UnknownServerName),
            Ok(stream) => Ok(stream),
            Err(error) => Err(classify(&error)),
        }
    }

    fn failed(&self, reason: TlsHandshakeError) -> Option<Established> {
        tracing::debug!(reason = reason.as_str(), "TLS handshake failed");
        self.metrics.handshake_failed(reason);
        None
    }
}

/// Ticket keys rotate every six hours (rustls' recommended ticketer).
#[allow(deprecated)]
fn ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, rustls::Error> {
    rustls::crypto::ring::Ticketer::new()
}

/// The reason label of a handshake that failed after its ClientHello.
fn classify(error: &io::Error) -> TlsHandshakeError {
    let tls = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(
            rustls::Error::NoCertificatesPresented
            | rustls::Error::InvalidCertificate(_)
            | rustls::Error::InvalidCertRevocationList(_),
        ) => TlsHandshakeError::ClientCertificate,
        Some(_) => TlsHandshakeError::Protocol,
        None if error.kind() == io::ErrorKind::InvalidData => TlsHandshakeError::Protocol,
        None => TlsHandshakeError::Io,
    }
}
