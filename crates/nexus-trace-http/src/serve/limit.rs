//! A cap on concurrent event-stream clients, and why streams ended.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Why an event stream ended, as counted under `/__nexus/stats`
/// (`streams.ended.<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The client sent a WebSocket Close; it was answered.
    ClientClose,
    /// The connection went away without a close handshake (TCP closed or
    /// reset, an SSE client that left, a protocol error), or the stream was
    /// dropped by its server before it could end by itself.
    Disconnected,
    /// A write could not complete within the write bound (a client that
    /// stopped reading).
    WriteTimeout,
    /// The surface was shut down: WebSocket Close 1001, or the final SSE
    /// `shutdown` frame.
    Shutdown,
    /// The bus was closed (every `Bus` handle dropped) and the client had
    /// everything.
    SourceClosed,
}

impl EndReason {
    /// Every reason, in the order of the counters.
    pub const ALL: [EndReason; 5] = [
        EndReason::ClientClose,
        EndReason::Disconnected,
        EndReason::WriteTimeout,
        EndReason::Shutdown,
        EndReason::SourceClosed,
    ];

    /// The counter's name under `streams.ended` in `/__nexus/stats`.
    pub fn name(self) -> &'static str {
        match self {
            EndReason::ClientClose => "client_close",
            EndReason::Disconnected => "disconnected",
            EndReason::WriteTimeout => "write_timeout",
            EndReason::Shutdown => "shutdown",
            EndReason::SourceClosed => "source_closed",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counts live stream clients and refuses new ones past a maximum.
#[derive(Debug)]
pub struct StreamLimiter {
    max: usize,
    current: AtomicUsize,
    refused: AtomicU64,
    ended: [AtomicU64; EndReason::ALL.len()],
}

/// Held by a live stream; releasing or dropping it frees the place and
/// counts why the stream ended.
#[derive(Debug)]
pub struct StreamPermit(Option<Arc<StreamLimiter>>);

impl StreamLimiter {
    /// A limiter admitting at most `max` concurrent streams.
    pub fn new(max: usize) -> Arc<StreamLimiter> {
        Arc::new(StreamLimiter {
            max,
            current: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            ended: Default::default(),
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
            Some(StreamPermit(Some(self.clone())))
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

    /// Streams that ended so far for `reason`.
    pub fn ended(&self, reason: EndReason) -> u64 {
        // Relaxed: a statistic.
        self.ended[reason.index()].load(Ordering::Relaxed)
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }
}

impl StreamPermit {
    /// Frees the place, counting the stream as ended for `reason`.
    pub fn release(mut self, reason: EndReason) {
        self.end(reason);
    }

    fn end(&mut self, reason: EndReason) {
        if let Some(limiter) = self.0.take() {
            // Relaxed: statistics; nothing is published through them.
            limiter.ended[reason.index()].fetch_add(1, Ordering::Relaxed);
            limiter.current.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.end(EndReason::Disconnected);
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

    #[test]
    fn reasons_are_counted_once() {
        let l = StreamLimiter::new(4);
        l.try_acquire().unwrap().release(EndReason::WriteTimeout);
        l.try_acquire().unwrap().release(EndReason::ClientClose);
        drop(l.try_acquire().unwrap());
        assert_eq!(l.live(), 0);
        assert_eq!(l.ended(EndReason::WriteTimeout), 1);
        assert_eq!(l.ended(EndReason::ClientClose), 1);
        assert_eq!(l.ended(EndReason::Disconnected), 1, "a dropped permit");
        assert_eq!(l.ended(EndReason::Shutdown), 0);
        let names: Vec<_> = EndReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), 5);
    }
}
