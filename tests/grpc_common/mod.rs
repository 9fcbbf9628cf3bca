//! What the gRPC tests share: the echo service of `tests/protos/echo.proto` as a real tonic
//! server, a tonic client, and the real binary started from a config.

#![allow(dead_code)]

pub mod pb {
    #![allow(clippy::all, clippy::pedantic, unreachable_pub, missing_docs)]
    include!("../protos/echo.rs");
}

use pb::echo_server::{Echo, EchoServer};
use pb::{EchoReply, EchoRequest, Item};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// The trailer every failing call of the echo server carries besides its status.
pub const TRAILER: &str = "x-echo-trailer";

/// How an echo server answers.
#[derive(Clone, Default)]
pub struct Behaviour {
    /// Put in each reply's `server` field.
    pub name: &'static str,
    /// Each reply's `item.price` is this much more than the primary's (a shadow that changed
    /// one field).
    pub price_offset: f64,
    /// Every call fails with this code, whatever the request says.
    pub always_fail: Option<tonic::Code>,
    /// Answers with gzip-compressed messages to a client that accepts them.
    pub gzip: bool,
}

/// A real tonic echo server (the service of `tests/protos/echo.proto`).
pub struct EchoService {
    behaviour: Behaviour,
    /// Calls received, of any kind.
    pub calls: Arc<AtomicUsize>,
    /// Notified when a server stream has sent its first message; the stream sends the rest
    /// only once `release` is notified (so a test can see the first arrive alone).
    pub first_sent: Arc<Notify>,
    pub release: Arc<Notify>,
    /// Notified when a client stream's first message has arrived at the server.
    pub first_received: Arc<Notify>,
}

impl EchoService {
    fn reply(&self, text: &str, sequence: u32) -> EchoReply {
        EchoReply {
            text: text.to_string(),
            sequence,
            item: Some(Item {
                name: "widget".into(),
                count: 3,
                price: 9.5 + self.behaviour.price_offset,
            }),
            items: vec![
                Item {
                    name: "a".into(),
                    count: 1,
                    price: 1.25,
                },
                Item {
                    name: "b".into(),
                    count: 2,
                    price: 2.5,
                },
            ],
            server: self.behaviour.name.to_string(),
        }
    }

    /// A request's failure, if it asks for one: code `fail_with`, a message that is not
    /// ASCII, binary details and a trailer of our own.
    fn failure(&self, request: &EchoRequest) -> Option<Status> {
        let code = match self.behaviour.always_fail {
            Some(code) => code,
            None if request.fail_with != 0 => tonic::Code::from_i32(request.fail_with),
            None => return None,
        };
        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert(TRAILER, "kept".parse().ok()?);
        Some(Status::with_details_and_metadata(
            code,
            format!("failed: {} ✗", request.text),
            bytes::Bytes::from_static(b"\x08\x96\x01details\xff"),
            metadata,
        ))
    }
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;

#[tonic::async_trait]
impl Echo for Arc<EchoService> {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let request = request.into_inner();
        tokio::time::sleep(Duration::from_millis(request.delay_ms)).await;
        if let Some(status) = self.failure(&request) {
            return Err(status);
        }
        Ok(Response::new(self.reply(&request.text, 0)))
    }

    type ServerStreamStream = ReplyStream;

    async fn server_stream(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<ReplyStream>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let request = request.into_inner();
        let (tx, rx) = mpsc::channel(4);
        let service = self.clone();
        tokio::spawn(async move {
            for sequence in 0..request.repeat {
                if tx
                    .send(Ok(service.reply(&request.text, sequence)))
                    .await
                    .is_err()
                {
                    return;
                }
                if sequence == 0 && request.delay_ms > 0 {
                    service.first_sent.notify_one();
                    service.release.notified().await;
                }
            }
            if let Some(status) = service.failure(&request) {
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn client_stream(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoReply>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut stream = request.into_inner();
        let mut texts = Vec::new();
        while let Some(message) = stream.next().await {
            let message = message?;
            if texts.is_empty() {
                self.first_received.notify_one();
            }
            texts.push(message.text);
        }
        Ok(Response::new(
            self.reply(&texts.join("+"), texts.len() as u32),
        ))
    }

    type BidiStream = ReplyStream;

    async fn bidi(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<ReplyStream>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut stream = request.into_inner();
        let service = self.clone();
        let replies = async_stream(move |tx| async move {
            let mut sequence = 0;
            while let Some(message) = stream.next().await {
                let reply = message.map(|message| service.reply(&message.text, sequence));
                sequence += 1;
                if tx.send(reply).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(replies))
    }
}

/// A stream fed by a spawned task through a small channel.
fn async_stream<F, Fut>(produce: F) -> ReplyStream
where
    F: FnOnce(mpsc::Sender<Result<EchoReply, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(produce(tx));
    Box::pin(ReceiverStream::new(rx))
}

/// A running echo server.
pub struct EchoServerHandle {
    pub addr: SocketAddr,
    pub service: Arc<EchoService>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EchoServerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a tonic echo server on `127.0.0.1:0`.
pub async fn echo_server(behaviour: Behaviour) -> EchoServerHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    echo_server_on(listener, behaviour)
}

/// Starts a tonic echo server on a bound listener (the gRPC load cell's upstreams listen on
/// the ports its script gives).
pub fn echo_server_on(listener: tokio::net::TcpListener, behaviour: Behaviour) -> EchoServerHandle {
    let addr = listener.local_addr().unwrap();
    let service = Arc::new(EchoService {
        behaviour,
        calls: Arc::new(AtomicUsize::new(0)),
        first_sent: Arc::new(Notify::new()),
        release: Arc::new(Notify::new()),
        first_received: Arc::new(Notify::new()),
    });
    let mut echo = EchoServer::new(service.clone());
    if service.behaviour.gzip {
        echo = echo.send_compressed(tonic::codec::CompressionEncoding::Gzip);
    }
    let server = tonic::transport::Server::builder()
        .add_service(echo)
        .serve_with_incoming(TcpListenerStream::new(listener));
    let task = tokio::spawn(async move {
        let _ = server.await;
    });
    EchoServerHandle {
        addr,
        service,
        task,
    }
}

/// A tonic client over h2c to `addr`.
pub async fn client(addr: SocketAddr) -> pb::echo_client::EchoClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    pb::echo_client::EchoClient::new(channel)
}

/// A request for `text`.
pub fn echo(text: &str) -> EchoRequest {
    EchoRequest {
        text: text.into(),
        ..EchoRequest::default()
    }
}
