//! Raw HTTP/1.1 over TCP (or TLS) for the tests that need control of every byte and of the moment
//! each side closes: a keep-alive client that reads responses one by one, and upstreams that
//! misbehave at chosen points of an exchange.

use super::within;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One response as it came over the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct RawResponse {
    /// The status line's version, as sent.
    pub version: String,
    /// The status code.
    pub status: u16,
    /// Names lower-cased, values trimmed, in wire order.
    pub headers: Vec<(String, String)>,
    /// The body, unframed (chunked, by length, or up to the close).
    pub body: Vec<u8>,
    /// The trailer fields of a chunked body, as `headers`.
    pub trailers: Vec<(String, String)>,
}

impl RawResponse {
    /// The first value of field `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body, lossily as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Every token of every `Connection` field, lower-cased.
    pub fn connection_tokens(&self) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "connection")
            .flat_map(|(_, v)| v.split(','))
            .map(|token| token.trim().to_ascii_lowercase())
            .filter(|token| !token.is_empty())
            .collect()
    }

    /// The body is framed as chunked.
    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    }

    /// The server said it closes the connection after this response.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close"))
    }
}

/// A response that ended before it was complete (or was not HTTP at all).
#[derive(Debug)]
pub struct Cut {
    /// The status, when the status line arrived.
    pub status: Option<u16>,
    /// The body bytes that arrived.
    pub body: Vec<u8>,
    /// Where it ended.
    pub why: String,
}

/// A keep-alive HTTP/1.1 client on one connection (TCP, or TLS over it), responses parsed
/// by hand.
pub struct RawClient<S = TcpStream> {
    /// The socket.
    pub stream: S,
    /// Bytes read and not yet parsed.
    pub buffer: Vec<u8>,
}

impl RawClient {
    /// Connects to `addr` over TCP.
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let stream = within("raw connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        RawClient::over(stream)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> RawClient<S> {
    /// A client on an established stream (a TLS one, after its handshake).
    pub fn over(stream: S) -> RawClient<S> {
        RawClient {
            stream,
            buffer: Vec::new(),
        }
    }

    /// Writes `bytes`.
    pub async fn send(&mut self, bytes: &[u8]) {
        within("raw write", self.stream.write_all(bytes))
            .await
            .expect("raw write");
    }

    /// Reads more into the buffer; `false` at EOF or on a read error (a reset ends it too).
    /// Cancel-safe: bytes are only ever appended whole.
    async fn fill(&mut self) -> bool {
        self.buffer.reserve(64 * 1024);
        matches!(self.stream.read_buf(&mut self.buffer).await, Ok(n) if n > 0)
    }

    async fn line(&mut self) -> Result<String, Vec<u8>> {
        loop {
            if let Some(pos) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buffer[..pos]).into_owned();
                self.buffer.drain(..pos + 2);
                return Ok(line);
            }
            if !self.fill().await {
                return Err(std::mem::take(&mut self.buffer));
            }
        }
    }

    async fn exact(&mut self, n: usize) -> Result<Vec<u8>, Vec<u8>> {
        while self.buffer.len() < n {
            if !self.fill().await {
                return Err(std::mem::take(&mut self.buffer));
            }
        }
        Ok(self.buffer.drain(..n).collect())
    }

    /// Parses the next response; `head_request` says it answers a HEAD (no body follows).
    pub async fn read_response(&mut self, head_request: bool) -> Result<RawResponse, Cut> {
        let cut = |status: Option<u16>, body: Vec<u8>, why: String| Cut { status, body, why };
        let status_line = self.line().await.map_err(|rest| {
            cut(
                None,
                rest.clone(),
                format!(
                    "connection ended before a status line; got {:?}",
                    String::from_utf8_lossy(&rest)
                ),
            )
        })?;
        let (version, rest) = status_line
            .split_once(' ')
            .ok_or_else(|| cut(None, Vec::new(), format!("bad status line {status_line:?}")))?;
        let status: u16 = rest
            .get(..3)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| cut(None, Vec::new(), format!("bad status line {status_line:?}")))?;
        let mut response = RawResponse {
            version: version.to_string(),
            status,
            headers: Vec::new(),
            body: Vec::new(),
            trailers: Vec::new(),
        };
        loop {
            let line = self
                .line()
                .await
                .map_err(|_| cut(Some(status), Vec::new(), "ended in the head".into()))?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| cut(Some(status), Vec::new(), format!("bad field {line:?}")))?;
            response
                .headers
                .push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
            return Ok(response);
        }
        if response.is_chunked() {
            loop {
                let size_line = self.line().await.map_err(|_| {
                    cut(
                        Some(status),
                        response.body.clone(),
                        "ended before a chunk size".into(),
                    )
                })?;
                let size = size_line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size, 16).map_err(|_| {
                    cut(
                        Some(status),
                        response.body.clone(),
                        format!("bad chunk size line {size_line:?}"),
                    )
                })?;
                if size == 0 {
                    loop {
                        let line = self.line().await.map_err(|_| {
                            cut(
                                Some(status),
                                response.body.clone(),
                                "ended in the trailers".into(),
                            )
                        })?;
                        if line.is_empty() {
                            return Ok(response);
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            response
                                .trailers
                                .push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
                        }
                    }
                }
                let data = self.exact(size + 2).await.map_err(|partial| {
                    let mut body = response.body.clone();
                    body.extend_from_slice(&partial);
                    cut(Some(status), body, "ended inside a chunk".into())
                })?;
                if !data.ends_with(b"\r\n") {
                    return Err(cut(
                        Some(status),
                        response.body.clone(),
                        "chunk not followed by CRLF".into(),
                    ));
                }
                response.body.extend_from_slice(&data[..size]);
            }
        }
        if let Some(length) = response.header("content-length") {
            let length: usize = length.parse().map_err(|_| {
                cut(
                    Some(status),
                    Vec::new(),
                    format!("bad content-length {length:?}"),
                )
            })?;
            response.body = self.exact(length).await.map_err(|partial| {
                let why = format!("ended after {} of {length} body bytes", partial.len());
                cut(Some(status), partial, why)
            })?;
            return Ok(response);
        }
        // Close-delimited.
        while self.fill().await {}
        response.body = std::mem::take(&mut self.buffer);
        Ok(response)
    }

    /// The next response to a request that is not a HEAD; `None` when the connection ended
    /// before it was complete. Panics when none comes within [`STEP`].
    pub async fn response(&mut self) -> Option<RawResponse> {
        within("a response", self.read_response(false)).await.ok()
    }

    /// The next complete response; panics when the connection ends first or none comes
    /// within [`STEP`].
    pub async fn complete_response(&mut self, head_request: bool) -> RawResponse {
        match within("a complete response", self.read_response(head_request)).await {
            Ok(response) => response,
            Err(cut) => panic!(
                "incomplete response: {} (status {:?}, {} body bytes: {:?})",
                cut.why,
                cut.status,
                cut.body.len(),
                String::from_utf8_lossy(&cut.body)
            ),
        }
    }

    /// Reads until the server closes; returns what arrived after the last parsed response.
    pub async fn until_closed(&mut self) -> Vec<u8> {
        within("the server to close the connection", async {
            while self.fill().await {}
        })
        .await;
        std::mem::take(&mut self.buffer)
    }

    /// What happens on the connection within `wait`: `"open"` (nothing), `"closed"` (EOF
    /// with nothing more) or `"data"` (unexpected bytes arrived).
    pub async fn state_after(&mut self, wait: Duration) -> &'static str {
        if !self.buffer.is_empty() {
            return "data";
        }
        match tokio::time::timeout(wait, self.fill()).await {
            Err(_) => "open",
            Ok(true) => "data",
            Ok(false) if self.buffer.is_empty() => "closed",
            Ok(false) => "data",
        }
    }
}

/// Where the end of a head (`\r\n\r\n`) is in `bytes`.
pub fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// Reads from `stream` into `buf` until `buf` holds a whole head; returns where the head ends,
/// `None` at EOF or on a read error.
pub async fn read_until_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = head_end(buf) {
            return Some(end);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(read) => buf.extend_from_slice(&chunk[..read]),
        }
    }
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
        let Some(end) = read_until_head(&mut stream, &mut buf).await else {
            return;
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
                    let Some(end) = read_until_head(&mut stream, &mut buf).await else {
                        return;
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
