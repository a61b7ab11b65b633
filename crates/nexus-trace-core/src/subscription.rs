//! One subscriber's cursor over the ring.

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
#[cfg(not(nexus_loom))]
use std::time::{Duration, Instant};

use crate::event::Event;
use crate::registry::Handle;
use crate::ring::{BatchEnd, Read, Ring};
use crate::sync::{fence, mutated, Arc, Ordering};

/// Why [`Subscription::try_recv`] returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// The next event has not been published yet.
    Empty,
    /// The subscriber fell behind: this many events (with consecutive ids
    /// starting at the cursor) were overwritten before it read them. The
    /// cursor has moved past them, to the oldest event still retained; the
    /// next call returns that event.
    Lagged(u64),
    /// Every [`Bus`](crate::Bus) handle is gone and every retained event
    /// after the cursor has been delivered.
    Closed,
}

/// Why [`Subscription::recv`] returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// As [`TryRecvError::Lagged`]: this many events were skipped and the
    /// cursor now points at the oldest retained one.
    Lagged(u64),
    /// As [`TryRecvError::Closed`].
    Closed,
}

/// Why [`Subscription::recv_timeout`] returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvTimeoutError {
    /// No event arrived before the timeout.
    Timeout,
    /// As [`TryRecvError::Lagged`].
    Lagged(u64),
    /// As [`TryRecvError::Closed`].
    Closed,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("no event available yet"),
            TryRecvError::Lagged(n) => write!(f, "subscriber lagged: {n} events skipped"),
            TryRecvError::Closed => f.write_str("bus closed"),
        }
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Lagged(n) => write!(f, "subscriber lagged: {n} events skipped"),
            RecvError::Closed => f.write_str("bus closed"),
        }
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("timed out waiting for an event"),
            RecvTimeoutError::Lagged(n) => write!(f, "subscriber lagged: {n} events skipped"),
            RecvTimeoutError::Closed => f.write_str("bus closed"),
        }
    }
}

impl std::error::Error for TryRecvError {}
impl std::error::Error for RecvError {}
impl std::error::Error for RecvTimeoutError {}

/// A subscriber's cursor into a [`Bus`](crate::Bus).
///
/// Items come in id order. Every id after the subscription point is either
/// delivered exactly once or counted in exactly one `Lagged(n)`. The memory a
/// subscription holds is constant: it reads the shared ring in place.
/// Dropping it unsubscribes.
///
/// As a [`Stream`](futures_core::Stream) it yields `Ok(event)` or
/// `Err(RecvError::Lagged(n))` and ends when the bus is closed.
pub struct Subscription {
    ring: std::sync::Arc<Ring>,
    handle: Handle,
    /// The next id to deliver.
    cursor: u64,
    /// Total events this subscription was told it skipped.
    lagged: u64,
    /// Wakes the thread blocked in `recv_timeout`; made on first use and
    /// remade when the subscription has moved to another thread.
    #[cfg(not(nexus_loom))]
    thread_waker: Option<(std::thread::ThreadId, Waker)>,
}

impl Subscription {
    pub(crate) fn new(ring: std::sync::Arc<Ring>, since_id: u64) -> Subscription {
        // Register first, then read the head: a publish racing with us either
        // has an id <= the head we read (delivered from the ring) or a later
        // one (delivered too). The registry entry only matters for wake-ups,
        // and the sleeping handshake covers those.
        let handle = ring.registry.acquire();
        let cursor = since_id.min(ring.head()) + 1;
        Subscription {
            ring,
            handle,
            cursor,
            lagged: 0,
            #[cfg(not(nexus_loom))]
            thread_waker: None,
        }
    }

    /// The id of the next event this subscription will deliver.
    pub fn next_id(&self) -> u64 {
        self.cursor
    }

    /// How many events this subscription has been told it skipped in total.
    pub fn lagged_total(&self) -> u64 {
        self.lagged
    }

    /// Takes the next event if it is available, without waiting.
    pub fn try_recv(&mut self) -> Result<Arc<Event>, TryRecvError> {
        match self.read() {
            Err(TryRecvError::Empty) if self.ring.is_closed() => {
                // Every publish happened before the close we just saw, so
                // one more read is conclusive.
                match self.read() {
                    Err(TryRecvError::Empty) => Err(TryRecvError::Closed),
                    other => other,
                }
            }
            other => other,
        }
    }

    fn read(&mut self) -> Result<Arc<Event>, TryRecvError> {
        match self.ring.try_read(self.cursor) {
            Read::Event(event) => {
                self.cursor += 1;
                Ok(event)
            }
            Read::Lagged { next } => Err(self.skip_to(next)),
            Read::Empty => Err(TryRecvError::Empty),
        }
    }

    /// Moves the cursor past ids that are gone and counts them.
    fn skip_to(&mut self, next: u64) -> TryRecvError {
        let n = next - self.cursor;
        self.cursor = next;
        self.lagged += n;
        TryRecvError::Lagged(n)
    }

    /// Takes up to `max` events that are available now and appends them to
    /// `out`, in id order: a backlog replay or a burst in one call.
    ///
    /// Returns how many it appended (at least one, unless `max` is 0), or
    /// what [`try_recv`](Self::try_recv) would have returned for the first
    /// item. A lag met after some events stops the batch there; the next
    /// call reports it. The whole batch is protected at once instead of
    /// event by event, so it costs about one count increment per event.
    pub fn try_recv_many(
        &mut self,
        out: &mut Vec<Arc<Event>>,
        max: usize,
    ) -> Result<usize, TryRecvError> {
        if max == 0 {
            return Ok(0);
        }
        let before = out.len();
        let (next, end) = self.ring.try_read_many(self.cursor, max, out);
        let taken = out.len() - before;
        self.cursor = next;
        if taken > 0 {
            return Ok(taken);
        }
        match end {
            BatchEnd::Lagged { next } => Err(self.skip_to(next)),
            // Nothing available: the one-event path decides between Empty
            // and Closed (and catches a publish that raced us).
            BatchEnd::Empty | BatchEnd::Full => self.try_recv().map(|event| {
                out.push(event);
                1
            }),
        }
    }

    /// Polls for the next event, registering `cx`'s waker when none is ready.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Arc<Event>, RecvError>> {
        self.poll_with(cx.waker())
    }

    fn poll_with(&mut self, waker: &Waker) -> Poll<Result<Arc<Event>, RecvError>> {
        match self.try_recv() {
            Ok(event) => return Poll::Ready(Ok(event)),
            Err(TryRecvError::Lagged(n)) => return Poll::Ready(Err(RecvError::Lagged(n))),
            Err(TryRecvError::Closed) => return Poll::Ready(Err(RecvError::Closed)),
            Err(TryRecvError::Empty) => {}
        }
        self.sleep_on(waker);
        match self.try_recv() {
            Err(TryRecvError::Empty) => Poll::Pending,
            ready => {
                let chunk = self.ring.registry.chunk(self.handle);
                // Relaxed: a stale bit only costs a spurious wake.
                chunk
                    .sleeping
                    .fetch_and(!self.handle.bit(), Ordering::Relaxed);
                Poll::Ready(ready.map_err(|e| match e {
                    TryRecvError::Lagged(n) => RecvError::Lagged(n),
                    _ => RecvError::Closed,
                }))
            }
        }
    }

    /// The subscriber half of the wake handshake, up to the re-check.
    fn sleep_on(&self, waker: &Waker) {
        let chunk = self.ring.registry.chunk(self.handle);
        chunk.entries[self.handle.index()].waker.register(waker);
        // Release: our waker registration happens before the producer's
        // Acquire swap of the sleeping word.
        chunk
            .sleeping
            .fetch_or(self.handle.bit(), Ordering::Release);
        if !mutated!(NoSleepFence) {
            // SeqCst: the subscriber half of the wake handshake (ring.rs).
            fence(Ordering::SeqCst);
        }
    }

    /// Waits for the next event.
    ///
    /// Cancel-safe: dropping the future loses nothing; the cursor only moves
    /// when an item is returned.
    pub async fn recv(&mut self) -> Result<Arc<Event>, RecvError> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Blocks the current thread until an event arrives or `timeout` passes.
    #[cfg(not(nexus_loom))]
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Arc<Event>, RecvTimeoutError> {
        let deadline = Instant::now().checked_add(timeout);
        let me = std::thread::current();
        let waker = match &self.thread_waker {
            Some((id, waker)) if *id == me.id() => waker.clone(),
            _ => {
                // A waker made on another thread would unpark that thread.
                let waker = Waker::from(std::sync::Arc::new(ThreadWaker(me.clone())));
                self.thread_waker = Some((me.id(), waker.clone()));
                waker
            }
        };
        loop {
            match self.poll_with(&waker) {
                Poll::Ready(Ok(event)) => return Ok(event),
                Poll::Ready(Err(RecvError::Lagged(n))) => return Err(RecvTimeoutError::Lagged(n)),
                Poll::Ready(Err(RecvError::Closed)) => return Err(RecvTimeoutError::Closed),
                Poll::Pending => {}
            }
            match deadline {
                None => std::thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(RecvTimeoutError::Timeout);
                    }
                    std::thread::park_timeout(deadline - now);
                }
            }
        }
    }
}

#[cfg(not(nexus_loom))]
struct ThreadWaker(std::thread::Thread);

#[cfg(not(nexus_loom))]
impl std::task::Wake for ThreadWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

impl futures_core::Stream for Subscription {
    type Item = Result<Arc<Event>, RecvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut().poll_recv(cx) {
            Poll::Ready(Err(RecvError::Closed)) => Poll::Ready(None),
            Poll::Ready(item) => Poll::Ready(Some(item)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // No reservation outlives a read, so the entry can go back.
        self.ring.registry.release(self.handle);
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("next_id", &self.cursor)
            .field("lagged_total", &self.lagged)
            .finish_non_exhaustive()
    }
}
