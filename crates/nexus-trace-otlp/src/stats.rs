//! The exporter's counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Spans that were not exported, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DroppedSpans {
    /// In batches whose export failed (after the retries, or not retryable).
    pub export_failed: u64,
    /// Reported as rejected by the collector (an OTLP partial success).
    pub rejected: u64,
    /// In batches dropped because the sender was still busy with earlier
    /// ones (see `max_queued_batches`).
    pub queue_full: u64,
    /// Not sent when [`shutdown`](crate::ExporterHandle::shutdown) ran out
    /// of time, or open requests (started, never ended) at shutdown.
    pub shutdown: u64,
    /// Events whose trace or span id is not valid W3C hex.
    pub invalid_ids: u64,
}

impl DroppedSpans {
    /// All dropped spans.
    pub fn total(&self) -> u64 {
        self.export_failed
            .saturating_add(self.rejected)
            .saturating_add(self.queue_full)
            .saturating_add(self.shutdown)
            .saturating_add(self.invalid_ids)
    }
}

/// A snapshot of an exporter's counters. All are monotonic.
///
/// Spans lost because the exporter fell behind the bus are not known as
/// spans: they show up as [`events_lagged`](Stats::events_lagged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Bus events read.
    pub events_received: u64,
    /// Bus events the exporter missed because it fell more than the ring's
    /// capacity behind (`Lagged(n)`); their spans are lost.
    pub events_lagged: u64,
    /// Spans the collector accepted.
    pub spans_exported: u64,
    /// Spans not exported, by reason.
    pub dropped: DroppedSpans,
    /// Export requests that succeeded.
    pub batches_exported: u64,
    /// Export requests that failed (their spans are in
    /// [`DroppedSpans::export_failed`]).
    pub batches_failed: u64,
    /// Retried export attempts.
    pub retries: u64,
    /// Open requests forgotten to stay within `max_pending`.
    pub pending_evicted: u64,
    /// Log events of a trace that found no open request span to attach to.
    pub logs_unattached: u64,
}

impl Stats {
    /// All dropped spans ([`DroppedSpans::total`]).
    pub fn spans_dropped(&self) -> u64 {
        self.dropped.total()
    }
}

/// The live counters, shared by the exporter's tasks and its handle.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) events_received: AtomicU64,
    pub(crate) events_lagged: AtomicU64,
    pub(crate) spans_exported: AtomicU64,
    pub(crate) export_failed: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) queue_full: AtomicU64,
    pub(crate) shutdown: AtomicU64,
    pub(crate) invalid_ids: AtomicU64,
    pub(crate) batches_exported: AtomicU64,
    pub(crate) batches_failed: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) pending_evicted: AtomicU64,
    pub(crate) logs_unattached: AtomicU64,
    /// Spans handed to the sender and not yet resolved (exported, failed).
    pub(crate) queued: AtomicU64,
    pub(crate) last_error: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        if n != 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            events_received: get(&self.events_received),
            events_lagged: get(&self.events_lagged),
            spans_exported: get(&self.spans_exported),
            dropped: DroppedSpans {
                export_failed: get(&self.export_failed),
                rejected: get(&self.rejected),
                queue_full: get(&self.queue_full),
                shutdown: get(&self.shutdown),
                invalid_ids: get(&self.invalid_ids),
            },
            batches_exported: get(&self.batches_exported),
            batches_failed: get(&self.batches_failed),
            retries: get(&self.retries),
            pending_evicted: get(&self.pending_evicted),
            logs_unattached: get(&self.logs_unattached),
        }
    }

    pub(crate) fn set_error(&self, error: String) {
        let mut slot = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some(error);
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
