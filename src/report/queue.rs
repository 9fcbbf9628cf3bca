//! The hand-off from shadow tasks to the comparison workers: bounded, never blocking the
//! sender, and batched.
//!
//! A channel that wakes a sleeping worker for every item costs a futex wake and two context
//! switches per mirrored request — on a one-core proxy that was most of mirroring's system
//! time (see docs/PERFORMANCE.md, "What bought what", c3fcea7). Here a push only wakes a
//! worker when the queue fills past a high-water mark (so bursts are not dropped) or on close;
//! otherwise the workers drain what has gathered every [`PairQueue::tick`]. Comparison
//! results are asynchronous anyway, so they arrive at most one tick later.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Why a push was refused; the item is handed back.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused<T> {
    /// The queue holds `capacity` items.
    Full(T),
    /// The queue was closed (shutdown).
    Closed(T),
}

struct Inner<T> {
    items: VecDeque<T>,
    closed: bool,
}

/// A bounded multi-producer, multi-consumer queue whose consumers wake on a tick.
pub struct PairQueue<T> {
    inner: Mutex<Inner<T>>,
    ready: Condvar,
    capacity: usize,
    wake_at: usize,
    tick: Duration,
}

impl<T> PairQueue<T> {
    /// A queue of at most `capacity` items whose consumers look every `tick`.
    pub fn new(capacity: usize, tick: Duration) -> PairQueue<T> {
        let capacity = capacity.max(1);
        PairQueue {
            inner: Mutex::new(Inner {
                items: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
            capacity,
            // A quarter full: early enough that a burst never reaches the cap while the
            // workers sleep out their tick, late enough that steady traffic never wakes them.
            wake_at: (capacity / 4).max(1),
            tick,
        }
    }

    /// How long consumers sleep between looks when nobody wakes them.
    pub fn tick(&self) -> Duration {
        self.tick
    }

    /// Queues `item` without waiting.
    pub fn push(&self, item: T) -> Result<(), Refused<T>> {
        let Ok(mut inner) = self.inner.lock() else {
            return Err(Refused::Closed(item));
        };
        if inner.closed {
            return Err(Refused::Closed(item));
        }
        if inner.items.len() >= self.capacity {
            return Err(Refused::Full(item));
        }
        inner.items.push_back(item);
        let wake = inner.items.len() == self.wake_at;
        drop(inner);
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Refuses further pushes; consumers drain what is queued, then see the end.
    pub fn close(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.closed = true;
        }
        self.ready.notify_all();
    }

    /// Moves up to `max` items into `batch`, waiting (tick by tick) until there is at least
    /// one. Returns `false` once the queue is closed and empty: the consumer should exit.
    pub fn pop_batch(&self, batch: &mut Vec<T>, max: usize) -> bool {
        let Ok(mut inner) = self.inner.lock() else {
            return false;
        };
        loop {
            if !inner.items.is_empty() {
                let take = inner.items.len().min(max.max(1));
                batch.extend(inner.items.drain(..take));
                return true;
            }
            if inner.closed {
                return false;
            }
            inner = match self.ready.wait_timeout(inner, self.tick) {
                Ok((inner, _)) => inner,
                Err(_) => return false,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn refuses_past_capacity_and_after_close() {
        let queue = PairQueue::new(2, Duration::from_millis(5));
        assert_eq!(queue.push(1), Ok(()));
        assert_eq!(queue.push(2), Ok(()));
        assert_eq!(queue.push(3), Err(Refused::Full(3)));
        queue.close();
        assert_eq!(queue.push(4), Err(Refused::Closed(4)));
        // What was queued before the close is still delivered, then the end.
        let mut batch = Vec::new();
        assert!(queue.pop_batch(&mut batch, 10));
        assert_eq!(batch, vec![1, 2]);
        assert!(!queue.pop_batch(&mut batch, 10));
    }

    #[test]
    fn a_sleeping_consumer_gets_an_item_within_a_tick_without_a_wake() {
        let queue = Arc::new(PairQueue::new(1000, Duration::from_millis(20)));
        let consumer = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                let mut batch = Vec::new();
                let ok = queue.pop_batch(&mut batch, 10);
                (ok, batch, Instant::now())
            })
        };
        std::thread::sleep(Duration::from_millis(30));
        let pushed = Instant::now();
        queue.push(7).unwrap_or_else(|_| panic!("refused"));
        let (ok, batch, got) = consumer
            .join()
            .unwrap_or_else(|_| panic!("consumer panicked"));
        assert!(ok);
        assert_eq!(batch, vec![7]);
        // Generous: one tick plus scheduling slack on a loaded box.
        assert!(got.duration_since(pushed) < Duration::from_secs(2));
    }

    #[test]
    fn batches_are_capped() {
        let queue = PairQueue::new(100, Duration::from_millis(5));
        for i in 0..10 {
            assert_eq!(queue.push(i), Ok(()));
        }
        let mut batch = Vec::new();
        assert!(queue.pop_batch(&mut batch, 4));
        assert_eq!(batch, vec![0, 1, 2, 3]);
    }
}
