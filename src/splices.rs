//! The spliced (upgraded) connections of a running proxy, so shutdown can wait for them.
//!
//! Once a connection has switched protocols, hyper's connection task is over (HTTP/1.1) or
//! has handed the stream on (an HTTP/2 extended CONNECT): its bytes are carried by a
//! [`splice`](crate::splice) task of its own, which the listeners' drain does not see. Each
//! such task is spawned here instead, so that on shutdown it is given the same grace period
//! as in-flight requests (a WebSocket in the middle of a message carries on) and, still open
//! at the grace deadline, is closed: its task is aborted, which drops both sockets (the
//! kernel closes each, so both peers see the connection end).
//!
//! Why abort rather than a stop signal inside the splice: a signal would be looked at on
//! every wake-up of every spliced connection, for an event that comes once per process.

// Shutdown's path next to the data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::future::Future;
use std::sync::{Mutex, OnceLock, PoisonError};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The tasks of the open spliced connections, shared by every config generation.
#[derive(Default)]
pub struct Splices {
    /// Open ones, and ended ones not reaped yet.
    tasks: Mutex<JoinSet<()>>,
    /// The shutdown grace deadline, once shutdown has begun.
    deadline: OnceLock<Instant>,
}

impl Splices {
    /// Runs `splice` (a connection's splice, already supervised) as a task of its own, kept
    /// here until it ends. Called once per upgraded connection, so the lock and the reaping
    /// of ended tasks cost nothing on any request.
    pub fn spawn<F>(&self, splice: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        // Ended tasks are reaped here, so the set holds about as many as are open.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(splice);
    }

    /// Whether the shutdown grace deadline has passed: a spliced connection that fails now
    /// was cut by the shutdown (its HTTP/2 connection closed at the deadline, say), not by
    /// a peer.
    pub fn cut_off(&self) -> bool {
        self.deadline
            .get()
            .is_some_and(|deadline| Instant::now() >= *deadline)
    }

    /// Waits until every spliced connection has ended, or until `deadline`, then closes
    /// those still open (counted by their meters as `shutdown`) and logs how many there
    /// were. Call it again once no connection can switch any more: a connection that
    /// switched while it waited is waited for (to the same deadline) then.
    pub async fn drain(&self, deadline: Instant) {
        let _ = self.deadline.set(deadline);
        loop {
            let mut tasks = std::mem::take(&mut *self.lock());
            if tasks.is_empty() {
                return;
            }
            let ended = tokio::time::timeout_at(deadline, async {
                while tasks.join_next().await.is_some() {}
            })
            .await;
            if ended.is_err() {
                let mut late = std::mem::take(&mut *self.lock());
                tracing::warn!(
                    remaining = tasks.len() + late.len(),
                    "grace period over; closing upgraded connections"
                );
                tasks.shutdown().await;
                late.shutdown().await;
                return;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JoinSet<()>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// Sets its flag when dropped: the task that holds it ended, however it ended.
    struct Dropped(Arc<AtomicBool>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_ends_when_the_last_splice_does() {
        let splices = Splices::default();
        let ended = Arc::new(AtomicBool::new(false));
        let guard = Dropped(ended.clone());
        splices.spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(guard);
        });
        let started = Instant::now();
        splices.drain(started + Duration::from_secs(30)).await;
        assert!(ended.load(Ordering::SeqCst));
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        assert!(!splices.cut_off());
    }

    #[tokio::test(start_paused = true)]
    async fn splices_still_open_at_the_deadline_are_closed_then() {
        let splices = Splices::default();
        let ended = Arc::new(AtomicBool::new(false));
        let guard = Dropped(ended.clone());
        splices.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        let started = Instant::now();
        let deadline = started + Duration::from_secs(2);
        // One that switches while the drain waits is waited for and closed too.
        let late = Arc::new(AtomicBool::new(false));
        let late_guard = Dropped(late.clone());
        let drained = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            splices.spawn(async move {
                let _guard = late_guard;
                std::future::pending::<()>().await;
            });
        };
        tokio::join!(splices.drain(deadline), drained);
        assert!(ended.load(Ordering::SeqCst), "closed at the deadline");
        assert!(late.load(Ordering::SeqCst), "the late one too");
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert!(splices.cut_off());
    }

    #[tokio::test(start_paused = true)]
    async fn ended_splices_are_reaped_as_new_ones_start() {
        let splices = Splices::default();
        for _ in 0..100 {
            splices.spawn(async {});
            tokio::task::yield_now().await;
        }
        assert!(splices.lock().len() <= 2, "{}", splices.lock().len());
    }
}
