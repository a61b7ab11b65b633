//! Request context that follows a request's future, with no runtime needed.
//!
//! An adapter wraps each request's future in [`scope`]; while that future (or
//! anything it awaits) runs, [`current`] returns the request's
//! [`TraceContext`], so deep code can [`record`] a downstream call without
//! threading parameters through:
//!
//! ```
//! use std::time::Instant;
//! use nexus_trace_core::{context, Bus, Span, TraceContext};
//!
//! fn load_user() -> Result<&'static str, std::io::Error> {
//!     let start = Instant::now();
//!     let result = Ok("ada"); // a real query here
//!     context::record_result("db.users.get", start, &result);
//!     result
//! }
//!
//! let bus = Bus::new(64);
//! let mut sub = bus.subscribe(0);
//! let ctx = TraceContext::new(bus.clone(), Span::new("users", "GET /users/{id}"));
//! futures::executor::block_on(context::scope(ctx, async { load_user() })).unwrap();
//! let event = sub.try_recv().unwrap();
//! assert_eq!(event.message, "db.users.get");
//! ```
//!
//! Spawned tasks do not inherit the context by themselves (no runtime can be
//! assumed); hand it over with [`propagate`] or [`TraceContext::scope`].

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::{Instant, SystemTime};

use crate::bus::Bus;
use crate::event::{Event, EventKind as Kind, Text};
use crate::traceparent::{SpanId, TraceId, TraceParent};

/// The server-side span of one request: who it is and when it started.
#[derive(Clone, Debug)]
pub struct Span {
    /// W3C trace id, continued from an incoming `traceparent` or fresh.
    pub trace_id: TraceId,
    /// This request's own span id.
    pub span_id: SpanId,
    /// The caller's span id from an incoming `traceparent`, if any.
    pub parent_id: Option<SpanId>,
    /// The service name events are attributed to.
    pub service: Text,
    /// The endpoint (route template), e.g. `GET /users/{id}`.
    pub endpoint: Text,
    /// When the request started (monotonic, for durations).
    pub start: Instant,
    /// When the request started (wall clock, for timestamps).
    pub started_at: SystemTime,
}

impl Span {
    /// A new root span with fresh ids, starting now.
    pub fn new(service: impl Into<Text>, endpoint: impl Into<Text>) -> Span {
        Span {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            parent_id: None,
            service: service.into(),
            endpoint: endpoint.into(),
            start: Instant::now(),
            started_at: SystemTime::now(),
        }
    }

    /// Continues the caller's trace: same trace id, the caller's span as parent.
    pub fn with_parent(mut self, parent: &TraceParent) -> Span {
        self.trace_id = parent.trace_id;
        self.parent_id = Some(parent.parent_id);
        self
    }

    /// An event of `kind` carrying this span's trace id, span id, parent id,
    /// service and endpoint. Allocates nothing: the ids are binary and the
    /// names shared.
    pub fn event(&self, kind: Kind) -> Event {
        Event {
            trace_id: self.trace_id.into(),
            span_id: self.span_id.into(),
            parent_id: self.parent_id.into(),
            kind,
            service: self.service.clone(),
            endpoint: self.endpoint.clone(),
            ..Event::default()
        }
    }

    /// The `traceparent` to send on outbound calls made within this span.
    pub fn traceparent(&self) -> TraceParent {
        TraceParent::new(self.trace_id, self.span_id, true)
    }
}

/// A request's span plus the bus its events go to.
///
/// A plain value: making one allocates nothing, and a clone copies the ids
/// and adds a reference to the bus and to the span's shared names.
#[derive(Clone)]
pub struct TraceContext {
    span: Span,
    bus: Bus,
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceContext")
            .field("span", &self.span)
            .finish_non_exhaustive()
    }
}

impl TraceContext {
    /// Bundles a span with the bus its events are published to.
    pub fn new(bus: Bus, span: Span) -> TraceContext {
        TraceContext { span, bus }
    }

    /// The request's span.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// The bus events are published to.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// The request's trace id.
    pub fn trace_id(&self) -> TraceId {
        self.span.trace_id
    }

    /// An event of `kind` already carrying this request's trace id, span id,
    /// parent id, service and endpoint.
    pub fn event(&self, kind: Kind) -> Event {
        self.span.event(kind)
    }

    /// Publishes a prepared event to this context's bus.
    pub fn publish(&self, event: Event) -> u64 {
        self.bus.publish(event)
    }

    /// Records a downstream call (DB query, outbound HTTP, queue publish) that
    /// started at `start` and ends now, as a child span of this request.
    /// Returns the event id. The port of Go's `trace.Record`.
    ///
    /// A `&'static str` name costs nothing; the event is the one allocation
    /// (two with an error text longer than 22 bytes).
    pub fn record<E: fmt::Display + ?Sized>(
        &self,
        name: impl Into<Text>,
        start: Instant,
        err: Option<&E>,
    ) -> u64 {
        let elapsed = start.elapsed();
        let mut event = self.event(Kind::Downstream);
        event.parent_id = self.span.span_id.into();
        event.span_id = SpanId::random().into();
        event.message = name.into();
        event.set_duration(elapsed);
        if let Some(err) = err {
            event.error = err.to_string().into();
        }
        event.timestamp = SystemTime::now()
            .checked_sub(elapsed)
            .unwrap_or_else(SystemTime::now);
        self.publish(event)
    }

    /// [`record`](TraceContext::record) taking the call's `Result`.
    pub fn record_result<T, E: fmt::Display>(
        &self,
        name: impl Into<Text>,
        start: Instant,
        result: &Result<T, E>,
    ) -> u64 {
        self.record(name, start, result.as_ref().err())
    }

    /// Publishes a `log` event on this request's trace.
    pub fn log(&self, message: impl Into<Text>) -> u64 {
        let mut event = self.event(Kind::Log);
        event.message = message.into();
        self.publish(event)
    }

    /// Runs `future` with this context as [`current`]; use it to hand the
    /// context to a spawned task.
    pub fn scope<F: Future>(self, future: F) -> Scoped<F> {
        scope(self, future)
    }

    /// Makes this context [`current`] on this thread until the guard drops;
    /// for synchronous code such as `spawn_blocking` closures.
    pub fn enter(&self) -> Entered {
        Entered {
            previous: CURRENT.with(|c| c.replace(Some(self.clone()))),
            _not_send: std::marker::PhantomData,
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<TraceContext>> = const { RefCell::new(None) };
}

/// The context of the request whose future is running on this thread, if any.
pub fn current() -> Option<TraceContext> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Runs `f` with the current context, without cloning it.
pub fn with_current<R>(f: impl FnOnce(Option<&TraceContext>) -> R) -> R {
    CURRENT.with(|c| f(c.borrow().as_ref()))
}

/// Wraps `future` so that [`current`] returns `ctx` while it is polled.
pub fn scope<F: Future>(ctx: TraceContext, future: F) -> Scoped<F> {
    Scoped {
        ctx: Some(ctx),
        future,
    }
}

/// Binds the current context (if any) to `future`, for handing it to a
/// spawned task: `tokio::spawn(context::propagate(async { ... }))`.
pub fn propagate<F: Future>(future: F) -> Scoped<F> {
    Scoped {
        ctx: current(),
        future,
    }
}

/// Records a downstream call on the current request, if there is one.
/// Returns the event id, or `None` outside a request.
pub fn record<E: fmt::Display + ?Sized>(
    name: impl Into<Text>,
    start: Instant,
    err: Option<&E>,
) -> Option<u64> {
    with_current(|ctx| ctx.map(|ctx| ctx.record(name, start, err)))
}

/// [`record`] taking the call's `Result`.
pub fn record_result<T, E: fmt::Display>(
    name: impl Into<Text>,
    start: Instant,
    result: &Result<T, E>,
) -> Option<u64> {
    with_current(|ctx| ctx.map(|ctx| ctx.record_result(name, start, result)))
}

/// Publishes a `log` event on the current request, if there is one.
pub fn log(message: impl Into<Text>) -> Option<u64> {
    with_current(|ctx| ctx.map(|ctx| ctx.log(message)))
}

pin_project_lite::pin_project! {
    /// A future running with a [`TraceContext`] as [`current`]. See [`scope`].
    #[derive(Debug)]
    pub struct Scoped<F> {
        ctx: Option<TraceContext>,
        #[pin]
        future: F,
    }
}

impl<F> Scoped<F> {
    /// The context this future runs with.
    pub fn context(&self) -> Option<&TraceContext> {
        self.ctx.as_ref()
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        // Move the context into the thread-local for the poll and back after,
        // also when the inner future panics (the guard's drop restores it).
        let guard = Swap {
            slot: this.ctx,
            previous: None,
        };
        let mut guard = guard.enter();
        let out = this.future.poll(cx);
        guard.leave();
        out
    }
}

struct Swap<'a> {
    slot: &'a mut Option<TraceContext>,
    previous: Option<Option<TraceContext>>,
}

impl Swap<'_> {
    fn enter(mut self) -> Self {
        let ctx = self.slot.take();
        self.previous = Some(CURRENT.with(|c| c.replace(ctx)));
        self
    }

    fn leave(&mut self) {
        if let Some(previous) = self.previous.take() {
            *self.slot = CURRENT.with(|c| c.replace(previous));
        }
    }
}

impl Drop for Swap<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}

/// Guard returned by [`TraceContext::enter`]; restores the previous context.
#[derive(Debug)]
pub struct Entered {
    previous: Option<TraceContext>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(bus: &Bus) -> TraceContext {
        TraceContext::new(bus.clone(), Span::new("svc", "GET /x"))
    }

    #[test]
    fn outside_a_request_nothing_is_recorded() {
        assert!(current().is_none());
        assert_eq!(record::<str>("db", Instant::now(), None), None);
    }

    #[test]
    fn record_inside_scope_lands_on_the_request_trace() {
        let bus = Bus::new(16);
        let mut sub = bus.subscribe(0);
        let c = ctx(&bus);
        let trace = c.trace_id();
        let span = c.span().span_id;
        futures::executor::block_on(scope(c, async {
            let start = Instant::now();
            let err = std::io::Error::other("connection reset");
            record("db.users.get", start, Some(&err)).expect("inside a scope");
        }));
        assert!(current().is_none(), "context leaked out of the scope");
        let e = sub.try_recv().unwrap();
        assert_eq!(e.kind, Kind::Downstream);
        assert_eq!(e.trace_id, trace);
        assert_eq!(e.parent_id, span);
        assert_ne!(e.span_id, span);
        assert_eq!(e.message, "db.users.get");
        assert_eq!(e.error, "connection reset");
        assert_eq!((e.service.as_str(), e.endpoint.as_str()), ("svc", "GET /x"));
        assert!(e.span_id.id().is_some());
    }

    #[test]
    fn propagate_hands_the_context_to_another_future() {
        let bus = Bus::new(16);
        let mut sub = bus.subscribe(0);
        let c = ctx(&bus);
        let trace = c.trace_id();
        let spawned = {
            let _entered = c.enter();
            propagate(async { log("hi") })
        };
        // Run the "spawned" future later, outside the original scope.
        assert!(current().is_none());
        futures::executor::block_on(spawned).expect("context carried over");
        assert_eq!(sub.try_recv().unwrap().trace_id, trace);
    }

    #[test]
    fn context_is_restored_after_a_panicking_poll() {
        let bus = Bus::new(16);
        let c = ctx(&bus);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            futures::executor::block_on(scope(c, async { panic!("handler panicked") }))
        }));
        assert!(r.is_err());
        assert!(current().is_none());
    }

    #[test]
    fn nested_scopes_and_enter_restore_the_outer_context() {
        let bus = Bus::new(16);
        let outer = ctx(&bus);
        let inner = ctx(&bus);
        let (outer_id, inner_id) = (outer.trace_id(), inner.trace_id());
        futures::executor::block_on(scope(outer, async move {
            scope(inner, async move {
                assert_eq!(current().unwrap().trace_id(), inner_id);
            })
            .await;
            assert_eq!(current().unwrap().trace_id(), outer_id);
        }));
        let c = ctx(&bus);
        {
            let _g = c.enter();
            assert_eq!(current().unwrap().trace_id(), c.trace_id());
        }
        assert!(current().is_none());
    }
}
