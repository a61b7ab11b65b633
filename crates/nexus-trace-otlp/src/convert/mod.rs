//! Bus events to OTLP spans.
//!
//! The [`Assembler`] turns the bus's event stream into finished spans:
//! `request.start` (or a child span's `span.start`) opens a pending span,
//! `log` events become span events on the pending span their `spanId`
//! names, `request.end` closes a request into a SERVER span, `downstream`
//! into a CLIENT span and `span.end` into an INTERNAL span. Parents are the
//! events' `parentId`s, so the exported spans form the same tree as
//! `/__nexus/traces/{id}`. The protobuf pieces are in [`proto`].

mod proto;

pub(crate) use proto::request;
use proto::{
    attr_value, duration_nanos, error_status, key, kv, parent_span_id, server_name, span_kind,
    string, unix_nanos,
};

use std::collections::{BTreeMap, HashMap};

use nexus_trace_core::{Event, EventKind, SpanId};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::{Event as SpanEvent, SpanKind};
use opentelemetry_proto::tonic::trace::v1::Span;

/// The most span events (logs) kept per request span; more are counted in
/// the span's `dropped_events_count`.
pub(crate) const MAX_EVENTS_PER_SPAN: usize = 128;

/// A finished span and the service it belongs to.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) service: String,
    pub(crate) span: Span,
}

/// What the assembler noticed besides finished spans, for the counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Noted {
    /// Open requests forgotten to stay within `max_pending`.
    pub(crate) evicted: u64,
    /// Spans that could not be made: unparsable trace or span ids.
    pub(crate) invalid: u64,
    /// Log events of a trace that could not be attached to an open request.
    pub(crate) logs_unattached: u64,
}

pub(crate) type Key = ([u8; 16], [u8; 8]);

#[derive(Debug)]
struct Pending {
    seq: u64,
    start_ns: u64,
    events: Vec<SpanEvent>,
    dropped_events: u32,
}

/// Matches `request.start` / `request.end` pairs, within a bounded number of
/// open requests.
#[derive(Debug)]
pub(crate) struct Assembler {
    pending: HashMap<Key, Pending>,
    /// Open requests by age (`seq`), for evicting the oldest.
    order: BTreeMap<u64, Key>,
    next_seq: u64,
    max_pending: usize,
}

impl Assembler {
    pub(crate) fn new(max_pending: usize) -> Assembler {
        Assembler {
            pending: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            max_pending,
        }
    }

    /// Requests started and not yet ended.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Feeds one bus event; returns the span it finished, if any.
    pub(crate) fn on_event(&mut self, ev: &Event, noted: &mut Noted) -> Option<Item> {
        match ev.kind() {
            EventKind::RequestStart => {
                self.start(ev, noted);
                None
            }
            EventKind::RequestEnd => {
                let span = self.end(ev);
                if span.is_none() {
                    noted.invalid += 1;
                }
                span
            }
            EventKind::SpanStart => {
                // A child span opened: like a request, it collects the logs
                // made inside it until its end event arrives.
                self.start(ev, noted);
                None
            }
            EventKind::Downstream | EventKind::SpanEnd => {
                let pending = key(ev).and_then(|k| self.pending.remove(&k));
                if let Some(p) = &pending {
                    self.order.remove(&p.seq);
                }
                let span = child(ev, pending);
                if span.is_none() {
                    noted.invalid += 1;
                }
                span
            }
            EventKind::Log => {
                self.log(ev, noted);
                None
            }
            EventKind::Other(_) => None,
        }
    }

    fn start(&mut self, ev: &Event, noted: &mut Noted) {
        let Some(key) = key(ev) else { return };
        let seq = self.next_seq;
        self.next_seq += 1;
        let pending = Pending {
            seq,
            start_ns: unix_nanos(ev.timestamp),
            events: Vec::new(),
            dropped_events: 0,
        };
        if let Some(old) = self.pending.insert(key, pending) {
            self.order.remove(&old.seq);
        }
        self.order.insert(seq, key);
        while self.pending.len() > self.max_pending {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(p) = self.pending.remove(&oldest) {
                noted.evicted += 1;
                noted.logs_unattached += p.events.len() as u64;
            }
        }
    }

    fn end(&mut self, ev: &Event) -> Option<Item> {
        let key = key(ev)?;
        let pending = self.pending.remove(&key);
        if let Some(p) = &pending {
            self.order.remove(&p.seq);
        }
        let duration = duration_nanos(ev);
        let end_ts = unix_nanos(ev.timestamp);
        let start_ns = match &pending {
            Some(p) => p.start_ns,
            // The start was never seen (the exporter started mid-request, or
            // it was evicted): the end event carries everything else.
            None => end_ts.saturating_sub(duration),
        };
        let end_ns = if duration > 0 {
            start_ns.saturating_add(duration)
        } else {
            end_ts.max(start_ns)
        };

        let method = ev.method_str();
        let mut attributes = Vec::with_capacity(5 + ev.attrs.len());
        if !method.is_empty() {
            attributes.push(kv("http.request.method", string(method)));
        }
        if !ev.path.is_empty() {
            attributes.push(kv("url.path", string(&ev.path)));
        }
        if !ev.endpoint.is_empty() {
            attributes.push(kv("http.route", string(&ev.endpoint)));
        }
        if ev.status != 0 {
            attributes.push(kv(
                "http.response.status_code",
                Any::IntValue(i64::from(ev.status)),
            ));
        }
        let failed = ev.status >= 500 || !ev.error.is_empty();
        if failed {
            let error_type = if ev.status >= 500 {
                ev.status.to_string()
            } else {
                "_OTHER".to_owned()
            };
            attributes.push(kv("error.type", Any::StringValue(error_type)));
        }
        for (k, v) in &ev.attrs {
            let key = if k == "query" {
                "url.query"
            } else {
                k.as_str()
            };
            if let Some(v) = attr_value(v) {
                attributes.push(kv(key, v));
            }
        }
        let (events, dropped_events_count) = match pending {
            Some(p) => (p.events, p.dropped_events),
            None => (Vec::new(), 0),
        };
        let status = if failed {
            let message = if ev.error.is_empty() {
                format!("HTTP {}", ev.status)
            } else {
                ev.error.to_string()
            };
            error_status(message)
        } else {
            None
        };
        Some(Item {
            service: ev.service.to_string(),
            span: Span {
                trace_id: key.0.to_vec(),
                span_id: key.1.to_vec(),
                parent_span_id: parent_span_id(ev),
                name: server_name(method, &ev.endpoint),
                kind: SpanKind::Server as i32,
                start_time_unix_nano: start_ns,
                end_time_unix_nano: end_ns,
                attributes,
                events,
                dropped_events_count,
                status,
                ..Span::default()
            },
        })
    }

    fn log(&mut self, ev: &Event, noted: &mut Noted) {
        if ev.trace_id.is_empty() {
            return; // not part of any trace
        }
        let Some(p) = key(ev).and_then(|k| self.pending.get_mut(&k)) else {
            noted.logs_unattached += 1;
            return;
        };
        if p.events.len() >= MAX_EVENTS_PER_SPAN {
            p.dropped_events = p.dropped_events.saturating_add(1);
            return;
        }
        let mut attributes: Vec<KeyValue> = ev
            .attrs
            .iter()
            .filter_map(|(k, v)| attr_value(v).map(|v| kv(k, v)))
            .collect();
        if !ev.error.is_empty() {
            attributes.push(kv("error", string(&ev.error)));
        }
        p.events.push(SpanEvent {
            time_unix_nano: unix_nanos(ev.timestamp),
            name: if ev.message.is_empty() {
                "log".to_owned()
            } else {
                ev.message.to_string()
            },
            attributes,
            dropped_attributes_count: 0,
        });
    }
}

/// A `downstream` event (a CLIENT span, stamped at its start) or a
/// `span.end` event (an INTERNAL span, stamped at its end) as a finished
/// child span, with the logs collected since its `span.start`, if any.
fn child(ev: &Event, pending: Option<Pending>) -> Option<Item> {
    let trace_id = ev.trace_id.id()?.to_bytes();
    let own = ev.span_id.id().unwrap_or_else(SpanId::random).to_bytes();
    let duration = duration_nanos(ev);
    let (mut kind, start_ns) = match ev.kind() {
        EventKind::SpanEnd => (
            SpanKind::Internal,
            unix_nanos(ev.timestamp).saturating_sub(duration),
        ),
        _ => (SpanKind::Client, unix_nanos(ev.timestamp)),
    };
    let (events, dropped_events_count) = match pending {
        Some(p) => (p.events, p.dropped_events),
        None => (Vec::new(), 0),
    };
    let mut attributes = Vec::with_capacity(ev.attrs.len());
    for (k, v) in &ev.attrs {
        if k == "otel.kind" {
            kind = v.as_str().and_then(span_kind).unwrap_or(kind);
            continue;
        }
        if let Some(v) = attr_value(v) {
            attributes.push(kv(k, v));
        }
    }
    Some(Item {
        service: ev.service.to_string(),
        span: Span {
            trace_id: trace_id.to_vec(),
            span_id: own.to_vec(),
            parent_span_id: parent_span_id(ev),
            name: if ev.message.is_empty() {
                "downstream".to_owned()
            } else {
                ev.message.to_string()
            },
            kind: kind as i32,
            start_time_unix_nano: start_ns,
            end_time_unix_nano: start_ns.saturating_add(duration),
            attributes,
            events,
            dropped_events_count,
            status: if ev.error.is_empty() {
                None
            } else {
                error_status(ev.error.to_string())
            },
            ..Span::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::proto::any;
    use super::*;
    use nexus_trace_core::Bus;
    use nexus_trace_http::record::request::{Outcome, RequestInfo, RequestRecording, TraceConfig};
    use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
    use serde_json::json;

    fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Any> {
        attrs
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    fn drain(bus: &Bus, since: u64, asm: &mut Assembler, noted: &mut Noted) -> Vec<Item> {
        let mut sub = bus.subscribe(since);
        std::iter::from_fn(|| sub.try_recv().ok())
            .filter_map(|ev| asm.on_event(&ev, noted))
            .collect()
    }

    fn request_info(tp: Option<&[u8]>) -> RequestInfo<'_> {
        RequestInfo {
            tracestate: None,
            method: "GET",
            path: "/users/7",
            query: Some("page=2"),
            route: Some("/users/{id}"),
            traceparent: tp,
        }
    }

    #[test]
    fn request_with_children_and_logs() {
        let bus = Bus::new(64);
        let config = TraceConfig {
            service: "shop".into(),
            capture_query: true,
            ..TraceConfig::default()
        };
        let tp = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut t = RequestRecording::start(&bus, &config, request_info(Some(tp)));
        let ctx = t
            .context()
            .expect("a recording outside a poll has its context")
            .clone();
        ctx.log("hello");
        ctx.record("db.users.get", std::time::Instant::now(), Some(&"locked"));
        t.finish(Outcome::Completed { status: 503 });

        let mut asm = Assembler::new(16);
        let mut noted = Noted::default();
        let items = drain(&bus, 0, &mut asm, &mut noted);
        assert_eq!(noted, Noted::default());
        assert_eq!(items.len(), 2);
        let (child, server) = (&items[0].span, &items[1].span);
        assert_eq!(items[1].service, "shop");
        assert_eq!(server.name, "GET /users/{id}");
        assert_eq!(server.kind, SpanKind::Server as i32);
        assert_eq!(server.trace_id, ctx.trace_id().to_bytes());
        assert_eq!(server.span_id, ctx.span().span_id.to_bytes());
        assert_eq!(
            server.parent_span_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(child.parent_span_id, server.span_id);
        assert_eq!(child.trace_id, server.trace_id);
        assert_eq!(child.name, "db.users.get");
        assert_eq!(child.kind, SpanKind::Client as i32);
        assert_eq!(child.status.as_ref().unwrap().message, "locked");
        assert!(server.end_time_unix_nano >= server.start_time_unix_nano);
        assert!(server.start_time_unix_nano > 0);
        let a = &server.attributes;
        assert_eq!(attr(a, "http.request.method"), Some(&string("GET")));
        assert_eq!(attr(a, "url.path"), Some(&string("/users/7")));
        assert_eq!(attr(a, "http.route"), Some(&string("/users/{id}")));
        assert_eq!(attr(a, "url.query"), Some(&string("page=2")));
        assert_eq!(
            attr(a, "http.response.status_code"),
            Some(&Any::IntValue(503))
        );
        let status = server.status.as_ref().unwrap();
        assert_eq!(status.code, StatusCode::Error as i32);
        assert_eq!(status.message, "HTTP 503");
        assert_eq!(server.events.len(), 1);
        assert_eq!(server.events[0].name, "hello");
        assert_eq!(asm.pending(), 0);
    }

    #[test]
    fn end_without_start_still_makes_a_span() {
        let bus = Bus::new(64);
        let mut t = RequestRecording::start(&bus, &TraceConfig::default(), request_info(None));
        let since = bus.last_id();
        t.finish(Outcome::Completed { status: 404 });
        let mut asm = Assembler::new(16);
        let mut noted = Noted::default();
        let items = drain(&bus, since, &mut asm, &mut noted);
        assert_eq!(items.len(), 1);
        let s = &items[0].span;
        assert!(s.status.is_none(), "4xx is not a server error");
        assert!(s.parent_span_id.is_empty());
        assert!(s.start_time_unix_nano <= s.end_time_unix_nano);
    }

    #[test]
    fn pending_is_bounded_and_evictions_are_noted() {
        let bus = Bus::new(64);
        let traces: Vec<_> = (0..5)
            .map(|_| RequestRecording::start(&bus, &TraceConfig::default(), request_info(None)))
            .collect();
        for t in &traces {
            t.context()
                .expect("a recording outside a poll has its context")
                .log("x");
        }
        let mut asm = Assembler::new(2);
        let mut noted = Noted::default();
        assert!(drain(&bus, 0, &mut asm, &mut noted).is_empty());
        assert_eq!(asm.pending(), 2);
        assert_eq!(noted.evicted, 3);
        // Logs of the 3 evicted requests found no open span.
        assert_eq!(noted.logs_unattached, 3);
    }

    #[test]
    fn invalid_ids_and_kinds() {
        let mut asm = Assembler::new(2);
        let mut noted = Noted::default();
        let mut ev = Event::new(EventKind::Downstream);
        ev.trace_id = "not-hex".into();
        assert!(asm.on_event(&ev, &mut noted).is_none());
        ev.set_kind(EventKind::RequestEnd);
        assert!(asm.on_event(&ev, &mut noted).is_none());
        assert_eq!(noted.invalid, 2);
        ev.set_kind("custom");
        assert!(asm.on_event(&ev, &mut noted).is_none());
        // A downstream event without a span id (Go-shaped) gets a fresh one.
        let mut ev = Event::new(EventKind::Downstream);
        ev.trace_id = nexus_trace_core::TraceId::random().into();
        ev.attrs.insert("otel.kind", "internal");
        ev.attrs.insert("rows", 3);
        let item = asm.on_event(&ev, &mut noted).unwrap();
        assert_eq!(item.span.span_id.len(), 8);
        assert_eq!(item.span.kind, SpanKind::Internal as i32);
        assert_eq!(item.span.name, "downstream");
        assert_eq!(attr(&item.span.attributes, "rows"), Some(&Any::IntValue(3)));
        assert!(attr(&item.span.attributes, "otel.kind").is_none());
    }

    #[test]
    fn names_and_values() {
        assert_eq!(server_name("GET", "/a"), "GET /a");
        assert_eq!(server_name("GET", "GET /a"), "GET /a");
        assert_eq!(server_name("GET", "GETTER"), "GET GETTER");
        assert_eq!(server_name("", "/a"), "/a");
        assert_eq!(server_name("GET", ""), "GET");
        assert_eq!(server_name("", ""), "request");
        assert_eq!(any(&json!(null)), None);
        assert_eq!(any(&json!(1.5)), Some(Any::DoubleValue(1.5)));
        assert_eq!(
            any(&json!(u64::MAX)),
            Some(Any::DoubleValue(u64::MAX as f64))
        );
        let Some(Any::KvlistValue(l)) = any(&json!({"a": [1, null, "x"]})) else {
            panic!("object")
        };
        let Some(Any::ArrayValue(arr)) = l.values[0].value.clone().and_then(|v| v.value) else {
            panic!("array")
        };
        assert_eq!(arr.values.len(), 2);
    }

    #[test]
    fn grouped_per_service() {
        let item = |service: &str| Item {
            service: service.into(),
            span: Span::default(),
        };
        let req = request(vec![item("a"), item("b"), item("a"), item("")]);
        let names: Vec<_> = req
            .resource_spans
            .iter()
            .map(|rs| {
                let r = rs.resource.as_ref().unwrap();
                (
                    attr(&r.attributes, "service.name").cloned(),
                    rs.scope_spans[0].spans.len(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                (Some(string("a")), 2),
                (Some(string("b")), 1),
                (Some(string("unknown_service")), 1)
            ]
        );
    }
}
