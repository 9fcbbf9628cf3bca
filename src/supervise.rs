//! Data-path tasks under supervision, so that a panic never passes unnoticed.
//!
//! The data path must not panic (no `unwrap`, no indexing that can fail: see
//! `docs/ARCHITECTURE.md`); this is what happens if it does anyway. A supervised task that
//! panics is caught at its edge: the panic's message is logged at ERROR with what the task
//! served (the listener and the client's address for a connection; the shadow's span for a
//! shadow request), and counted in `shadowtap_task_panics_total{task}`. Only that task ends,
//! as before; the panic can now be seen and alerted on.
//!
//! Why a wrapper and not the `JoinError` a `JoinSet` hands back: the error tells that a task
//! panicked, with the payload, but not which connection it served (that would need a map from
//! task id to peer, kept per connection), and shadow requests are spawned without a set. The
//! wrapper knows its context for the cost of a few words in the task, and nothing per poll
//! beyond a call through `catch_unwind`. The listener still counts a panic its set reports, in
//! case one escapes the wrapper.

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::connection::ConnectionInfo;
use crate::telemetry::metrics::Task;
use crate::telemetry::Metrics;
use pin_project_lite::pin_project;
use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pin_project! {
    /// A task's future whose panic is caught, logged and counted; it then ends as if
    /// finished (everything it held is dropped with it). `C` says what the task served.
    pub struct Supervised<F, C> {
        #[pin]
        inner: F,
        metrics: Arc<Metrics>,
        task: Task,
        context: C,
    }
}

/// What a supervised task served, for the log line of its panic.
pub trait Served {
    /// Logs a panic of a `task` task at ERROR.
    fn log_panic(&self, task: Task, message: &str);
}

/// A task whose span says what it served (a shadow request runs in its shadow's span).
impl Served for () {
    fn log_panic(&self, task: Task, message: &str) {
        tracing::error!(
            task = task.as_str(),
            panic = message,
            "task panicked; it ended, the process goes on"
        );
    }
}

/// A client connection: the listener it came on and the client's address, from the
/// connection's own [`ConnectionInfo`] (shared, so the task carries a pointer, not them).
impl Served for Arc<ConnectionInfo> {
    fn log_panic(&self, task: Task, message: &str) {
        let listener = self.listener.map(tracing::field::display);
        tracing::error!(
            task = task.as_str(),
            listener,
            peer = %self.peer,
            panic = message,
            "task panicked; it ended, the process goes on"
        );
    }
}

/// A listener, when which of its connections panicked is not known.
#[derive(Debug, Clone, Copy)]
pub struct Listener(pub Option<SocketAddr>);

impl Served for Listener {
    fn log_panic(&self, task: Task, message: &str) {
        let listener = self.0.map(tracing::field::display);
        tracing::error!(
            task = task.as_str(),
            listener,
            panic = message,
            "task panicked; it ended, the process goes on"
        );
    }
}

/// Supervises a client connection's task (`task="connection"`).
pub fn connection<F>(
    inner: F,
    metrics: Arc<Metrics>,
    info: Arc<ConnectionInfo>,
) -> Supervised<F, Arc<ConnectionInfo>>
where
    F: Future<Output = ()>,
{
    supervised(inner, metrics, Task::Connection, info)
}

/// Supervises a task of kind `task` that served `context`.
pub fn supervised<F, C>(inner: F, metrics: Arc<Metrics>, task: Task, context: C) -> Supervised<F, C>
where
    F: Future<Output = ()>,
    C: Served,
{
    Supervised {
        inner,
        metrics,
        task,
        context,
    }
}

/// Supervises a task of `task`'s kind that serves no client connection (a shadow request);
/// its context is the span it runs in. It carries no more than the metrics handle, so the
/// spawned future stays small.
pub fn task<F>(inner: F, metrics: Arc<Metrics>, task: Task) -> Supervised<F, ()>
where
    F: Future<Output = ()>,
{
    Supervised {
        inner,
        metrics,
        task,
        context: (),
    }
}

impl<F: Future<Output = ()>, C: Served> Future for Supervised<F, C> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let inner = this.inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(polled) => polled,
            Err(payload) => {
                report(this.metrics, *this.task, this.context, &*payload);
                Poll::Ready(())
            }
        }
    }
}

/// Logs and counts one panic of a `task` task that served `context`.
pub fn report(metrics: &Metrics, task: Task, context: &impl Served, payload: &(dyn Any + Send)) {
    metrics.record_task_panic(task);
    context.log_panic(task, panic_message(payload));
}

/// The message of a panic (`panic!` with a literal or a formatted message), or a placeholder.
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        message
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message
    } else {
        "(a panic without a message)"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn count(metrics: &Metrics, task: &str) -> Option<f64> {
        let series = format!("shadowtap_task_panics_total{{task=\"{task}\"}} ");
        metrics
            .render()
            .lines()
            .find_map(|line| line.strip_prefix(series.as_str())?.parse().ok())
    }

    /// The same supervisor the listener and the shadow dispatcher spawn with, around a
    /// future that panics: the task ends normally (its set sees no panic), the process
    /// goes on, and the panic shows in the rendered `/metrics` under its task.
    #[tokio::test]
    async fn a_panicking_task_is_counted_and_ends() {
        let metrics = Arc::new(Metrics::new(&[], &[]));
        assert_eq!(count(&metrics, "connection"), Some(0.0), "exported at 0");
        let listener: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let mut set = tokio::task::JoinSet::new();
        let slice: Vec<u8> = Vec::new();
        set.spawn(supervised(
            async move {
                tokio::task::yield_now().await;
                // An out-of-range index, as the class this supervisor is the last net for.
                let at = std::hint::black_box(83);
                let _ = std::hint::black_box(&slice[at..]);
            },
            metrics.clone(),
            Task::Connection,
            Listener(Some(listener)),
        ));
        set.spawn(task(
            async { panic!("shadow {}", "boom") },
            metrics.clone(),
            Task::Shadow,
        ));
        while let Some(joined) = set.join_next().await {
            assert!(joined.is_ok(), "the panic did not escape the supervisor");
        }
        assert_eq!(count(&metrics, "connection"), Some(1.0));
        assert_eq!(count(&metrics, "shadow"), Some(1.0));
        assert_eq!(count(&metrics, "compare"), Some(0.0));
    }

    #[test]
    fn panic_messages_are_read_from_both_payload_kinds() {
        let literal = std::panic::catch_unwind(|| panic!("literal")).unwrap_err();
        assert_eq!(panic_message(&*literal), "literal");
        let formatted = std::panic::catch_unwind(|| panic!("index {}", 83)).unwrap_err();
        assert_eq!(panic_message(&*formatted), "index 83");
    }
}
