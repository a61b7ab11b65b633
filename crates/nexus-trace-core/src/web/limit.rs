//! A cap on concurrent event-stream clients.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Counts live stream clients and refuses new ones past a maximum.
#[derive(Debug)]
pub struct StreamLimiter {
    max: usize,
    current: AtomicUsize,
    refused: AtomicU64,
}

/// Held by a live stream; dropping it frees the place.
#[derive(Debug)]
pub struct StreamPermit(Arc<StreamLimiter>);

impl StreamLimiter {
    /// A limiter admitting at most `max` concurrent streams.
    pub fn new(max: usize) -> Arc<StreamLimiter> {
        Arc::new(StreamLimiter {
            max,
            current: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// Takes a place, or `None` when `max` streams are live (answer 429).
    pub fn try_acquire(self: &Arc<Self>) -> Option<StreamPermit> {
        // Relaxed: a counter; no data is published through it.
        let admitted = self
            .current
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        if admitted {
            Some(StreamPermit(self.clone()))
        } else {
            // Relaxed: a statistic.
            self.refused.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// Live streams now.
    pub fn live(&self) -> usize {
        // Relaxed: a statistic.
        self.current.load(Ordering::Relaxed)
    }

    /// Streams refused so far because the cap was reached.
    pub fn refused(&self) -> u64 {
        // Relaxed: a statistic.
        self.refused.load(Ordering::Relaxed)
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        // Relaxed: a counter.
        self.0.current.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_and_release() {
        let l = StreamLimiter::new(2);
        let a = l.try_acquire().unwrap();
        let _b = l.try_acquire().unwrap();
        assert!(l.try_acquire().is_none());
        assert_eq!((l.live(), l.refused()), (2, 1));
        drop(a);
        assert!(l.try_acquire().is_some());
    }
}
