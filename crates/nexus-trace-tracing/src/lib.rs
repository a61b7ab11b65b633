//! A [`tracing_subscriber::Layer`] that puts `tracing` data on the
//! nexus-trace bus, attached to the request it happened in.
//!
//! * A `tracing` **event** emitted inside a request (while a request's
//!   future runs, i.e. [`context::current`] is set, or inside a span created
//!   in a request) becomes a `log` event on that request's trace: the
//!   `message` field followed by the other fields as `k=v`, with the level
//!   and target in its meta (`level`, `target`). A field named `error` is
//!   the event's error.
//! * A **span** created inside a request is a child span of the trace. Its
//!   span id is made when it is created. Its parent is the thread's current
//!   nexus span: the innermost entered `tracing` span of the request (see
//!   below), else a span opened with `context::start_span`, else the
//!   request's span; a span created outside them (on another thread) falls
//!   back to its nearest `tracing` ancestor made in a request. An explicit
//!   `parent:` wins; an explicit root (`parent: None`) belongs to no
//!   request. It publishes `span.start` when it is created
//!   and, when it closes, a `downstream` event (a CLIENT span: a query, a
//!   call) or, with the field `otel.kind = "internal"` given when the span
//!   is created (the kind is fixed then, so the end matches `span.start`;
//!   recording `otel.kind` later only changes the attribute), a `span.end`
//!   event: named after the span, timed from creation to close (monotonic), with
//!   its fields as meta. A field named `error` (e.g. declared
//!   `error = tracing::field::Empty` and recorded on failure) is the
//!   event's error. So a database crate's query spans show up on the
//!   dashboard with no `record` call.
//! * While such a span is **entered**, it is the thread's current nexus
//!   span: `tracing` events, `context::record`/`log` and nested spans made
//!   inside it attach to it.
//! * Events outside any request are ignored, or published as `log` events
//!   without a trace id with [`OffRequest::Publish`]. Spans outside a
//!   request are always ignored.
//!
//! The layer never publishes what this crate itself emits, nor anything
//! emitted while it is publishing, so it cannot feed back into itself.
//!
//! ```
//! use nexus_trace_core::{context, Bus, EventKind, SpanContext, TraceContext};
//! use nexus_trace_tracing::NexusTracingLayer;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let bus = Bus::new(64);
//! let mut sub = bus.subscribe(0);
//! let subscriber = tracing_subscriber::registry().with(NexusTracingLayer::new(bus.clone()));
//! tracing::subscriber::with_default(subscriber, || {
//!     let ctx = TraceContext::new(bus.clone(), SpanContext::new("users", "/users/{id}"));
//!     futures::executor::block_on(context::scope(ctx, async {
//!         let _query = tracing::info_span!("db.users.get", user = 7).entered();
//!         tracing::info!(rows = 1, "user loaded");
//!     }));
//! });
//! let start = sub.try_recv().unwrap();
//! assert_eq!((start.kind_str(), start.message.as_str()), ("span.start", "db.users.get"));
//! let log = sub.try_recv().unwrap();
//! assert_eq!((log.kind_str(), log.message.as_str()), ("log", "user loaded rows=1"));
//! assert_eq!(log.span_id, start.span_id); // the log is inside the query's span
//! let query = sub.try_recv().unwrap();
//! assert_eq!((query.kind_str(), query.message.as_str()), ("downstream", "db.users.get"));
//! assert_eq!(query.span_id, start.span_id);
//! assert_eq!(query.attrs["user"], 7);
//! ```
//!
//! # Filtering
//!
//! The layer takes every event and span it is shown, and enabling it makes
//! every callsite in the process live, dependencies' TRACE chatter included
//! (an HTTP client's connection-pool events would land on your requests).
//! Filter it, which also keeps the disabled callsites free:
//!
//! ```
//! # use nexus_trace_tracing::NexusTracingLayer;
//! use tracing_subscriber::{filter::LevelFilter, layer::SubscriberExt, Layer};
//! # let bus = nexus_trace_core::Bus::new(64);
//! let layer = NexusTracingLayer::new(bus.clone()).with_filter(LevelFilter::INFO);
//! let subscriber = tracing_subscriber::registry().with(layer);
//! # drop(subscriber);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::time::Instant;

use nexus_trace_core::{context, Attrs, Bus, Event, EventKind, Text, TraceContext, Value};
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// What to do with `tracing` events emitted outside any request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffRequest {
    /// Drop them (the default): the bus is for request traces.
    #[default]
    Ignore,
    /// Publish them as `log` events without a trace id.
    Publish,
}

/// The layer; see the [crate documentation](crate).
#[derive(Debug, Clone)]
pub struct NexusTracingLayer {
    bus: Bus,
    off_request: OffRequest,
}

impl NexusTracingLayer {
    /// A layer publishing to `bus` (events of a request go to that request's
    /// own bus, which is normally the same one).
    pub fn new(bus: Bus) -> NexusTracingLayer {
        NexusTracingLayer {
            bus,
            off_request: OffRequest::Ignore,
        }
    }

    /// What to do with events outside any request (default
    /// [`OffRequest::Ignore`]).
    #[must_use]
    pub fn off_request(mut self, off_request: OffRequest) -> NexusTracingLayer {
        self.off_request = off_request;
        self
    }
}

/// This crate's own target prefix: never published.
const OWN_TARGET: &str = env!("CARGO_CRATE_NAME");

fn is_own(target: &str) -> bool {
    target
        .strip_prefix(OWN_TARGET)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

thread_local! {
    /// Set while the layer publishes, so nothing emitted meanwhile (by a
    /// subscriber of the bus running inline, say) comes back in.
    static PUBLISHING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` unless the layer is already publishing on this thread.
fn guarded(f: impl FnOnce()) {
    if PUBLISHING.with(|p| p.replace(true)) {
        return;
    }
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            PUBLISHING.with(|p| p.set(false));
        }
    }
    let _reset = Reset;
    f();
}

fn publishing() -> bool {
    PUBLISHING.with(Cell::get)
}

thread_local! {
    /// The nexus spans entered on this thread, innermost last, each with
    /// the context that was current before it was entered.
    static ENTERED: RefCell<Vec<(Id, Option<TraceContext>)>> = const { RefCell::new(Vec::new()) };
}

/// What the layer keeps in a span created inside a request.
struct SpanData {
    /// The span's own context: its id, its parent, the request's bus.
    ctx: TraceContext,
    start: Instant,
    fields: Attrs,
    error: Option<String>,
    /// `otel.kind = "internal"` at creation. Decided once, when `span.start`
    /// is published, so the end always matches the start (a later
    /// `record` of `otel.kind` changes the attribute, not the kind).
    internal: bool,
}

/// The nexus span a new span or an event belongs to. With a contextual
/// parent: the thread's current span (which an entered `tracing` span of
/// a request is, see `on_enter`), else that of the nearest span (from
/// `first`, walking up) created in a request. With an explicit parent:
/// that parent's (or its nearest ancestor's) only; an explicit root
/// belongs to no request.
fn parent_of<'a, S>(
    first: Option<tracing_subscriber::registry::SpanRef<'a, S>>,
    contextual: bool,
) -> Option<TraceContext>
where
    S: Subscriber + for<'l> LookupSpan<'l>,
{
    let from_tracing = || {
        first?
            .scope()
            .find_map(|span| span.extensions().get::<SpanData>().map(|d| d.ctx.clone()))
    };
    if contextual {
        context::current().or_else(from_tracing)
    } else {
        // An explicit parent (or an explicit root: `parent: None`, which
        // belongs to no request) wins over what is current.
        from_tracing()
    }
}

impl<S> Layer<S> for NexusTracingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if is_own(attrs.metadata().target()) || publishing() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let Some(parent) = parent_of(span.parent(), attrs.is_contextual()) else {
            return;
        };
        let mut data = SpanData {
            ctx: TraceContext::new(parent.bus().clone(), parent.span().child()),
            start: Instant::now(),
            fields: Attrs::new(),
            error: None,
            internal: false,
        };
        attrs.record(&mut SpanVisitor(&mut data));
        data.internal = is_internal(&data.fields);
        let mut ev = data.ctx.event(EventKind::SpanStart);
        ev.message = span.name().into();
        ev.timestamp = data.ctx.span().started_at;
        ev.attrs = data.fields.clone();
        if !data.internal {
            ev.attrs.insert(context::SPAN_KIND_ATTR, "client");
        }
        guarded(|| {
            data.ctx.publish(ev);
        });
        span.extensions_mut().insert(data);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(data) = ext.get_mut::<SpanData>() {
            values.record(&mut SpanVisitor(data));
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let ext = span.extensions();
        if let Some(data) = ext.get::<SpanData>() {
            let previous = context::replace_current(Some(data.ctx.clone()));
            ENTERED.with(|e| e.borrow_mut().push((id.clone(), previous)));
        }
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        // The innermost entry of this span is the one to undo. If it is the
        // top of the stack, the context before it becomes current again. If
        // a span entered later is still entered (exits out of order, as
        // `drop((a, b))` does), that span stays current, and the context
        // before the exited one becomes what the later one restores.
        let restored = ENTERED.with(|e| {
            let mut e = e.borrow_mut();
            let at = e.iter().rposition(|(entered, _)| entered == id)?;
            let (_, previous) = e.remove(at);
            match e.get_mut(at) {
                Some((_, later)) => {
                    *later = previous;
                    None
                }
                None => Some(previous),
            }
        });
        if let Some(previous) = restored {
            context::replace_current(previous);
        }
    }

    fn on_event(&self, event: &tracing_core::Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if is_own(meta.target()) || publishing() {
            return;
        }
        let trace = parent_of(ctx.event_span(event), event.is_contextual());
        if trace.is_none() && self.off_request == OffRequest::Ignore {
            return;
        }
        let mut visitor = EventVisitor::default();
        event.record(&mut visitor);
        let mut ev = match &trace {
            Some(trace) => trace.event(EventKind::Log),
            None => Event::new(EventKind::Log),
        };
        ev.error = visitor.error.take().unwrap_or_default().into();
        ev.message = visitor.message().into();
        // The level's name and the target are static strings: no copies.
        ev.attrs.insert("level", meta.level().as_str());
        ev.attrs.insert("target", meta.target());
        guarded(|| {
            match &trace {
                Some(trace) => trace.publish(ev),
                None => self.bus.publish(ev),
            };
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(data) = span.extensions_mut().remove::<SpanData>() else {
            return;
        };
        let elapsed = data.start.elapsed();
        let started_at = data.ctx.span().started_at;
        let mut ev = if data.internal {
            let mut ev = data.ctx.event(EventKind::SpanEnd);
            ev.timestamp = started_at + elapsed;
            ev
        } else {
            // A downstream event is stamped at its start, as `record` does.
            let mut ev = data.ctx.event(EventKind::Downstream);
            ev.timestamp = started_at;
            ev
        };
        ev.message = span.name().into();
        ev.set_duration(elapsed);
        ev.error = data.error.unwrap_or_default().into();
        ev.attrs = data.fields;
        guarded(|| {
            data.ctx.publish(ev);
        });
    }
}

/// Whether a span declared itself INTERNAL (`otel.kind = "internal"`).
fn is_internal(fields: &Attrs) -> bool {
    fields
        .get("otel.kind")
        .and_then(|v| v.as_str())
        .is_some_and(|k| k.eq_ignore_ascii_case("internal"))
}

/// Collects a span's fields as JSON meta; `error` goes to the error.
struct SpanVisitor<'a>(&'a mut SpanData);

impl SpanVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "error" {
            self.0.error = Some(match value {
                Value::Str(s) => s.into(),
                other => other.to_json().to_string(),
            });
        } else {
            self.0.fields.insert(field.name(), value);
        }
    }
}

impl Visit for SpanVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::Str(Text::copy(value)));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

/// Formats an event: the `message` field, then ` k=v` for the others.
#[derive(Default)]
struct EventVisitor {
    message: String,
    fields: String,
    error: Option<String>,
}

impl EventVisitor {
    fn message(self) -> String {
        let mut message = self.message;
        if message.is_empty() {
            return self.fields.trim_start().to_owned();
        }
        message.push_str(&self.fields);
        message
    }

    fn put(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value}");
            }
            "error" => self.error = Some(value.to_string()),
            // tracing-log's metadata fields, when `log` records are bridged.
            name if name.starts_with("log.") => {}
            name => {
                let _ = write!(self.fields, " {name}={value}");
            }
        }
    }
}

impl Visit for EventVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, format_args!("{value}"));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, format_args!("{value}"));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format_args!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_target() {
        assert!(is_own("nexus_trace_tracing"));
        assert!(is_own("nexus_trace_tracing::inner"));
        assert!(!is_own("nexus_trace_tracing_extra"));
        assert!(!is_own("nexus_trace_core"));
    }

    #[test]
    fn guard_is_not_reentrant() {
        let mut inner_ran = false;
        guarded(|| {
            assert!(publishing());
            guarded(|| inner_ran = true);
        });
        assert!(!inner_ran);
        assert!(!publishing());
    }
}
