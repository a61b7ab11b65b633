//! One HTTP request's lifecycle, independent of the web framework: the
//! `request.start` event, the request context, and exactly one `request.end`
//! however the request finishes (response body completed, handler error,
//! panic, client gone).

use std::time::SystemTime;

use crate::context::{Span, TraceContext};
use crate::event::{Attrs, Kind, Method, Text};
use crate::traceparent::TraceParent;
use crate::web::redact;
use crate::Bus;

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
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            service: Text::EMPTY,
            transport: Text::from_static("http"),
            endpoint: None,
            capture_query: false,
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
/// and exactly one `request.end`: through [`finish`](RequestTrace::finish),
/// or from `Drop` when the request future or response body is dropped early
/// (client disconnect, marked `aborted`) or unwinds (handler panic).
#[derive(Debug)]
pub struct RequestTrace {
    ctx: TraceContext,
    /// The fields `request.start` and `request.end` share; the start event
    /// is a clone, the end event takes it.
    /// Boxed: the trace lives inside request futures and bodies, which
    /// move; a pointer moves cheaper than an event.
    template: Box<crate::Event>,
    /// Response status once headers exist; 0 before.
    status: u16,
    ended: bool,
}

impl RequestTrace {
    /// Starts tracing a request: builds its span (continuing a valid incoming
    /// `traceparent`, else a fresh W3C trace id) and publishes `request.start`.
    pub fn start(bus: &Bus, config: &TraceConfig, req: RequestInfo<'_>) -> RequestTrace {
        let endpoint = match (&config.endpoint, req.route) {
            (Some(fixed), _) => fixed.clone(),
            (None, Some(route)) => redact::capture_path(route),
            // No route matched (404s, or a layer outside the router): the
            // path itself, capped, so the endpoint is never empty.
            (None, None) => redact::capture_path(req.path),
        };
        let mut span = Span::new(config.service.clone(), endpoint);
        if let Some(parent) = req
            .traceparent
            .and_then(|raw| std::str::from_utf8(raw).ok())
            .and_then(|s| TraceParent::parse(s).ok())
        {
            span = span.with_parent(&parent);
        }
        let mut template = span.event(Kind::RequestStart);
        let ctx = TraceContext::new(bus.clone(), span);
        template.transport = config.transport.clone();
        template.method = Some(match req.method {
            m if m.len() <= MAX_METHOD => Method::parse(m),
            m => Method::Other(redact::capture(m, MAX_METHOD)),
        });
        template.path = redact::capture_path(req.path);
        if let (true, Some(q)) = (config.capture_query, req.query) {
            if !q.is_empty() {
                template.attrs.insert("query", redact::redact_query(q));
            }
        }
        let mut start = template.clone();
        let template = Box::new(template);
        start.timestamp = ctx.span().started_at;
        ctx.publish(start);
        RequestTrace {
            ctx,
            template,
            status: 0,
            ended: false,
        }
    }

    /// The request's context (for the extractor and `current()`).
    pub fn context(&self) -> &TraceContext {
        &self.ctx
    }

    /// The trace id to echo in the response header.
    pub fn trace_id_header(&self) -> String {
        self.ctx.trace_id().to_string()
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
        let (status, error, body_failed) = match outcome {
            // A 5xx without a known cause still says that it failed.
            Outcome::Completed { status } if status >= 500 => {
                (status, format!("HTTP {status}"), false)
            }
            Outcome::Completed { status } => (status, String::new(), false),
            Outcome::Failed { status, error } => (status, error, false),
            Outcome::BodyFailed { status, error } => (status, error, true),
        };
        self.end(status, error, |meta| {
            if body_failed {
                meta.insert("bodyError", true);
            }
        });
    }

    fn end(&mut self, status: u16, error: String, meta: impl FnOnce(&mut Attrs)) {
        if self.ended {
            return;
        }
        self.ended = true;
        let mut event = std::mem::take(&mut *self.template);
        event.kind = Kind::RequestEnd;
        event.status = status;
        event.error = redact::capture(&error, redact::MAX_FIELD);
        event.set_duration(self.ctx.span().start.elapsed());
        event.timestamp = SystemTime::now();
        meta(&mut event.attrs);
        self.ctx.publish(event);
    }

    /// Ends the request when its response body is done: `error` is `None`
    /// when the body was sent completely. Used by the adapters' body
    /// wrappers, which hold the trace in an `Option` and give it up here.
    pub fn finish_body(trace: &mut Option<RequestTrace>, error: Option<String>) {
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
        self.end(500, "handler panicked".into(), |meta| {
            meta.insert("panic", true);
        });
    }

    /// Runs one poll of the request's future. If it panics, the request's
    /// end is published (as [`finish_panicked`](Self::finish_panicked))
    /// before the panic continues, whoever catches it later and whenever
    /// they drop the future (tower-http's `CatchPanic` drops it after the
    /// unwinding is over, when a drop guard can no longer tell).
    pub fn poll_recording_panics<T>(
        trace: &mut Option<RequestTrace>,
        poll: impl FnOnce() -> T,
    ) -> T {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(poll)) {
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

impl Drop for RequestTrace {
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
            self.end(status, "client disconnected".into(), |meta| {
                meta.insert("aborted", true);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Subscription;

    fn info<'a>(traceparent: Option<&'a [u8]>) -> RequestInfo<'a> {
        RequestInfo {
            method: "GET",
            path: "/users/7",
            query: Some("token=abc&page=2"),
            route: Some("/users/{id}"),
            traceparent,
        }
    }

    fn all(sub: &mut Subscription) -> Vec<std::sync::Arc<crate::Event>> {
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
        let mut t = RequestTrace::start(&bus, &config, info(None));
        t.set_status(200);
        t.finish(Outcome::Completed { status: 200 });
        t.finish(Outcome::Completed { status: 500 });
        drop(t);
        let ev = all(&mut sub);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].kind, Kind::RequestStart);
        assert_eq!(ev[1].kind, Kind::RequestEnd);
        assert_eq!(ev[1].status, 200);
        assert_eq!(ev[0].trace_id, ev[1].trace_id);
        assert_eq!(ev[0].endpoint, "/users/{id}");
        assert_eq!(ev[0].path, "/users/7");
        assert_eq!(ev[0].transport, "http");
        assert!(ev[0].attrs.is_empty(), "no query by default");
        assert!(ev[0].trace_id.id().is_some());
        assert_eq!(ev[0].method, Some(Method::Get));
    }

    #[test]
    fn drop_without_finish_is_an_aborted_end() {
        let bus = Bus::new(16);
        let mut sub = bus.subscribe(0);
        drop(RequestTrace::start(
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
            let _t = RequestTrace::start(&b, &TraceConfig::default(), info(None));
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
        let mut t = RequestTrace::start(&bus, &TraceConfig::default(), info(Some(tp)));
        assert_eq!(t.trace_id_header(), "4bf92f3577b34da6a3ce929d0e0e4736");
        t.finish(Outcome::Completed { status: 200 });
        let ev = all(&mut sub);
        assert_eq!(ev[0].parent_id, "00f067aa0ba902b7");
        for bad in [&b"garbage"[..], b"\xff\xfe", &[b'0'; 70000][..]] {
            let t = RequestTrace::start(&bus, &TraceConfig::default(), info(Some(bad)));
            assert_ne!(t.trace_id_header(), "4bf92f3577b34da6a3ce929d0e0e4736");
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
        drop(RequestTrace::start(&bus, &config, info(None)));
        let ev = all(&mut sub);
        let q = ev[0].attrs["query"].as_str().unwrap();
        assert!(q.contains("page=2") && !q.contains("abc"), "{q}");
    }
}
