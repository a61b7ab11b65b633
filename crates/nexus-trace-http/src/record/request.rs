//! One HTTP request's lifecycle, independent of the web framework: the
//! `request.start` event, the request context, and exactly one `request.end`
//! however the request finishes (response body completed, handler error,
//! panic, client gone).

use crate::record::redact;
use crate::record::route::RouteCache;
use nexus_trace_core::Bus;
use nexus_trace_core::TraceParent;
use nexus_trace_core::{context, SpanContext, TraceContext};
use nexus_trace_core::{Attrs, EventKind, Method, Text, W3cId};

/// Longest method kept in an event, in bytes.
const MAX_METHOD: usize = 32;

/// Status recorded when the client went away before a response existed
/// (the nginx convention "client closed request").
pub const STATUS_CLIENT_CLOSED: u16 = 499;

/// What the middleware records, set by the adapters' builders.
#[derive(Debug, Clone)]
pub struct TraceConfig {
    /// Service name on every event.
    pub service: Text,
    /// Transport label (`http` by default).
    pub transport: Text,
    /// A fixed endpoint name instead of the route template.
    pub endpoint: Option<Text>,
    /// Record the query string (sensitive values redacted). Off by default.
    pub capture_query: bool,
    /// The shared endpoint text of each route template seen (clones of
    /// the config share it).
    pub routes: RouteCache,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            service: Text::EMPTY,
            transport: Text::from_static("http"),
            endpoint: None,
            capture_query: false,
            routes: RouteCache::new(),
        }
    }
}

/// The request as the middleware sees it before calling the handler.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path, without the query string (percent-encoded as received).
    pub path: &'a str,
    /// Raw query string, if any.
    pub query: Option<&'a str>,
    /// Route template (`/users/{id}`) if the framework matched one.
    pub route: Option<&'a str>,
    /// The raw `traceparent` header, if any.
    pub traceparent: Option<&'a [u8]>,
    /// The raw `tracestate`, if any: all of the request's `tracestate`
    /// lines as one list ([`combined_tracestate`](super::combined_tracestate)).
    /// Kept only with a valid `traceparent`, and only when it is valid
    /// itself, as W3C trace context asks.
    pub tracestate: Option<&'a [u8]>,
}

/// `HTTP <status>`, made without a heap allocation (it fits inline).
fn status_error(status: u16) -> Text {
    use std::io::Write as _;
    let mut buf = [0u8; 16];
    let mut rest = &mut buf[..];
    // "HTTP " and at most five digits always fit in 16 bytes.
    let _ = write!(rest, "HTTP {status}");
    let len = 16 - rest.len();
    Text::copy(std::str::from_utf8(buf.get(..len).unwrap_or_default()).unwrap_or_default())
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The response body was written completely. A 5xx status is recorded
    /// with the error `HTTP <status>`.
    Completed {
        /// Response status.
        status: u16,
    },
    /// The handler (or the service stack) returned an error.
    Failed {
        /// Status sent, if any (500 when the framework turns it into one).
        status: u16,
        /// The error's text.
        error: String,
    },
    /// The response body failed mid-stream.
    BodyFailed {
        /// Response status already sent.
        status: u16,
        /// The error's text.
        error: String,
    },
}

/// The in-flight record of one request. Publishes `request.start` when made
/// and exactly one `request.end`: through [`finish`](RequestRecording::finish),
/// or from `Drop` when the request future or response body is dropped early
/// (client disconnect, marked `aborted`) or unwinds (handler panic).
#[derive(Debug)]
pub struct RequestRecording {
    /// Always `Some`, except while [`poll_recording_panics`](Self::poll_recording_panics)
    /// has moved it into the thread-local for one poll of the request's
    /// future (nothing else can reach the recording then). One copy serves
    /// both the recording and `current()`.
    ctx: Option<TraceContext>,
    /// The fields `request.start` and `request.end` share besides the
    /// span's: cheap clones (the path's heap text, if any, is shared).
    transport: Text,
    method: Option<Method>,
    path: Text,
    /// The captured query, if any.
    attrs: Attrs,
    /// Response status once headers exist; 0 before.
    status: u16,
    ended: bool,
}

impl RequestRecording {
    /// Starts tracing a request: builds its span (continuing a valid incoming
    /// `traceparent`, else a fresh W3C trace id) and publishes `request.start`.
    ///
    /// Allocates the `request.start` event and, for a path longer than
    /// [`INLINE_CAPACITY`](nexus_trace_core::INLINE_CAPACITY) bytes, the path
    /// text that both events share; names come from `config` and its route
    /// cache, ids are binary. A non-standard method (not one of the nine
    /// HTTP methods) costs each of the two events its out-of-line name
    /// record, one more allocation each.
    pub fn start(bus: &Bus, config: &TraceConfig, req: RequestInfo<'_>) -> RequestRecording {
        let path = redact::capture_path(req.path);
        let endpoint = match (&config.endpoint, req.route) {
            (Some(fixed), _) => fixed.clone(),
            (None, Some(route)) => config.routes.endpoint(route),
            // No route matched (404s, or a layer outside the router): the
            // path itself, capped, so the endpoint is never empty.
            (None, None) => path.clone(),
        };
        let mut span = SpanContext::new(config.service.clone(), endpoint);
        if let Some(parent) = req
            .traceparent
            .and_then(|raw| std::str::from_utf8(raw).ok())
            .and_then(|s| TraceParent::parse(s).ok())
        {
            span = span.with_parent(&parent);
            if let Some(state) = req
                .tracestate
                .and_then(|raw| std::str::from_utf8(raw).ok())
                .map(|s| s.trim_matches([' ', '\t']))
                .filter(|s| nexus_trace_core::tracestate_is_valid(s))
            {
                span = span.with_tracestate(Text::copy(state));
            }
        }
        let mut attrs = Attrs::new();
        if let (true, Some(q)) = (config.capture_query, req.query) {
            if !q.is_empty() {
                attrs.insert("query", redact::redact_query(q));
            }
        }
        let ctx = TraceContext::new(bus.clone(), span);
        let method = Some(match req.method {
            m if m.len() <= MAX_METHOD => Method::parse(m),
            m => Method::Other(redact::capture(m, MAX_METHOD)),
        });
        let mut start = ctx.event(EventKind::RequestStart);
        start.set_method(method.clone());
        start.transport = config.transport.clone();
        start.path = path.clone();
        start.attrs = attrs.clone();
        start.timestamp = ctx.span().started_at;
        ctx.publish(start);
        RequestRecording {
            ctx: Some(ctx),
            transport: config.transport.clone(),
            method,
            path,
            attrs,
            status: 0,
            ended: false,
        }
    }

    /// The request's context (to [`enter`](TraceContext::enter) it around
    /// the synchronous part of the inner service's `call`). `None` only
    /// inside [`poll_recording_panics`](Self::poll_recording_panics), where
    /// it is `current()` instead.
    pub fn context(&self) -> Option<&TraceContext> {
        self.ctx.as_ref()
    }

    /// The trace id to echo in the response header: 32 lowercase hex
    /// digits (ASCII), made without allocating.
    pub fn trace_id_hex(&self) -> [u8; 32] {
        let mut hex = [b'0'; 32];
        if let Some(ctx) = &self.ctx {
            ctx.trace_id().write_hex(&mut hex);
        }
        hex
    }

    /// The response status noted so far (0 before the handler responded).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Notes the response status once the handler produced a response.
    pub fn set_status(&mut self, status: u16) {
        self.status = status;
    }

    /// Publishes `request.end` for `outcome`. Later calls (and the drop) do nothing.
    pub fn finish(&mut self, outcome: Outcome) {
        let capture = |error: &str| redact::capture(error, redact::MAX_FIELD);
        let (status, error, body_failed) = match outcome {
            // A 5xx without a known cause still says that it failed.
            Outcome::Completed { status } if status >= 500 => (status, status_error(status), false),
            Outcome::Completed { status } => (status, Text::EMPTY, false),
            Outcome::Failed { status, error } => (status, capture(&error), false),
            Outcome::BodyFailed { status, error } => (status, capture(&error), true),
        };
        self.end(status, error, |meta| {
            if body_failed {
                meta.insert("bodyError", true);
            }
        });
    }

    /// Publishes `request.end`, moving the shared fields into it.
    fn end(&mut self, status: u16, error: Text, meta: impl FnOnce(&mut Attrs)) {
        if self.ended {
            return;
        }
        self.ended = true;
        let Some(ctx) = &self.ctx else { return };
        let mut event = ctx.event(EventKind::RequestEnd);
        event.transport = std::mem::take(&mut self.transport);
        event.set_method(self.method.take());
        event.path = std::mem::take(&mut self.path);
        event.attrs = std::mem::take(&mut self.attrs);
        event.status = status;
        event.error = error;
        // The end is the start plus the monotonic duration: one clock read,
        // and the timestamps agree with the duration.
        let elapsed = ctx.span().start.elapsed();
        event.set_duration(elapsed);
        // (`checked_add` cannot fail for a start read from the clock; the
        // fallback keeps a request path free of a panic all the same.)
        event.timestamp = ctx
            .span()
            .started_at
            .checked_add(elapsed)
            .unwrap_or_else(std::time::SystemTime::now);
        meta(&mut event.attrs);
        ctx.publish(event);
    }

    /// Ends the request when its response body is done: `error` is `None`
    /// when the body was sent completely. Used by the adapters' body
    /// wrappers, which hold the trace in an `Option` and give it up here.
    pub fn finish_body(trace: &mut Option<RequestRecording>, error: Option<String>) {
        if let Some(mut trace) = trace.take() {
            let status = trace.status;
            trace.finish(match error {
                None => Outcome::Completed { status },
                Some(error) => Outcome::BodyFailed { status, error },
            });
        }
    }

    /// Publishes the end of a request whose handler panicked (500,
    /// `handler panicked`, meta `panic: true`).
    pub fn finish_panicked(&mut self) {
        self.end(500, Text::from_static("handler panicked"), |meta| {
            meta.insert("panic", true);
        });
    }

    /// Runs one poll of the request's future with the request's context as
    /// `current()` (moved into the thread-local and back, see
    /// [`with_context_in`](nexus_trace_core::context::with_context_in)), so
    /// the response future needs no second copy of it. If the poll panics, the request's
    /// end is published (as [`finish_panicked`](Self::finish_panicked))
    /// before the panic continues, whoever catches it later and whenever
    /// they drop the future (tower-http's `CatchPanic` drops it after the
    /// unwinding is over, when a drop guard can no longer tell).
    pub fn poll_recording_panics<T>(
        trace: &mut Option<RequestRecording>,
        poll: impl FnOnce() -> T,
    ) -> T {
        let caught = match trace.as_mut() {
            // The context is back in the recording before the panic is
            // caught: `finish_panicked` below needs it.
            Some(recording) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                context::with_context_in(&mut recording.ctx, poll)
            })),
            None => std::panic::catch_unwind(std::panic::AssertUnwindSafe(poll)),
        };
        match caught {
            Ok(ready) => ready,
            Err(payload) => {
                if let Some(mut trace) = trace.take() {
                    trace.finish_panicked();
                }
                std::panic::resume_unwind(payload)
            }
        }
    }

    /// Has `request.end` been published?
    pub fn is_finished(&self) -> bool {
        self.ended
    }
}

impl Drop for RequestRecording {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        if std::thread::panicking() {
            self.finish_panicked();
        } else {
            let status = if self.status == 0 {
                STATUS_CLIENT_CLOSED
            } else {
                self.status
            };
            self.end(status, Text::from_static("client disconnected"), |meta| {
                meta.insert("aborted", true);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexus_trace_core::Subscription;

    fn info<'a>(traceparent: Option<&'a [u8]>) -> RequestInfo<'a> {
        RequestInfo {
            method: "GET",
            path: "/users/7",
            query: Some("token=abc&page=2"),
            route: Some("/users/{id}"),
            traceparent,
            tracestate: None,
        }
    }

    fn all(sub: &mut Subscription) -> Vec<std::sync::Arc<nexus_trace_core::Event>> {
        std::iter::from_fn(|| sub.try_recv().ok()).collect()
    }

    #[test]
    fn start_and_one_end() {
        let bus = Bus::new(16);
        let mut sub = bus.subscribe(0);
        let config = TraceConfig {
            service: "users".into(),
            ..TraceConfig::default()
        };
        let mut t = RequestRecording::start(&bus, &config, info(None));
        t.set_status(200);
        t.finish(Outcome::Completed { status: 200 });
        t.finish(Outcome::Completed { status: 500 });
        drop(t);
        let ev = all(&mut sub);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].kind(), EventKind::RequestStart);
        assert_eq!(ev[1].kind(), EventKind::RequestEnd);
        assert_eq!(ev[1].status, 200);
        assert_eq!(ev[0].trace_id, ev[1].trace_id);
        assert_eq!(ev[0].endpoint, "/users/{id}");
        assert_eq!(ev[0].path, "/users/7");
        assert_eq!(ev[0].transport, "http");
        assert!(ev[0].attrs.is_empty(), "no query by default");
        assert!(ev[0].trace_id.id().is_some());
        assert_eq!(ev[0].method(), Some(Method::Get));
        // One clock read each: the end is the start plus the duration, and
        // a fresh trace id's timestamp is the start.
        assert_eq!(ev[1].timestamp, ev[0].timestamp + ev[1].duration());
        let millis = ev[0]
            .timestamp
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let id = ev[0].trace_id.id().unwrap().to_bytes();
        assert_eq!(id[..6], millis.to_be_bytes()[2..]);
    }

    #[test]
    fn drop_without_finish_is_an_aborted_end() {
        let bus = Bus::new(16);
        let mut sub = bus.subscribe(0);
        drop(RequestRecording::start(
            &bus,
            &TraceConfig::default(),
            info(None),
        ));
        let ev = all(&mut sub);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[1].status, STATUS_CLIENT_CLOSED);
        assert_eq!(ev[1].attrs["aborted"], true);
    }

    #[test]
    fn panic_while_in_flight_is_a_500_end() {
        let bus = Bus::new(16);
        let mut sub = bus.subscribe(0);
        let b = bus.clone();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _t = RequestRecording::start(&b, &TraceConfig::default(), info(None));
            panic!("boom");
        }));
        assert!(r.is_err());
        let ev = all(&mut sub);
        assert_eq!(
            (ev[1].status, ev[1].error.as_str()),
            (500, "handler panicked")
        );
    }

    #[test]
    fn traceparent_continues_the_trace_and_bad_ones_are_ignored() {
        let bus = Bus::new(16);
        let mut sub = bus.subscribe(0);
        let tp = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut t = RequestRecording::start(&bus, &TraceConfig::default(), info(Some(tp)));
        assert_eq!(&t.trace_id_hex(), b"4bf92f3577b34da6a3ce929d0e0e4736");
        t.finish(Outcome::Completed { status: 200 });
        let ev = all(&mut sub);
        assert_eq!(ev[0].parent_id, "00f067aa0ba902b7");
        for bad in [&b"garbage"[..], b"\xff\xfe", &[b'0'; 70000][..]] {
            let t = RequestRecording::start(&bus, &TraceConfig::default(), info(Some(bad)));
            assert_ne!(&t.trace_id_hex(), b"4bf92f3577b34da6a3ce929d0e0e4736");
        }
    }

    #[test]
    fn query_capture_is_opt_in_and_redacted() {
        let bus = Bus::new(16);
        let mut sub = bus.subscribe(0);
        let config = TraceConfig {
            capture_query: true,
            ..TraceConfig::default()
        };
        drop(RequestRecording::start(&bus, &config, info(None)));
        let ev = all(&mut sub);
        let q = ev[0].attrs["query"].as_str().unwrap();
        assert!(q.contains("page=2") && !q.contains("abc"), "{q}");
    }
}
