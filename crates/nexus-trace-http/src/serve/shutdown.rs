//! Graceful shutdown of the event streams of one `/__nexus` surface.
//!
//! Open event streams never end by themselves, so a server's graceful
//! shutdown (axum's `with_graceful_shutdown`, actix-web's `shutdown_signal`)
//! would wait for them forever, or drop them without a goodbye. A
//! [`Shutdown`] handle ends them properly: once [`trigger`](Shutdown::trigger)ed,
//! every WebSocket stream sends Close 1001 ("going away") and waits briefly
//! for the client's answer, every SSE stream writes a final `shutdown` frame
//! and ends its body, and new stream requests get 503.
//! [`closed`](Shutdown::closed) resolves when the last stream has ended.
//! [`after`](Shutdown::after) chains both behind a signal, in the shape the
//! frameworks' graceful-shutdown hooks take.

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// The shutdown switch of one `/__nexus` surface (cheap to clone; clones
/// share the switch). Get it from the routes' `shutdown_handle()`.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    triggered: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_key: u64,
    /// One entry per live stream: the waker to call on trigger, once polled.
    listeners: HashMap<u64, Option<Waker>>,
    /// Tasks waiting in `closed()`.
    drain_waiters: Vec<Waker>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave `State` inconsistent
        // (every update is a single insert, remove or push), so carry on.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Shutdown {
    /// A switch that has not been triggered.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Ends every open stream (WebSocket Close 1001, SSE `shutdown` frame)
    /// and refuses new ones with 503. Idempotent; returns at once.
    pub fn trigger(&self) {
        // Release: pairs with the Acquire loads in `poll_triggered`; the
        // wake-ups below are ordered by the mutex, not by this store.
        self.inner.triggered.store(true, Ordering::Release);
        let wakers: Vec<Waker> = {
            let mut state = self.inner.lock();
            let mut wakers: Vec<Waker> = state
                .listeners
                .values_mut()
                .filter_map(Option::take)
                .collect();
            if state.listeners.is_empty() {
                wakers.append(&mut state.drain_waiters);
            }
            wakers
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Has [`trigger`](Self::trigger) been called?
    pub fn is_triggered(&self) -> bool {
        // Acquire: a caller that sees the switch set also sees what the
        // triggering thread did before (nothing depends on it today).
        self.inner.triggered.load(Ordering::Acquire)
    }

    /// Resolves once the switch is triggered and every stream that was open
    /// has ended. Each stream ends within the write bound after the trigger
    /// (its goodbye is a write), plus at most that bound again (capped at
    /// 2 s) waiting for a WebSocket client's Close answer.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let inner = self.inner.clone();
        poll_fn(move |cx: &mut Context<'_>| {
            let mut state = inner.lock();
            // Acquire: see `trigger`.
            if inner.triggered.load(Ordering::Acquire) && state.listeners.is_empty() {
                return Poll::Ready(());
            }
            if !state.drain_waiters.iter().any(|w| w.will_wake(cx.waker())) {
                state.drain_waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
    }

    /// Waits for `signal`, then triggers and waits until every stream has
    /// ended: pass it to the server's graceful-shutdown hook.
    ///
    /// ```ignore
    /// // axum (actix-web: `HttpServer::shutdown_signal(stop.after(...))`)
    /// let stop = routes.shutdown_handle();
    /// axum::serve(listener, app)
    ///     .with_graceful_shutdown(stop.after(async {
    ///         tokio::signal::ctrl_c().await.ok();
    ///     }))
    ///     .await?;
    /// ```
    pub fn after<F>(&self, signal: F) -> impl Future<Output = ()> + Send + 'static
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let this = self.clone();
        async move {
            signal.await;
            this.trigger();
            this.closed().await;
        }
    }

    /// A listener for one stream; the stream counts as open until the
    /// listener is dropped.
    pub fn listener(&self) -> ShutdownListener {
        let mut state = self.inner.lock();
        let key = state.next_key;
        state.next_key += 1;
        state.listeners.insert(key, None);
        ShutdownListener {
            inner: self.inner.clone(),
            key,
            registered: None,
        }
    }
}

/// One stream's view of the [`Shutdown`] switch.
#[derive(Debug)]
pub struct ShutdownListener {
    inner: Arc<Inner>,
    key: u64,
    /// The waker last stored in the shared map, to skip the lock while the
    /// task's waker does not change.
    registered: Option<Waker>,
}

impl ShutdownListener {
    /// Ready once the switch is triggered; otherwise the task is woken by
    /// the trigger.
    pub fn poll_triggered(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // Acquire: see `Shutdown::trigger`.
        if self.inner.triggered.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        if !self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            let waker = cx.waker().clone();
            self.inner
                .lock()
                .listeners
                .insert(self.key, Some(waker.clone()));
            self.registered = Some(waker);
            // A trigger that ran between the load above and the insert took
            // the lock after setting the flag: this load sees it.
            if self.inner.triggered.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    }
}

impl Drop for ShutdownListener {
    fn drop(&mut self) {
        let wakers = {
            let mut state = self.inner.lock();
            state.listeners.remove(&self.key);
            // Acquire: see `Shutdown::trigger`.
            if state.listeners.is_empty() && self.inner.triggered.load(Ordering::Acquire) {
                std::mem::take(&mut state.drain_waiters)
            } else {
                Vec::new()
            }
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn trigger_wakes_listeners_and_closed_waits_for_them() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let s = Shutdown::new();
        let mut a = s.listener();
        let b = s.listener();
        assert!(a.poll_triggered(&mut cx).is_pending());
        let mut closed = pin!(s.closed());
        assert!(closed.as_mut().poll(&mut cx).is_pending(), "not triggered");
        s.trigger();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "a was woken");
        assert!(a.poll_triggered(&mut cx).is_ready());
        assert!(closed.as_mut().poll(&mut cx).is_pending(), "streams open");
        drop(a);
        drop(b);
        assert!(
            count.0.load(Ordering::SeqCst) >= 2,
            "the drain waiter woken"
        );
        assert!(closed.as_mut().poll(&mut cx).is_ready());
        assert!(s.is_triggered());
        let mut late = s.listener();
        assert!(late.poll_triggered(&mut cx).is_ready());
    }

    #[test]
    fn closed_with_no_streams_resolves_on_trigger() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let s = Shutdown::new();
        let mut closed = pin!(s.after(async {}));
        assert!(closed.as_mut().poll(&mut cx).is_ready());
        assert!(s.is_triggered());
    }
}
