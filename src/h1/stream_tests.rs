//! Unit tests of the TLS variant's readiness semantics, over a real TLS connection on
//! loopback.

use super::*;
use crate::tls::client::{Offer, Trust, UpstreamTls};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A connected pair: our TLS client stream, and the server's end.
async fn pair() -> (UpstreamStream, tokio_rustls::server::TlsStream<TcpStream>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![certificate.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let client = UpstreamTls::new(
        ServerName::try_from("localhost").unwrap(),
        Trust::Roots(vec![certificate.der().clone()]),
        None,
        Offer::Http1,
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accept = async {
        let (tcp, _) = listener.accept().await.unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(server))
            .accept(tcp)
            .await
            .unwrap()
    };
    let connect = async {
        let tcp = TcpStream::connect(address).await.unwrap();
        client.handshake(tcp).await.unwrap()
    };
    let (server, client) = tokio::join!(accept, connect);
    (UpstreamStream::Tls(Box::new(client)), server)
}

#[tokio::test]
async fn bytes_a_write_reported_taken_go_out_while_the_answer_is_awaited() {
    let (mut stream, mut server) = pair().await;
    // Write without waiting until nothing more is taken: some of what was taken may still
    // be in rustls, encrypted but not sent.
    let chunk = vec![b'x'; 64 * 1024];
    let mut taken = 0;
    loop {
        match stream.try_write_vectored(&[IoSlice::new(&chunk)]) {
            Ok(written) => taken += written,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
            Err(error) => panic!("{error}"),
        }
    }
    assert!(taken > 0);
    // The server answers once it has every byte the client was told went; the client only
    // waits for that answer, as the exchange does after its last write.
    let serve = async move {
        let mut received = vec![0u8; taken];
        server.read_exact(&mut received).await.unwrap();
        server.write_all(b"done").await.unwrap();
        server.flush().await.unwrap();
        server
    };
    let await_answer = async {
        stream.readable().await.unwrap();
        let mut answer = Vec::new();
        while answer.len() < 4 {
            stream.readable().await.unwrap();
            let _ = stream.try_read_buf(&mut answer);
        }
        answer
    };
    let (answer, _server) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(await_answer, serve)
    })
    .await
    .expect("every byte taken reached the server");
    assert_eq!(answer, b"done");
}

#[tokio::test]
async fn plaintext_rustls_holds_makes_the_stream_ready_and_an_idle_probe_sees_it() {
    let (mut stream, mut server) = pair().await;
    server.write_all(b"hello world").await.unwrap();
    server.flush().await.unwrap();
    stream.readable().await.unwrap();
    // Take part of the plaintext: the rest stays in rustls, decrypted.
    let mut small = [0u8; 5];
    let mut window = &mut small[..];
    let mut read = 0;
    while read == 0 {
        match stream.try_read_buf(&mut window) {
            Ok(n) => read = n,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                stream.readable().await.unwrap();
            }
            Err(error) => panic!("{error}"),
        }
    }
    assert_eq!(&small[..read], &b"hello world"[..read]);
    assert!(stream.read_ready(), "rustls holds the rest");
    // Stray bytes on an idle connection: not usable.
    assert!(!stream.still_open());
}

#[tokio::test]
async fn an_idle_tls_connection_is_usable_and_one_the_upstream_closed_is_not() {
    let (mut stream, server) = pair().await;
    // TLS 1.3 session tickets may arrive after the handshake: still usable.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(stream.still_open());
    drop(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!stream.still_open());
}
