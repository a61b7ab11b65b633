//! Request context that follows a request's future, with no runtime needed.
//!
//! An adapter wraps each request's future in [`scope`]; while that future (or
//! anything it awaits) runs, [`current`] returns the request's
//! [`TraceContext`], so deep code can [`record`] a downstream call without
//! threading parameters through:
//!
//! ```
//! use std::time::Instant;
//! use nexus_trace_core::{context, Bus, SpanContext, TraceContext};
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
//! let ctx = TraceContext::new(bus.clone(), SpanContext::new("users", "GET /users/{id}"));
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
use crate::event::{Attrs, Event, EventKind, Text, Value};
use crate::traceparent::{SpanId, TraceId, TraceParent};

/// Who a span is and when it started: the request's server span, or a
/// child span opened with [`TraceContext::start_span`].
///
/// The ids and the W3C trace flags and `tracestate` follow the trace across
/// services: [`traceparent`](SpanContext::traceparent) is what an outbound
/// call sends, so the callee's server span becomes this span's child.
#[derive(Clone, Debug)]
pub struct SpanContext {
    /// W3C trace id, continued from an incoming `traceparent` or fresh.
    pub trace_id: TraceId,
    /// This span's own id.
    pub span_id: SpanId,
    /// The parent span: the caller's span from an incoming `traceparent`
    /// (for a server span), or the span this one was opened in.
    pub parent_id: Option<SpanId>,
    /// W3C trace flags, kept from an incoming `traceparent` (bit 0 is
    /// "sampled"); a fresh trace is sampled.
    pub flags: u8,
    /// The incoming `tracestate` header, passed on unchanged to outbound
    /// calls; empty when there was none.
    pub tracestate: Text,
    /// The service name events are attributed to.
    pub service: Text,
    /// The endpoint (route template) of the request this span belongs to,
    /// e.g. `GET /users/{id}`.
    pub endpoint: Text,
    /// When the span started (monotonic, for durations).
    pub start: Instant,
    /// When the span started (wall clock, for timestamps).
    pub started_at: SystemTime,
}

impl SpanContext {
    /// A new root span with fresh ids, sampled, starting now.
    pub fn new(service: impl Into<Text>, endpoint: impl Into<Text>) -> SpanContext {
        // One read of each clock: the trace id's timestamp is the start.
        let started_at = SystemTime::now();
        SpanContext {
            trace_id: TraceId::random_at(started_at),
            span_id: SpanId::random(),
            parent_id: None,
            flags: TraceParent::FLAG_SAMPLED,
            tracestate: Text::EMPTY,
            service: service.into(),
            endpoint: endpoint.into(),
            start: Instant::now(),
            started_at,
        }
    }

    /// Continues the caller's trace: same trace id and flags, the caller's
    /// span as parent.
    pub fn with_parent(mut self, parent: &TraceParent) -> SpanContext {
        self.trace_id = parent.trace_id;
        self.parent_id = Some(parent.parent_id);
        self.flags = parent.flags;
        self
    }

    /// Keeps the caller's `tracestate` (already validated, see
    /// [`tracestate_is_valid`](crate::traceparent::tracestate_is_valid)) to
    /// pass on to outbound calls.
    pub fn with_tracestate(mut self, tracestate: impl Into<Text>) -> SpanContext {
        self.tracestate = tracestate.into();
        self
    }

    /// A child of this span: same trace, flags, `tracestate`, service and
    /// endpoint, a fresh span id, this span as parent, starting now.
    pub fn child(&self) -> SpanContext {
        SpanContext {
            span_id: SpanId::random(),
            parent_id: Some(self.span_id),
            start: Instant::now(),
            started_at: SystemTime::now(),
            ..self.clone()
        }
    }

    /// Whether the trace's sampled flag is set.
    pub fn sampled(&self) -> bool {
        self.flags & TraceParent::FLAG_SAMPLED != 0
    }

    /// An event of `kind` carrying this span's trace id, span id, parent id,
    /// service and endpoint. Allocates nothing: the ids are binary and the
    /// names shared.
    pub fn event(&self, kind: EventKind) -> Event {
        Event::spanned(
            kind,
            self.trace_id.into(),
            self.span_id.into(),
            self.parent_id.into(),
            self.service.clone(),
            self.endpoint.clone(),
        )
    }

    /// The `traceparent` to send on outbound calls made within this span:
    /// this span as the parent, the trace's flags as received.
    pub fn traceparent(&self) -> TraceParent {
        TraceParent {
            version: 0,
            trace_id: self.trace_id,
            parent_id: self.span_id,
            flags: self.flags,
        }
    }

    /// The `tracestate` to send on outbound calls, if the trace has one.
    pub fn tracestate(&self) -> Option<&str> {
        (!self.tracestate.is_empty()).then(|| self.tracestate.as_str())
    }
}

/// A request's span plus the bus its events go to.
///
/// A plain value: making one allocates nothing, and a clone copies the ids
/// and adds a reference to the bus and to the span's shared names.
#[derive(Clone)]
pub struct TraceContext {
    span: SpanContext,
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
    pub fn new(bus: Bus, span: SpanContext) -> TraceContext {
        TraceContext { span, bus }
    }

    /// The span this context records into (the request's server span, or
    /// a child span's).
    pub fn span(&self) -> &SpanContext {
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

    /// An event of `kind` already carrying this span's trace id, span id,
    /// parent id, service and endpoint.
    pub fn event(&self, kind: EventKind) -> Event {
        self.span.event(kind)
    }

    /// Publishes a prepared event to this context's bus.
    pub fn publish(&self, event: Event) -> u64 {
        self.bus.publish(event)
    }

    /// Opens a child span of this one, named `name` (an INTERNAL span; see
    /// [`span_builder`](TraceContext::span_builder) for a CLIENT span or
    /// attributes on its start). It publishes `span.start` now and ends
    /// when the guard ends or drops.
    pub fn start_span(&self, name: impl Into<Text>) -> SpanGuard {
        self.span_builder(name).start()
    }

    /// Prepares a child span of this one: set its kind and attributes,
    /// then [`start`](SpanBuilder::start) it or [`run`](SpanBuilder::run) a
    /// future in it.
    pub fn span_builder(&self, name: impl Into<Text>) -> SpanBuilder {
        SpanBuilder {
            parent: Some(self.clone()),
            name: name.into(),
            kind: SpanKind::Internal,
            attrs: Attrs::new(),
        }
    }

    /// Records a downstream call (DB query, outbound HTTP, queue publish) that
    /// started at `start` and ends now, as a finished CLIENT child span of
    /// this one. Returns the event id. The port of Go's `trace.Record`:
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use nexus_trace_core::{Bus, SpanContext, TraceContext};
    /// # let ctx = TraceContext::new(Bus::new(8), SpanContext::new("shop", "GET /"));
    /// let start = Instant::now();
    /// ctx.record("cache.get", start, None);
    /// let err = std::io::Error::other("connection refused");
    /// ctx.record("cache.get", start, Some(&err));
    /// ```
    ///
    /// The call's span id is made here, after the call, so a `traceparent`
    /// sent during the call could not have named it: for an outbound call
    /// whose callee is traced too, open a CLIENT span before the call
    /// instead (`span_builder(name).client().start()`).
    ///
    /// A `&'static str` name costs nothing; the event is the one allocation
    /// (two with an error text longer than 16 bytes).
    pub fn record(
        &self,
        name: impl Into<Text>,
        start: Instant,
        err: Option<&dyn fmt::Display>,
    ) -> u64 {
        let elapsed = start.elapsed();
        let mut event = self.event(EventKind::Downstream);
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
        self.record(
            name,
            start,
            result.as_ref().err().map(|e| e as &dyn fmt::Display),
        )
    }

    /// Publishes a `log` event on this span.
    pub fn log(&self, message: impl Into<Text>) -> u64 {
        let mut event = self.event(EventKind::Log);
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

/// What a child span is, as OpenTelemetry calls it. A request's own span is
/// the SERVER span; children are one of these.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SpanKind {
    /// Work inside the service (the default). Ends with a `span.end` event.
    #[default]
    Internal,
    /// A call to another service or a dependency. Ends with a `downstream`
    /// event, as Go's `trace.Record` does; its `span.start` carries the
    /// attribute `span.kind = "client"`.
    Client,
}

impl SpanKind {
    /// `"internal"` or `"client"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Internal => "internal",
            SpanKind::Client => "client",
        }
    }
}

/// The attribute key a CLIENT span's `span.start` event carries.
pub const SPAN_KIND_ATTR: &str = "span.kind";

/// A child span being prepared; see [`TraceContext::span_builder`] and
/// [`span_builder`] (this module's function, for the current request).
#[derive(Debug)]
#[must_use = "a span builder does nothing until it is started"]
pub struct SpanBuilder {
    parent: Option<TraceContext>,
    name: Text,
    kind: SpanKind,
    attrs: Attrs,
}

impl SpanBuilder {
    /// Sets the span's kind.
    pub fn kind(mut self, kind: SpanKind) -> SpanBuilder {
        self.kind = kind;
        self
    }

    /// Makes this a CLIENT span: a call to another service or dependency.
    pub fn client(self) -> SpanBuilder {
        self.kind(SpanKind::Client)
    }

    /// Sets an attribute, carried by the span's start and end events.
    pub fn attr(mut self, key: impl Into<Text>, value: impl Into<Value>) -> SpanBuilder {
        self.attrs.insert(key, value);
        self
    }

    /// Opens the span: its id is made now, and `span.start` is published.
    pub fn start(self) -> SpanGuard {
        let Some(parent) = self.parent else {
            return SpanGuard { open: None };
        };
        let ctx = TraceContext {
            span: parent.span.child(),
            bus: parent.bus,
        };
        let mut event = ctx.event(EventKind::SpanStart);
        event.message = self.name.clone();
        event.timestamp = ctx.span.started_at;
        event.attrs = self.attrs.clone();
        if self.kind == SpanKind::Client {
            event
                .attrs
                .insert(SPAN_KIND_ATTR, SpanKind::Client.as_str());
        }
        ctx.publish(event);
        SpanGuard {
            open: Some(Open {
                ctx,
                name: self.name,
                kind: self.kind,
                attrs: self.attrs,
                error: None,
            }),
        }
    }

    /// Runs `future` inside the span: the span opens now, the future sees
    /// it as [`current`] (so spans and records inside it nest under it),
    /// and it ends when the future completes, or with the error
    /// `"cancelled"` if the future is dropped first (`"panicked"` if a
    /// panic drops it).
    pub fn run<F: Future>(self, future: F) -> InSpan<F> {
        self.start().run(future)
    }

    /// [`run`](SpanBuilder::run) for a future that returns a `Result`: an
    /// `Err` ends the span with the error's text.
    pub fn run_result<F, T, E>(self, future: F) -> InSpan<F>
    where
        F: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        self.start().run_result(future)
    }
}

#[derive(Debug)]
struct Open {
    ctx: TraceContext,
    name: Text,
    kind: SpanKind,
    attrs: Attrs,
    error: Option<Text>,
}

/// An open child span; it ends when [`end`](SpanGuard::end) (or a
/// sibling) is called, or when the guard drops, which means success, unless
/// the guard drops while its thread unwinds a panic: the span then ends
/// with the error `"panicked"` (an error set before is kept).
///
/// Outside a request (no [`current`] context) a guard is inert: it records
/// nothing and has no `traceparent`.
///
/// ```
/// use nexus_trace_core::{context, Bus, SpanContext, TraceContext};
///
/// let bus = Bus::new(64);
/// let mut sub = bus.subscribe(0);
/// let ctx = TraceContext::new(bus.clone(), SpanContext::new("shop", "POST /orders"));
/// let _in_request = ctx.enter();
///
/// let mut charge = context::span_builder("http.payments.charge").client().start();
/// let header = charge.traceparent().unwrap().to_string(); // send it downstream
/// let ledger = charge.start_span("ledger.write");
/// ledger.end_err("disk full");
/// charge.attr("http.status", 200);
/// charge.end();
/// assert_eq!(sub.try_recv_many(&mut Vec::new(), 16).unwrap(), 4); // 2 starts, 2 ends
/// # assert!(header.starts_with("00-"));
/// ```
#[derive(Debug)]
#[must_use = "a span ends when its guard drops; bind it with `let _span = ...`"]
pub struct SpanGuard {
    open: Option<Open>,
}

impl SpanGuard {
    /// A guard that records nothing (what the module functions return
    /// outside a request).
    pub fn inert() -> SpanGuard {
        SpanGuard { open: None }
    }

    /// Whether this guard records a span (false outside a request).
    pub fn is_recording(&self) -> bool {
        self.open.is_some()
    }

    /// The span's context: events published through it belong to this
    /// span, and spans opened from it are its children.
    pub fn context(&self) -> Option<&TraceContext> {
        self.open.as_ref().map(|o| &o.ctx)
    }

    /// The span's id.
    pub fn span_id(&self) -> Option<SpanId> {
        self.open.as_ref().map(|o| o.ctx.span.span_id)
    }

    /// The `traceparent` to send on the call this span covers: it names
    /// this span, so the callee's server span becomes its child.
    pub fn traceparent(&self) -> Option<TraceParent> {
        self.open.as_ref().map(|o| o.ctx.span.traceparent())
    }

    /// The `tracestate` to send along with [`traceparent`](SpanGuard::traceparent).
    pub fn tracestate(&self) -> Option<&str> {
        self.open.as_ref().and_then(|o| o.ctx.span.tracestate())
    }

    /// Sets an attribute, carried by the span's end event.
    pub fn attr(&mut self, key: impl Into<Text>, value: impl Into<Value>) -> &mut SpanGuard {
        if let Some(open) = &mut self.open {
            open.attrs.insert(key, value);
        }
        self
    }

    /// Marks the span failed with `err` without ending it yet (the last
    /// error set wins).
    pub fn set_error(&mut self, err: impl fmt::Display) -> &mut SpanGuard {
        if let Some(open) = &mut self.open {
            open.error = Some(err.to_string().into());
        }
        self
    }

    /// Takes back an error set with [`set_error`](SpanGuard::set_error).
    pub fn clear_error(&mut self) -> &mut SpanGuard {
        if let Some(open) = &mut self.open {
            open.error = None;
        }
        self
    }

    /// Opens a child span of this one (INTERNAL).
    pub fn start_span(&self, name: impl Into<Text>) -> SpanGuard {
        self.span_builder(name).start()
    }

    /// Prepares a child span of this one.
    pub fn span_builder(&self, name: impl Into<Text>) -> SpanBuilder {
        SpanBuilder {
            parent: self.context().cloned(),
            name: name.into(),
            kind: SpanKind::Internal,
            attrs: Attrs::new(),
        }
    }

    /// Publishes a `log` event on this span.
    pub fn log(&self, message: impl Into<Text>) -> Option<u64> {
        self.context().map(|ctx| ctx.log(message))
    }

    /// Makes this span [`current`] on this thread until the returned guard
    /// drops (synchronous code; for async code use [`run`](SpanGuard::run)).
    pub fn enter(&self) -> Option<Entered> {
        self.context().map(TraceContext::enter)
    }

    /// Runs `future` inside this span (see [`SpanBuilder::run`]); the span
    /// ends when the future completes.
    pub fn run<F: Future>(self, future: F) -> InSpan<F> {
        InSpan {
            scoped: Scoped {
                // An inert guard leaves the future with the context current
                // now, rather than with none.
                ctx: self.context().cloned().or_else(current),
                future,
            },
            span: self,
            outcome: |_| None,
        }
    }

    /// [`run`](SpanGuard::run) for a future returning a `Result`: an `Err`
    /// ends the span with the error's text.
    pub fn run_result<F, T, E>(self, future: F) -> InSpan<F>
    where
        F: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        InSpan {
            scoped: Scoped {
                ctx: self.context().cloned().or_else(current),
                future,
            },
            span: self,
            outcome: |out| out.as_ref().err().map(|e| Text::from(e.to_string())),
        }
    }

    /// Ends the span successfully (unless [`set_error`](SpanGuard::set_error)
    /// marked it failed).
    pub fn end(mut self) {
        self.finish();
    }

    /// Ends the span with the error `err`.
    pub fn end_err(mut self, err: impl fmt::Display) {
        self.set_error(err);
        self.finish();
    }

    /// Ends the span with the outcome of `result`.
    pub fn end_result<T, E: fmt::Display>(mut self, result: &Result<T, E>) {
        if let Err(e) = result {
            self.set_error(e);
        }
        self.finish();
    }

    fn finish(&mut self) {
        let Some(open) = self.open.take() else { return };
        let elapsed = open.ctx.span.start.elapsed();
        let (kind, timestamp) = match open.kind {
            // A downstream event's timestamp is when the call started, as
            // `record` has always written it.
            SpanKind::Client => (EventKind::Downstream, open.ctx.span.started_at),
            SpanKind::Internal => (
                EventKind::SpanEnd,
                open.ctx
                    .span
                    .started_at
                    .checked_add(elapsed)
                    .unwrap_or_else(SystemTime::now),
            ),
        };
        let mut event = open.ctx.event(kind);
        event.message = open.name;
        event.set_duration(elapsed);
        event.timestamp = timestamp;
        event.attrs = open.attrs;
        if let Some(error) = open.error {
            event.error = error;
        }
        open.ctx.publish(event);
    }
}

/// The error of a span whose guard a panic dropped.
const PANICKED: &str = "panicked";

impl Drop for SpanGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(open) = &mut self.open {
                open.error.get_or_insert(Text::from_static(PANICKED));
            }
        }
        self.finish();
    }
}

pin_project_lite::pin_project! {
    /// A future running inside a child span; see [`SpanBuilder::run`].
    #[derive(Debug)]
    pub struct InSpan<F: Future> {
        #[pin]
        scoped: Scoped<F>,
        span: SpanGuard,
        outcome: fn(&F::Output) -> Option<Text>,
    }

    impl<F: Future> PinnedDrop for InSpan<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if this.span.is_recording() {
                // Dropped by an unwinding panic (in the future or around
                // it), or dropped unfinished.
                let why = if std::thread::panicking() { PANICKED } else { "cancelled" };
                this.span.set_error(why);
            }
        }
    }
}

impl<F: Future> InSpan<F> {
    /// The span's id (`None` outside a request).
    pub fn span_id(&self) -> Option<SpanId> {
        self.span.span_id()
    }
}

impl<F: Future> Future for InSpan<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let out = std::task::ready!(this.scoped.poll(cx));
        if let Some(error) = (this.outcome)(&out) {
            this.span.set_error(error);
        }
        this.span.finish();
        Poll::Ready(out)
    }
}

thread_local! {
    static CURRENT: RefCell<Option<TraceContext>> = const { RefCell::new(None) };
}

/// The context of the request whose future is running on this thread, if any.
pub fn current() -> Option<TraceContext> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Makes `ctx` the current context on this thread and returns the one it
/// replaces. For integrations that track their own enter/exit pairs (the
/// `tracing` bridge); code that can scope a guard uses
/// [`TraceContext::enter`] or [`scope`], which restore the previous context
/// themselves.
pub fn replace_current(ctx: Option<TraceContext>) -> Option<TraceContext> {
    CURRENT.with(|c| c.replace(ctx))
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
/// Returns the event id, or `None` outside a request. See
/// [`TraceContext::record`].
pub fn record(
    name: impl Into<Text>,
    start: Instant,
    err: Option<&dyn fmt::Display>,
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

/// Publishes a `log` event on the current span, if there is one.
pub fn log(message: impl Into<Text>) -> Option<u64> {
    with_current(|ctx| ctx.map(|ctx| ctx.log(message)))
}

/// Opens a child span of the current span (INTERNAL); an inert guard
/// outside a request. See [`TraceContext::start_span`].
pub fn start_span(name: impl Into<Text>) -> SpanGuard {
    span_builder(name).start()
}

/// Prepares a child span of the current span. See
/// [`TraceContext::span_builder`].
pub fn span_builder(name: impl Into<Text>) -> SpanBuilder {
    SpanBuilder {
        parent: current(),
        name: name.into(),
        kind: SpanKind::Internal,
        attrs: Attrs::new(),
    }
}

/// Runs `future` in a child span of the current span, named `name`; see
/// [`SpanBuilder::run`].
///
/// ```
/// # use nexus_trace_core::{context, Bus, SpanContext, TraceContext};
/// # async fn write_ledger() -> Result<(), std::io::Error> { Ok(()) }
/// async fn charge() -> Result<(), std::io::Error> {
///     context::in_span("ledger.write", write_ledger()).await
/// }
/// ```
pub fn in_span<F: Future>(name: impl Into<Text>, future: F) -> InSpan<F> {
    span_builder(name).run(future)
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
        let future = this.future;
        with_context_in(this.ctx, || future.poll(cx))
    }
}

/// Runs `f` with the context held in `slot` as [`current`]: the context is
/// moved into the thread-local for the call and back into `slot` after it,
/// also when `f` panics. No clone, no reference count.
///
/// For a future that keeps its request's context in a field of its own
/// (the adapters' response futures keep it in the request's recording),
/// so one copy of the context serves both `current()` and the recording,
/// where [`scope`] would need a second. While `f` runs `slot` is `None`.
pub fn with_context_in<R>(slot: &mut Option<TraceContext>, f: impl FnOnce() -> R) -> R {
    let mut guard = Swap {
        slot,
        previous: None,
    }
    .enter();
    let out = f();
    guard.leave();
    out
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
        TraceContext::new(bus.clone(), SpanContext::new("svc", "GET /x"))
    }

    #[test]
    fn outside_a_request_nothing_is_recorded() {
        assert!(current().is_none());
        assert_eq!(record("db", Instant::now(), None), None);
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
        assert_eq!(e.kind(), EventKind::Downstream);
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

    fn drain(sub: &mut crate::Subscription) -> Vec<Event> {
        std::iter::from_fn(|| sub.try_recv().ok().map(|e| (*e).clone())).collect()
    }

    #[test]
    fn spans_nest_and_the_traceparent_names_the_open_span() {
        let bus = Bus::new(64);
        let mut sub = bus.subscribe(0);
        let parent =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        let c = TraceContext::new(
            bus.clone(),
            SpanContext::new("shop", "POST /orders")
                .with_parent(&parent)
                .with_tracestate("rojo=00f067aa0ba902b7"),
        );
        let server = c.span().span_id;
        let _in_request = c.enter();

        let mut call = span_builder("http.payments.charge")
            .client()
            .attr("peer", "payments")
            .start();
        let call_id = call.span_id().unwrap();
        let tp = call.traceparent().unwrap();
        assert_eq!(tp.parent_id, call_id, "the callee must hang under the call");
        assert_eq!(tp.trace_id, c.trace_id());
        assert_eq!(tp.flags, 0, "the incoming unsampled flag is kept");
        assert_eq!(call.tracestate(), Some("rojo=00f067aa0ba902b7"));
        let inner = call.start_span("encode");
        let inner_id = inner.span_id().unwrap();
        inner.log("encoded");
        inner.end_err("too big");
        call.attr("http.status", 502);
        call.end();

        let ev = drain(&mut sub);
        let kinds: Vec<&str> = ev.iter().map(|e| e.kind_str()).collect();
        assert_eq!(
            kinds,
            ["span.start", "span.start", "log", "span.end", "downstream"]
        );
        assert_eq!(
            (ev[0].span_id.id(), ev[0].parent_id.id()),
            (Some(call_id), Some(server))
        );
        assert_eq!(ev[0].attrs["span.kind"], "client");
        assert_eq!(ev[0].attrs["peer"], "payments");
        assert_eq!(
            (ev[1].span_id.id(), ev[1].parent_id.id()),
            (Some(inner_id), Some(call_id))
        );
        assert_eq!(
            ev[2].span_id.id(),
            Some(inner_id),
            "a log inside a span attaches to it"
        );
        assert_eq!(
            (ev[3].message.as_str(), ev[3].error.as_str()),
            ("encode", "too big")
        );
        assert_eq!(ev[4].message, "http.payments.charge");
        assert_eq!(ev[4].span_id.id(), Some(call_id));
        assert_eq!(ev[4].attrs["http.status"], 502);
        assert_eq!(
            ev[4].timestamp, ev[0].timestamp,
            "downstream is stamped at its start"
        );
        assert!(ev.iter().all(|e| e.trace_id == c.trace_id()));
    }

    #[test]
    fn a_dropped_guard_ends_the_span_ok_and_outside_a_request_it_is_inert() {
        let bus = Bus::new(16);
        let mut sub = bus.subscribe(0);
        {
            let _span = ctx(&bus).start_span("work");
        }
        let ev = drain(&mut sub);
        assert_eq!(ev.len(), 2);
        assert_eq!(
            (ev[1].kind().as_str(), ev[1].error.as_str()),
            ("span.end", "")
        );
        assert!(ev[1].duration_ns > 0);

        let inert = start_span("nowhere");
        assert!(!inert.is_recording() && inert.traceparent().is_none());
        drop(inert);
        assert!(sub.try_recv().is_err(), "an inert guard publishes nothing");
    }

    #[test]
    fn a_panic_ends_its_open_spans_with_an_error() {
        let bus = Bus::new(32);
        let mut sub = bus.subscribe(0);
        let c = ctx(&bus);
        let guard_and_future = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut kept = c.start_span("kept");
            kept.set_error("first error");
            let _open = c.start_span("open");
            futures::executor::block_on(c.span_builder("polled").run(async {
                panic!("boom");
            }))
        }));
        assert!(guard_and_future.is_err());
        let ends: Vec<(String, String)> = drain(&mut sub)
            .iter()
            .filter(|e| e.kind() == EventKind::SpanEnd)
            .map(|e| (e.message.to_string(), e.error.to_string()))
            .collect();
        let end = |name: &str| {
            ends.iter()
                .find(|(n, _)| n == name)
                .map(|(_, e)| e.as_str())
        };
        assert_eq!(end("polled"), Some("panicked"), "{ends:?}");
        assert_eq!(end("open"), Some("panicked"), "{ends:?}");
        assert_eq!(
            end("kept"),
            Some("first error"),
            "an error set before is kept"
        );

        // Outside a panic, dropping still means success.
        drop(c.start_span("fine"));
        let ev = drain(&mut sub);
        assert_eq!((ev[1].message.as_str(), ev[1].error.as_str()), ("fine", ""));
    }

    #[test]
    fn in_span_runs_the_future_inside_the_span() {
        let bus = Bus::new(32);
        let mut sub = bus.subscribe(0);
        let c = ctx(&bus);
        let server = c.span().span_id;
        let out = futures::executor::block_on(scope(c, async {
            let inner = in_span("ledger.write", async {
                record("db.insert", Instant::now(), None);
                current().unwrap().span().span_id
            });
            let id = inner.span_id().unwrap();
            (inner.await, id)
        }));
        assert_eq!(out.0, out.1, "current() inside is the child span");
        let ev = drain(&mut sub);
        let kinds: Vec<&str> = ev.iter().map(|e| e.kind_str()).collect();
        assert_eq!(kinds, ["span.start", "downstream", "span.end"]);
        assert_eq!(ev[0].parent_id.id(), Some(server));
        assert_eq!(
            ev[1].parent_id.id(),
            Some(out.1),
            "the record nests in the span"
        );

        // A Result future ends its span with the error; a dropped one is
        // "cancelled".
        let c = ctx(&bus);
        let r: Result<(), std::io::Error> = futures::executor::block_on(
            c.span_builder("fails")
                .run_result(async { Err(std::io::Error::other("refused")) }),
        );
        assert!(r.is_err());
        let never = c.span_builder("never").run(std::future::pending::<()>());
        drop(never);
        let ev = drain(&mut sub);
        let ends: Vec<(&str, &str)> = ev
            .iter()
            .filter(|e| e.kind() == EventKind::SpanEnd)
            .map(|e| (e.message.as_str(), e.error.as_str()))
            .collect();
        assert_eq!(ends, [("fails", "refused"), ("never", "cancelled")]);
    }

    #[test]
    fn an_inert_guard_running_a_future_keeps_the_current_context() {
        let bus = Bus::new(16);
        let mut sub = bus.subscribe(0);
        let c = ctx(&bus);
        let trace = c.trace_id();
        futures::executor::block_on(scope(c, async {
            SpanGuard::inert()
                .run(async { log("still in the request") })
                .await
                .expect("the request's context");
        }));
        assert_eq!(sub.try_recv().unwrap().trace_id, trace);
    }
}
