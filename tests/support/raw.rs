//! Raw HTTP/1.1 over TCP for the tests that need control of every byte and of the moment
//! each side closes: a keep-alive client that reads responses one by one, and upstreams that
//! misbehave at chosen points of an exchange.

use super::{within, STEP};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One response as a raw client read it.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// The head's field lines, lowercased names.
    pub headers: Vec<(String, String)>,
    /// The body (framed by `Content-Length`; none without one).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of field `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }

    /// The server said it closes the connection after this response.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close"))
    }
}

/// A keep-alive HTTP/1.1 client on one TCP connection.
pub struct RawClient {
    /// The socket.
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// Where the end of a head (`\r\n\r\n`) is in `bytes`.
pub fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// The `content-length` of a head, 0 without one.
pub fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}

impl RawClient {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let stream = within("raw client connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        RawClient {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes `bytes`.
    pub async fn send(&mut self, bytes: &[u8]) {
        within("raw client write", self.stream.write_all(bytes))
            .await
            .expect("write");
    }

    /// Reads the next response; `None` when the server closed the connection first.
    pub async fn response(&mut self) -> Option<RawResponse> {
        within("a response", self.read_response()).await
    }

    async fn read_response(&mut self) -> Option<RawResponse> {
        let end = loop {
            if let Some(end) = head_end(&self.buf) {
                break end;
            }
            if !self.fill().await {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
            .collect();
        let length = content_length(head.as_bytes());
        while self.buf.len() < end + length {
            if !self.fill().await {
                return None;
            }
        }
        let body = self.buf[end..end + length].to_vec();
        self.buf.drain(..end + length);
        Some(RawResponse {
            status,
            headers,
            body,
        })
    }

    /// Reads more; false on EOF or error.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(read) => {
                self.buf.extend_from_slice(&chunk[..read]);
                true
            }
        }
    }
}

/// What a [`flaky_upstream`] does with a request that arrives on a connection that already
/// served one (a connection the proxy took from its pool).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnReuse {
    /// Answers like any other.
    Answer,
    /// Reads the whole request (head and body), then closes without answering.
    CloseAfterRequest,
    /// Reads the head only, then closes (the body unread: the kernel may reset).
    CloseAfterHead,
    /// Reads the head and half of the body, then closes.
    CloseMidBody,
}

impl OnReuse {
    /// Every way to treat a reused connection.
    pub const ALL: [OnReuse; 4] = [
        OnReuse::Answer,
        OnReuse::CloseAfterRequest,
        OnReuse::CloseAfterHead,
        OnReuse::CloseMidBody,
    ];
}

/// A raw keep-alive upstream that answers the first request of each connection with
/// `200` and the body `len=<request body length>`, and treats later requests of the
/// connection as the shared plan says (changeable while it runs).
pub struct FlakyUpstream {
    /// Its address.
    pub addr: SocketAddr,
    plan: Arc<Mutex<OnReuse>>,
    answered: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl FlakyUpstream {
    /// What the next request on a reused connection meets.
    pub fn set(&self, plan: OnReuse) {
        *self.plan.lock().expect("plan lock") = plan;
    }

    /// Requests answered so far.
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FlakyUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a [`FlakyUpstream`] with `plan` for reused connections.
pub async fn flaky_upstream(plan: OnReuse) -> FlakyUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let plan = Arc::new(Mutex::new(plan));
    let answered = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let task = {
        let (plan, answered, accepted) = (plan.clone(), answered.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let (plan, answered) = (plan.clone(), answered.clone());
                tokio::spawn(serve_flaky(stream, plan, answered));
            }
        })
    };
    FlakyUpstream {
        addr,
        plan,
        answered,
        accepted,
        task,
    }
}

async fn serve_flaky(mut stream: TcpStream, plan: Arc<Mutex<OnReuse>>, answered: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    for index in 0usize.. {
        let end = loop {
            if let Some(end) = head_end(&buf) {
                break end;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => buf.extend_from_slice(&chunk[..read]),
            }
        };
        let length = content_length(&buf[..end]);
        let plan = match index {
            0 => OnReuse::Answer,
            _ => *plan.lock().expect("plan lock"),
        };
        let wanted = match plan {
            OnReuse::CloseAfterHead => 0,
            OnReuse::CloseMidBody => length / 2,
            OnReuse::Answer | OnReuse::CloseAfterRequest => length,
        };
        while buf.len() < end + wanted {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => buf.extend_from_slice(&chunk[..read]),
            }
        }
        if plan != OnReuse::Answer {
            return;
        }
        buf.drain(..end + length);
        let body = format!("len={length}");
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        answered.fetch_add(1, Ordering::SeqCst);
    }
}

/// An upstream that reads a request head and then says nothing for `think`, watching its
/// socket: it records when the proxy closed the connection (EOF or reset) while it thought.
/// After `think` it answers `200` with a body of `body` bytes, sent slowly (1 KiB every
/// 5 ms), so that a client can leave in the middle of it.
pub struct ThinkingUpstream {
    /// Its address.
    pub addr: SocketAddr,
    /// One entry per request head read: how long after reading it the proxy closed the
    /// connection, `None` while (or if never) closed.
    pub closed_after: Arc<Mutex<Vec<Option<Duration>>>>,
    task: JoinHandle<()>,
}

impl ThinkingUpstream {
    /// Request heads read so far.
    pub fn requests(&self) -> usize {
        self.closed_after.lock().expect("lock").len()
    }

    /// How many of them saw their connection closed by the proxy.
    pub fn closed(&self) -> usize {
        self.closed_after
            .lock()
            .expect("lock")
            .iter()
            .filter(|closed| closed.is_some())
            .count()
    }
}

impl Drop for ThinkingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a [`ThinkingUpstream`] that thinks for `think` before answering `body` bytes.
pub async fn thinking_upstream(think: Duration, body: usize) -> ThinkingUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let closed_after: Arc<Mutex<Vec<Option<Duration>>>> = Arc::default();
    let seen = closed_after.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let end = loop {
                        if let Some(end) = head_end(&buf) {
                            break end;
                        }
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => buf.extend_from_slice(&chunk[..read]),
                        }
                    };
                    let length = content_length(&buf[..end]);
                    buf.drain(..end);
                    let index = {
                        let mut seen = seen.lock().expect("lock");
                        seen.push(None);
                        seen.len() - 1
                    };
                    let read_at = tokio::time::Instant::now();
                    let thought = tokio::time::sleep(think);
                    tokio::pin!(thought);
                    // Reads (the body, then anything else) until the thinking is over or
                    // the proxy closes.
                    loop {
                        tokio::select! {
                            () = thought.as_mut() => break,
                            read = stream.read(&mut chunk) => match read {
                                Ok(0) | Err(_) => {
                                    seen.lock().expect("lock")[index] = Some(read_at.elapsed());
                                    return;
                                }
                                Ok(read) => buf.extend_from_slice(&chunk[..read]),
                            },
                        }
                    }
                    let body_read = buf.len().min(length);
                    buf.drain(..body_read);
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {body}\r\n\r\n");
                    if stream.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let mut left = body;
                    while left > 0 {
                        let piece = left.min(1024);
                        if stream.write_all(&vec![b'x'; piece]).await.is_err() {
                            return;
                        }
                        left -= piece;
                        if left > 0 {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
            });
        }
    });
    ThinkingUpstream {
        addr,
        closed_after,
        task,
    }
}

/// Waits (at most [`STEP`]) until `done` holds, checking every 20 ms.
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + STEP;
    while !done() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {STEP:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
