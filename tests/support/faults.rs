//! A fault-injecting TCP relay: a real listener on `127.0.0.1:0` that forwards every
//! connection to one upstream and misbehaves on cue, at the TCP level, below any HTTP
//! library. Put between shadowtap and an upstream (the config names the relay's address),
//! it turns a healthy upstream into a slow, throttled, resetting, half-open or silent one,
//! and back, while shadowtap runs — the way networks and crashed peers fail in production.
//!
//! The fault is read on every chunk relayed, so a switch also reaches connections already
//! open (pooled ones included), and only a new connection sees a black hole.

use super::within;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// How the relay treats the bytes it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Relays every byte as it comes: a healthy path.
    Pass,
    /// Holds each chunk this long before passing it on, in both directions.
    Latency(Duration),
    /// Passes at most this many bytes per second in each direction (at least one).
    Bandwidth(u64),
    /// After this many bytes of the upstream's answer on a connection (counted from when
    /// the fault took effect), resets the connection to shadowtap (RST through `SO_LINGER` 0) and drops the upstream one: a
    /// peer that crashed mid-stream.
    ResetAfter(u64),
    /// Stops reading and answering on both sides but keeps every socket open: a peer whose
    /// process hangs or whose network path died silently.
    HalfOpen,
    /// New connections are accepted and held, never forwarded, read or answered (open ones
    /// stop as in [`Fault::HalfOpen`]): a load balancer with nothing behind it.
    BlackHole,
}

impl Fault {
    /// Whether bytes stop flowing under this fault.
    fn halts(self) -> bool {
        matches!(self, Fault::HalfOpen | Fault::BlackHole)
    }
}

/// What the relay has done so far.
#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    open: AtomicU64,
    to_upstream: AtomicU64,
    to_client: AtomicU64,
    resets: AtomicU64,
}

/// A running relay (see the module docs). Stops accepting and ends every connection it
/// holds when dropped.
pub struct FaultRelay {
    /// Where shadowtap connects.
    pub addr: SocketAddr,
    fault: watch::Sender<Fault>,
    counters: Arc<Counters>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

/// The two directions of a relayed connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// shadowtap to the upstream: the request.
    ToUpstream,
    /// The upstream to shadowtap: the answer (the one [`Fault::ResetAfter`] counts).
    ToClient,
}

/// How one direction of a connection ended.
enum End {
    /// Its source closed (or failed); its destination was shut down for writing.
    Closed,
    /// The relay reset the connection.
    Reset,
}

impl FaultRelay {
    /// Binds `127.0.0.1:0` and relays every connection to `upstream`, healthy at first.
    pub async fn start(upstream: SocketAddr) -> FaultRelay {
        let listener = within("fault relay bind", TcpListener::bind("127.0.0.1:0"))
            .await
            .expect("bind fault relay");
        let addr = listener.local_addr().expect("fault relay address");
        let (fault, _) = watch::channel(Fault::Pass);
        let counters = Arc::new(Counters::default());
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (faults, counted, spawned) = (fault.clone(), counters.clone(), tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                counted.connections.fetch_add(1, Ordering::SeqCst);
                counted.open.fetch_add(1, Ordering::SeqCst);
                let (faults, counted) = (faults.subscribe(), counted.clone());
                let connection = async move {
                    relay(client, upstream, faults, counted.clone()).await;
                    counted.open.fetch_sub(1, Ordering::SeqCst);
                };
                let handle = tokio::spawn(connection).abort_handle();
                let mut all = spawned.lock().expect("relay task lock");
                all.retain(|task| !task.is_finished());
                all.push(handle);
            }
        });
        tasks
            .lock()
            .expect("relay task lock")
            .push(accept.abort_handle());
        FaultRelay {
            addr,
            fault,
            counters,
            tasks,
        }
    }

    /// Switches the fault; it applies from the next chunk on every open connection.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// The fault now in force.
    pub fn fault(&self) -> Fault {
        *self.fault.borrow()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.counters.connections.load(Ordering::SeqCst)
    }

    /// Connections open now: accepted, and not yet closed on both sides (or reset).
    pub fn open(&self) -> u64 {
        self.counters.open.load(Ordering::SeqCst)
    }

    /// Bytes passed to the upstream so far.
    pub fn bytes_to_upstream(&self) -> u64 {
        self.counters.to_upstream.load(Ordering::SeqCst)
    }

    /// Bytes of answers passed back so far.
    pub fn bytes_to_client(&self) -> u64 {
        self.counters.to_client.load(Ordering::SeqCst)
    }

    /// Connections reset by [`Fault::ResetAfter`] so far.
    pub fn resets(&self) -> u64 {
        self.counters.resets.load(Ordering::SeqCst)
    }
}

impl Drop for FaultRelay {
    fn drop(&mut self) {
        for task in self.tasks.lock().expect("relay task lock").drain(..) {
            task.abort();
        }
    }
}

/// One relayed connection, until both directions end or the relay resets it.
async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    fault: watch::Receiver<Fault>,
    counters: Arc<Counters>,
) {
    if *fault.borrow() == Fault::BlackHole {
        // Hold the socket open, unread, for as long as the relay lives.
        let _held = client;
        return std::future::pending().await;
    }
    let Ok(upstream) = TcpStream::connect(upstream).await else {
        // The upstream refused: so does the relay (the client sees its connection close).
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let request = pump(
        client_read,
        upstream_write,
        Direction::ToUpstream,
        fault.clone(),
        counters.clone(),
    );
    let answer = pump(
        upstream_read,
        client_write,
        Direction::ToClient,
        fault.clone(),
        counters.clone(),
    );
    tokio::pin!(request, answer);
    // A reset ends the connection at once; a close in one direction lets the other finish.
    tokio::select! {
        end = &mut request => if let End::Closed = end { answer.await; },
        end = &mut answer => if let End::Closed = end { request.await; },
    }
}

/// Waits while the fault halts the flow; returns the fault in force once bytes may move.
/// A relay being dropped aborts this task, so a closed channel just keeps waiting.
async fn flowing(fault: &mut watch::Receiver<Fault>) -> Fault {
    loop {
        let now = *fault.borrow_and_update();
        if !now.halts() {
            return now;
        }
        if fault.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Relays one direction chunk by chunk, applying the fault in force to each chunk.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    direction: Direction,
    mut fault: watch::Receiver<Fault>,
    counters: Arc<Counters>,
) -> End {
    let mut buffer = vec![0u8; 16 * 1024];
    // Answer bytes passed under the fault in force (a new fault starts a new count).
    let (mut passed, mut counted_under) = (0u64, *fault.borrow());
    loop {
        let before_read = flowing(&mut fault).await;
        let limit = match before_read {
            // Small chunks, so the rate is kept within a twentieth of a second.
            Fault::Bandwidth(rate) => (rate / 20).clamp(1, buffer.len() as u64) as usize,
            _ => buffer.len(),
        };
        let read = match from.read(&mut buffer[..limit]).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return End::Closed;
            }
            Ok(read) => read,
        };
        // Bytes read while the fault switched to a halt are held until it lifts.
        let mut chunk = &buffer[..read];
        let now = flowing(&mut fault).await;
        if now != counted_under {
            (passed, counted_under) = (0, now);
        }
        match now {
            Fault::Latency(delay) => tokio::time::sleep(delay).await,
            Fault::Bandwidth(rate) => {
                let seconds = read as f64 / rate.max(1) as f64;
                tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
            }
            Fault::ResetAfter(after) if direction == Direction::ToClient => {
                let room = after.saturating_sub(passed);
                if (read as u64) > room {
                    chunk = &chunk[..room as usize];
                    if !chunk.is_empty() && to.write_all(chunk).await.is_ok() {
                        counters
                            .to_client
                            .fetch_add(chunk.len() as u64, Ordering::SeqCst);
                    }
                    reset(to);
                    counters.resets.fetch_add(1, Ordering::SeqCst);
                    return End::Reset;
                }
            }
            _ => {}
        }
        if to.write_all(chunk).await.is_err() {
            return End::Closed;
        }
        passed += chunk.len() as u64;
        let counter = match direction {
            Direction::ToUpstream => &counters.to_upstream,
            Direction::ToClient => &counters.to_client,
        };
        counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
    }
}

/// Closes the client side with an RST: `SO_LINGER` 0, and no FIN first (a write half
/// dropped normally would shut down the direction, which a peer reads as a clean end).
fn reset(to: OwnedWriteHalf) {
    let _ = socket2::SockRef::from(to.as_ref()).set_linger(Some(Duration::ZERO));
    to.forget();
}
