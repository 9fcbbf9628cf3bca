//! "No progress for this long" limits on poll-based IO: a client that sends no byte of its
//! body (`client_body_timeout`), or takes no byte of its response (`client_send_timeout`).
//!
//! Why its own type: such a limit is checked on every poll that has to wait, so it must cost
//! nothing when the IO is ready. The timer is made the first time a poll waits (a request
//! that never waits never allocates one) and is only re-armed after that, never re-made.

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Times how long an IO has been waiting without progress.
pub struct PauseTimer {
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl PauseTimer {
    /// A pause of `limit` is too long.
    pub fn new(limit: Duration) -> PauseTimer {
        PauseTimer {
            limit,
            timer: None,
            armed: false,
        }
    }

    /// The limit.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// The IO made progress: the next wait starts a new pause.
    pub fn progressed(&mut self) {
        self.armed = false;
    }

    /// The IO has to wait: `true` once this pause has lasted the limit. Otherwise the
    /// task is woken when it will have.
    pub fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = Instant::now() + self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.armed {
            timer.as_mut().reset(deadline);
            self.armed = true;
        }
        timer.as_mut().poll(cx).is_ready()
    }
}
