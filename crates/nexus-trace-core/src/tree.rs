//! A trace's span tree, rebuilt from its events.
//!
//! [`TraceTree::build`] is a pure function of a set of one trace's events
//! (in any order, with pieces missing), so the `/__nexus/traces/{id}`
//! endpoint, an exporter and a test can all use it.
//!
//! # How events make spans
//!
//! | event | span |
//! |---|---|
//! | `request.start` | a SERVER span starts at `timestamp`; its name is the endpoint (else method and path) |
//! | `request.end` | the SERVER span ends at `timestamp`; status, error |
//! | `span.start` | a child span starts at `timestamp`; CLIENT if it has the attribute `span.kind = "client"`, else INTERNAL; its name is the message |
//! | `span.end` | an INTERNAL span ends at `timestamp` |
//! | `downstream` | a CLIENT span that started at `timestamp` and took `durationNs` (or `durationMs`) |
//! | `log` | a log line on the span named by its `spanId` |
//!
//! Events are matched by `spanId`; a span's parent is its `parentId`. A
//! span whose parent is not among the events (evicted from the ring, or
//! from a service that is not traced) becomes a root and is marked
//! `orphan`. A span with a start and no end is `running`; its duration is
//! the time up to `now`. An end whose start is missing starts at
//! `timestamp - duration`. Events without a `spanId` (a Go service sends
//! none) and logs on unknown spans are counted as `loose`.
//!
//! The spans come out in depth-first order, each followed by its children
//! sorted by start time: the order a waterfall draws them in.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value as Json};

use crate::context::{SpanKind, SPAN_KIND_ATTR};
use crate::event::{Attrs, Event, EventKind, Method, Text, WireId};
use crate::traceparent::{SpanId, TraceId};

/// What a span in a tree is, as OpenTelemetry calls it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// A request a service received (`request.start` / `request.end`).
    Server,
    /// A call out to another service or dependency.
    Client,
    /// Work inside a service.
    Internal,
}

impl NodeKind {
    /// `"server"`, `"client"` or `"internal"`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Server => "server",
            NodeKind::Client => "client",
            NodeKind::Internal => "internal",
        }
    }
}

impl From<SpanKind> for NodeKind {
    fn from(kind: SpanKind) -> NodeKind {
        match kind {
            SpanKind::Internal => NodeKind::Internal,
            SpanKind::Client => NodeKind::Client,
        }
    }
}

/// A log line attached to a span.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanLog {
    /// The log event's id on the bus.
    pub event_id: u64,
    /// When it was logged.
    pub at: SystemTime,
    /// Its message.
    pub message: Text,
    /// Its error text, empty when none.
    pub error: Text,
}

/// One span of a [`TraceTree`].
#[derive(Clone, Debug, PartialEq)]
pub struct SpanNode {
    /// The span's id.
    pub span_id: WireId<SpanId>,
    /// Its parent's id as the events say (unset for a root).
    pub parent_id: WireId<SpanId>,
    /// The endpoint of a server span, the call or span name of a child.
    pub name: Text,
    /// Server, client or internal.
    pub kind: NodeKind,
    /// The service that emitted the span.
    pub service: Text,
    /// A server span's method, if recorded.
    pub method: Option<Method>,
    /// A server span's path, if recorded.
    pub path: Text,
    /// When the span started.
    pub start: SystemTime,
    /// How long it took; for a running span, the time up to `now`.
    pub duration: Duration,
    /// Whether the span has started and not ended.
    pub running: bool,
    /// Whether its parent is set but not among the events (so it is shown
    /// as a root).
    pub orphan: bool,
    /// Depth in the tree: 0 for a root.
    pub depth: usize,
    /// A server span's response status; 0 when unset.
    pub status: u16,
    /// Error text, empty when the span succeeded.
    pub error: Text,
    /// Attributes from the span's start and end events.
    pub attrs: Attrs,
    /// Log lines on this span, in event order.
    pub logs: Vec<SpanLog>,
    /// The ids of the events this span was built from, ascending.
    pub event_ids: Vec<u64>,
}

/// A trace's spans, in waterfall order. See the [module docs](self).
#[derive(Clone, Debug, PartialEq)]
pub struct TraceTree {
    /// The trace's id.
    pub trace_id: WireId<TraceId>,
    /// The earliest span start (the offsets' origin), or the earliest event
    /// if there are no spans.
    pub start: SystemTime,
    /// The spans, depth first, children by start time.
    pub spans: Vec<SpanNode>,
    /// Ids of the events that belong to no span.
    pub loose: Vec<u64>,
}

#[derive(Default)]
struct Building {
    first: Option<usize>,
    start: Option<SystemTime>,
    end: Option<SystemTime>,
    duration: Option<Duration>,
    kind: Option<NodeKind>,
    name: Text,
    service: Text,
    parent_id: WireId<SpanId>,
    method: Option<Method>,
    path: Text,
    status: u16,
    error: Text,
    attrs: Attrs,
    event_ids: Vec<u64>,
}

fn duration_of(event: &Event) -> Option<Duration> {
    if event.duration_ns > 0 {
        Some(Duration::from_nanos(event.duration_ns))
    } else if event.duration_ms > 0 {
        Some(Duration::from_millis(event.duration_ms))
    } else {
        None
    }
}

impl TraceTree {
    /// Builds the tree of trace `trace_id` from `events`; events of other
    /// traces are ignored. `now` is the end of spans still running.
    /// Returns `None` when no event belongs to the trace.
    pub fn build<'a>(
        trace_id: &WireId<TraceId>,
        events: impl IntoIterator<Item = &'a Event>,
        now: SystemTime,
    ) -> Option<TraceTree> {
        let mut events: Vec<&Event> = events
            .into_iter()
            .filter(|e| &e.trace_id == trace_id)
            .collect();
        if events.is_empty() {
            return None;
        }
        events.sort_by_key(|e| e.id);

        let mut index: HashMap<&WireId<SpanId>, usize> = HashMap::new();
        let mut nodes: Vec<(WireId<SpanId>, Building)> = Vec::new();
        let mut loose = Vec::new();
        let mut logs: Vec<&Event> = Vec::new();
        for (pos, event) in events.iter().enumerate() {
            if event.kind() == EventKind::Log {
                logs.push(event);
                continue;
            }
            let spanful = matches!(
                event.kind(),
                EventKind::RequestStart
                    | EventKind::RequestEnd
                    | EventKind::SpanStart
                    | EventKind::SpanEnd
                    | EventKind::Downstream
            );
            if !spanful || event.span_id.is_empty() {
                loose.push(event.id);
                continue;
            }
            let at = *index.entry(&event.span_id).or_insert_with(|| {
                nodes.push((event.span_id.clone(), Building::default()));
                nodes.len() - 1
            });
            let node = &mut nodes[at].1;
            node.absorb(event, pos);
        }

        let mut built: Vec<SpanNode> = nodes
            .into_iter()
            .map(|(span_id, b)| b.finish(span_id, now))
            .collect();
        let by_id: HashMap<WireId<SpanId>, usize> = built
            .iter()
            .enumerate()
            .map(|(i, n)| (n.span_id.clone(), i))
            .collect();

        for log in logs {
            match by_id.get(&log.span_id) {
                Some(&i) if !log.span_id.is_empty() => {
                    built[i].logs.push(SpanLog {
                        event_id: log.id,
                        at: log.timestamp,
                        message: log.message.clone(),
                        error: log.error.clone(),
                    });
                }
                _ => loose.push(log.id),
            }
        }
        loose.sort_unstable();

        // Parent links that resolve; the rest are roots (orphans when a
        // parent was named).
        let parent_of: Vec<Option<usize>> = built
            .iter()
            .enumerate()
            .map(|(i, n)| {
                by_id
                    .get(&n.parent_id)
                    .copied()
                    .filter(|&p| p != i && !n.parent_id.is_empty())
            })
            .collect();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); built.len()];
        for (i, parent) in parent_of.iter().enumerate() {
            if let Some(p) = parent {
                children[*p].push(i);
            }
        }
        let order_key = |i: &usize| (built[*i].start, built[*i].event_ids.first().copied());
        for list in &mut children {
            list.sort_by_key(order_key);
        }
        let mut roots: Vec<usize> = (0..built.len())
            .filter(|&i| parent_of[i].is_none())
            .collect();
        roots.sort_by_key(order_key);

        let mut visited = vec![false; built.len()];
        let mut order: Vec<(usize, usize)> = Vec::with_capacity(built.len());
        let walk = |root: usize, order: &mut Vec<(usize, usize)>, visited: &mut Vec<bool>| {
            let mut stack = vec![(root, 0usize)];
            while let Some((i, depth)) = stack.pop() {
                if std::mem::replace(&mut visited[i], true) {
                    continue;
                }
                order.push((i, depth));
                for &c in children[i].iter().rev() {
                    stack.push((c, depth + 1));
                }
            }
        };
        for &r in &roots {
            walk(r, &mut order, &mut visited);
        }
        // Spans on a parent cycle (only malformed input makes one), and the
        // spans below them, are not reachable from a root: break each cycle
        // at its earliest member, so the spans hanging off it stay under it.
        let mut rest: Vec<usize> = (0..built.len()).filter(|&i| !visited[i]).collect();
        rest.sort_by_key(order_key);
        let mut broken = Vec::new();
        // The walk (by its starting span) that last passed each span.
        let mut passed: Vec<Option<usize>> = vec![None; built.len()];
        for i in rest {
            if visited[i] {
                continue;
            }
            // Every unvisited span has a parent, and so does each unvisited
            // ancestor (a visited one would have visited its subtree): going
            // up from `i` must come back to a span already passed, which is
            // on the cycle.
            let mut on_cycle = i;
            while passed[on_cycle] != Some(i) {
                passed[on_cycle] = Some(i);
                match parent_of[on_cycle] {
                    Some(p) => on_cycle = p,
                    None => break,
                }
            }
            let mut head = on_cycle;
            let mut member = parent_of[on_cycle];
            while let Some(m) = member.filter(|&m| m != on_cycle) {
                if order_key(&m) < order_key(&head) {
                    head = m;
                }
                member = parent_of[m];
            }
            broken.push(head);
            walk(head, &mut order, &mut visited);
        }

        let start = built
            .iter()
            .map(|n| n.start)
            .min()
            .or_else(|| events.iter().map(|e| e.timestamp).min())
            .unwrap_or(now);
        let mut slots: Vec<Option<SpanNode>> = built.into_iter().map(Some).collect();
        let spans = order
            .into_iter()
            .filter_map(|(i, depth)| {
                let mut node = slots[i].take()?;
                node.depth = depth;
                node.orphan =
                    !node.parent_id.is_empty() && (parent_of[i].is_none() || broken.contains(&i));
                Some(node)
            })
            .collect();
        Some(TraceTree {
            trace_id: trace_id.clone(),
            start,
            spans,
            loose,
        })
    }

    /// The tree as the JSON the `/__nexus/traces/{id}` endpoint serves:
    ///
    /// ```text
    /// {
    ///   "traceId": "4bf9…",             the trace
    ///   "startedAt": "2026-…Z",          RFC 3339: the origin of every startMs
    ///   "durationMs": 12.5,              from the origin to the last span's end
    ///   "spans": [                       depth first, children by start
    ///     {
    ///       "spanId": "00f0…", "parentId": "a3ce…" (omitted when the span has no
    ///         parent id; an orphan keeps the id of its missing parent),
    ///       "name": "POST /orders", "kind": "server" | "client" | "internal",
    ///       "service": "shop", "method": "POST", "path": "/orders" (server spans),
    ///       "startMs": 0.0, "durationMs": 12.5,   milliseconds, µs precision
    ///       "depth": 0, "running": false, "orphan": false,
    ///       "status": 200 (omitted when 0), "error": "…" (omitted when empty),
    ///       "attrs": {…}, "logs": [{"eventId": 7, "atMs": 1.2, "message": "…", "error": "…"?}],
    ///       "eventIds": [5, 9]
    ///     }
    ///   ],
    ///   "looseEventIds": [3]             events that belong to no span
    /// }
    /// ```
    pub fn to_json(&self) -> Json {
        let ms = |t: SystemTime| -> f64 {
            let d = match t.duration_since(self.start) {
                Ok(d) => d.as_nanos() as f64,
                Err(e) => -(e.duration().as_nanos() as f64),
            };
            (d / 1e3).round() / 1e3
        };
        let end = self
            .spans
            .iter()
            .map(|s| s.start + s.duration)
            .max()
            .unwrap_or(self.start);
        let spans: Vec<Json> = self
            .spans
            .iter()
            .map(|s| {
                let mut o = Map::new();
                o.insert("spanId".into(), json!(s.span_id.to_string()));
                if !s.parent_id.is_empty() {
                    o.insert("parentId".into(), json!(s.parent_id.to_string()));
                }
                o.insert("name".into(), json!(s.name.as_str()));
                o.insert("kind".into(), json!(s.kind.as_str()));
                o.insert("service".into(), json!(s.service.as_str()));
                if let Some(m) = &s.method {
                    o.insert("method".into(), json!(m.as_str()));
                }
                if !s.path.is_empty() {
                    o.insert("path".into(), json!(s.path.as_str()));
                }
                o.insert("startMs".into(), json!(ms(s.start)));
                o.insert(
                    "durationMs".into(),
                    json!((s.duration.as_nanos() as f64 / 1e3).round() / 1e3),
                );
                o.insert("depth".into(), json!(s.depth));
                o.insert("running".into(), json!(s.running));
                o.insert("orphan".into(), json!(s.orphan));
                if s.status != 0 {
                    o.insert("status".into(), json!(s.status));
                }
                if !s.error.is_empty() {
                    o.insert("error".into(), json!(s.error.as_str()));
                }
                let attrs: Map<String, Json> = s
                    .attrs
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_json()))
                    .collect();
                o.insert("attrs".into(), Json::Object(attrs));
                let logs: Vec<Json> = s
                    .logs
                    .iter()
                    .map(|l| {
                        let mut lo = Map::new();
                        lo.insert("eventId".into(), json!(l.event_id));
                        lo.insert("atMs".into(), json!(ms(l.at)));
                        lo.insert("message".into(), json!(l.message.as_str()));
                        if !l.error.is_empty() {
                            lo.insert("error".into(), json!(l.error.as_str()));
                        }
                        Json::Object(lo)
                    })
                    .collect();
                o.insert("logs".into(), Json::Array(logs));
                o.insert("eventIds".into(), json!(s.event_ids));
                Json::Object(o)
            })
            .collect();
        json!({
            "traceId": self.trace_id.to_string(),
            "startedAt": crate::event::format_timestamp(self.start),
            "durationMs": ms(end),
            "spans": spans,
            "looseEventIds": self.loose,
        })
    }
}

impl Building {
    fn absorb(&mut self, event: &Event, pos: usize) {
        self.first.get_or_insert(pos);
        self.event_ids.push(event.id);
        if self.service.is_empty() {
            self.service = event.service.clone();
        }
        if self.parent_id.is_empty() {
            self.parent_id = event.parent_id.clone();
        }
        for (k, v) in event.attrs.iter() {
            if k.as_str() != SPAN_KIND_ATTR {
                self.attrs.insert(k.clone(), v.clone());
            }
        }
        if !event.error.is_empty() {
            self.error = event.error.clone();
        }
        match event.kind() {
            EventKind::RequestStart | EventKind::RequestEnd => {
                self.kind = Some(NodeKind::Server);
                if self.name.is_empty() {
                    self.name = if event.endpoint.is_empty() {
                        match event.method() {
                            Some(m) => format!("{} {}", m.as_str(), event.path.as_str()).into(),
                            None => event.path.clone(),
                        }
                    } else {
                        event.endpoint.clone()
                    };
                }
                if self.method.is_none() {
                    self.method = event.method();
                }
                if self.path.is_empty() {
                    self.path = event.path.clone();
                }
                if event.kind() == EventKind::RequestStart {
                    self.start.get_or_insert(event.timestamp);
                } else {
                    self.end.get_or_insert(event.timestamp);
                    self.status = event.status;
                    if let Some(d) = duration_of(event) {
                        self.duration.get_or_insert(d);
                    }
                }
            }
            EventKind::SpanStart => {
                let client = event
                    .attrs
                    .get(SPAN_KIND_ATTR)
                    .and_then(|v| v.as_str())
                    .is_some_and(|k| k == "client");
                if client {
                    self.kind = Some(NodeKind::Client);
                } else {
                    self.kind.get_or_insert(NodeKind::Internal);
                }
                if self.name.is_empty() {
                    self.name = event.message.clone();
                }
                self.start.get_or_insert(event.timestamp);
            }
            EventKind::SpanEnd => {
                self.kind.get_or_insert(NodeKind::Internal);
                if self.name.is_empty() {
                    self.name = event.message.clone();
                }
                self.end.get_or_insert(event.timestamp);
                if let Some(d) = duration_of(event) {
                    self.duration.get_or_insert(d);
                }
            }
            EventKind::Downstream => {
                self.kind = Some(NodeKind::Client);
                if self.name.is_empty() {
                    self.name = event.message.clone();
                }
                let d = duration_of(event).unwrap_or_default();
                self.start.get_or_insert(event.timestamp);
                self.end.get_or_insert(event.timestamp + d);
                self.duration.get_or_insert(d);
            }
            EventKind::Log | EventKind::Other(_) => {}
        }
    }

    fn finish(self, span_id: WireId<SpanId>, now: SystemTime) -> SpanNode {
        let running = self.end.is_none();
        let start = match (self.start, self.end, self.duration) {
            (Some(s), _, _) => s,
            (None, Some(e), Some(d)) => e.checked_sub(d).unwrap_or(e),
            (None, Some(e), None) => e,
            (None, None, _) => now,
        };
        let duration = match (self.end, self.duration) {
            (Some(_), Some(d)) => d,
            (Some(e), None) => e.duration_since(start).unwrap_or_default(),
            (None, _) => now.duration_since(start).unwrap_or_default(),
        };
        SpanNode {
            span_id,
            parent_id: self.parent_id,
            name: self.name,
            kind: self.kind.unwrap_or(NodeKind::Internal),
            service: self.service,
            method: self.method,
            path: self.path,
            start,
            duration,
            running,
            orphan: false,
            depth: 0,
            status: self.status,
            error: self.error,
            attrs: self.attrs,
            logs: Vec::new(),
            event_ids: self.event_ids,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + Duration::from_millis(ms)
    }

    fn ev(id: u64, kind: EventKind, span: &str, parent: &str, ts: u64) -> Event {
        let mut e = Event::new(kind);
        e.id = id;
        e.trace_id = WireId::parse(T);
        e.span_id = WireId::parse(span.to_owned());
        e.parent_id = WireId::parse(parent.to_owned());
        e.timestamp = at(ts);
        e.service = "shop".into();
        e
    }

    fn ended(mut e: Event, ms: u64) -> Event {
        e.set_duration(Duration::from_millis(ms));
        e
    }

    fn tree(events: &[Event], now: u64) -> TraceTree {
        TraceTree::build(&WireId::parse(T), events, at(now)).expect("events of the trace")
    }

    fn names(t: &TraceTree) -> Vec<(String, usize)> {
        t.spans
            .iter()
            .map(|s| (s.name.to_string(), s.depth))
            .collect()
    }

    const ORDERS: &str = "00000000000000a1";
    const CHARGE: &str = "00000000000000b2";
    const PAY: &str = "00000000000000c3";
    const LEDGER: &str = "00000000000000d4";

    /// `/orders` → client call → payments `/charge` → `ledger.write`.
    fn two_services() -> Vec<Event> {
        let mut v = Vec::new();
        let mut s = ev(1, EventKind::RequestStart, ORDERS, "", 0);
        s.endpoint = "POST /orders".into();
        v.push(s);
        let mut c = ev(2, EventKind::SpanStart, CHARGE, ORDERS, 2);
        c.message = "http.payments.charge".into();
        c.attrs.insert(SPAN_KIND_ATTR, "client");
        v.push(c);
        let mut p = ev(3, EventKind::RequestStart, PAY, CHARGE, 3);
        p.endpoint = "POST /charge".into();
        p.service = "payments".into();
        v.push(p);
        let mut l = ended(ev(4, EventKind::Downstream, LEDGER, PAY, 4), 5);
        l.message = "ledger.write".into();
        l.service = "payments".into();
        v.push(l);
        let mut pe = ended(ev(5, EventKind::RequestEnd, PAY, CHARGE, 10), 7);
        pe.status = 200;
        pe.endpoint = "POST /charge".into();
        pe.service = "payments".into();
        v.push(pe);
        let mut ce = ended(ev(6, EventKind::Downstream, CHARGE, ORDERS, 2), 9);
        ce.message = "http.payments.charge".into();
        ce.attrs.insert("http.status", 200);
        v.push(ce);
        let mut log = ev(7, EventKind::Log, ORDERS, "", 12);
        log.message = "order stored".into();
        v.push(log);
        let mut oe = ended(ev(8, EventKind::RequestEnd, ORDERS, "", 15), 15);
        oe.status = 201;
        oe.endpoint = "POST /orders".into();
        v.push(oe);
        v
    }

    #[test]
    fn a_call_across_services_is_one_three_level_tree() {
        let t = tree(&two_services(), 20);
        assert_eq!(
            names(&t),
            [
                ("POST /orders".into(), 0),
                ("http.payments.charge".into(), 1),
                ("POST /charge".into(), 2),
                ("ledger.write".into(), 3),
            ]
        );
        let kinds: Vec<_> = t.spans.iter().map(|s| s.kind).collect();
        use NodeKind::*;
        assert_eq!(kinds, [Server, Client, Server, Client]);
        assert!(t.spans.iter().all(|s| !s.running && !s.orphan));
        assert_eq!(t.spans[0].status, 201);
        assert_eq!(t.spans[0].duration, Duration::from_millis(15));
        assert_eq!(t.spans[1].start, at(2));
        assert_eq!(t.spans[1].duration, Duration::from_millis(9));
        assert_eq!(t.spans[1].attrs["http.status"], 200);
        assert!(!t.spans[1].attrs.contains_key(SPAN_KIND_ATTR));
        assert_eq!(t.spans[2].service, "payments");
        assert_eq!(t.spans[0].logs.len(), 1);
        assert_eq!(t.spans[0].logs[0].message, "order stored");
        assert_eq!(t.start, at(0));
        assert!(t.loose.is_empty());
    }

    #[test]
    fn the_order_events_arrive_in_does_not_matter() {
        let mut events = two_services();
        let expected = tree(&events, 20);
        events.reverse();
        assert_eq!(tree(&events, 20), expected);
        events.swap(1, 5);
        events.swap(0, 3);
        assert_eq!(tree(&events, 20), expected);
    }

    #[test]
    fn a_missing_parent_makes_an_orphan_root() {
        // The ring evicted the shop's events: payments' spans remain.
        let events: Vec<Event> = two_services()
            .into_iter()
            .filter(|e| e.service == "payments")
            .collect();
        let t = tree(&events, 20);
        assert_eq!(
            names(&t),
            [("POST /charge".into(), 0), ("ledger.write".into(), 1)]
        );
        assert!(t.spans[0].orphan, "its parent {CHARGE} is not in the set");
        assert!(!t.spans[1].orphan);
        assert_eq!(t.spans[0].parent_id, CHARGE);
    }

    #[test]
    fn spans_still_running_are_marked_and_last_until_now() {
        let events: Vec<Event> = two_services().into_iter().take(3).collect();
        let t = tree(&events, 8);
        assert_eq!(t.spans.len(), 3);
        assert!(t.spans.iter().all(|s| s.running));
        assert_eq!(t.spans[0].duration, Duration::from_millis(8));
        assert_eq!(t.spans[1].kind, NodeKind::Client, "known from span.start");
        assert_eq!(t.spans[2].duration, Duration::from_millis(5));
    }

    #[test]
    fn an_end_without_its_start_starts_at_end_minus_duration() {
        let events: Vec<Event> = two_services().into_iter().skip(4).collect();
        let t = tree(&events, 20);
        let pay = t.spans.iter().find(|s| s.span_id == PAY).unwrap();
        assert_eq!(pay.start, at(3));
        assert!(!pay.running);
    }

    #[test]
    fn events_without_a_span_and_stray_logs_are_loose() {
        let mut go = ev(1, EventKind::RequestStart, "", "", 0);
        go.endpoint = "GET /go".into();
        let stray = ev(2, EventKind::Log, "00000000000000ff", "", 1);
        let other_trace = {
            let mut e = ev(3, EventKind::RequestStart, ORDERS, "", 0);
            e.trace_id = WireId::parse("0af7651916cd43dd8448eb211c80319c");
            e
        };
        let t = tree(&[go, stray, other_trace], 5);
        assert!(t.spans.is_empty());
        assert_eq!(t.loose, [1, 2]);
        assert!(TraceTree::build(
            &WireId::parse("0af7651916cd43dd8448eb211c80319d"),
            &[],
            at(0)
        )
        .is_none());
    }

    #[test]
    fn a_parent_cycle_terminates_and_is_broken() {
        let a = ended(
            ev(
                1,
                EventKind::SpanEnd,
                "000000000000000a",
                "000000000000000b",
                5,
            ),
            5,
        );
        let b = ended(
            ev(
                2,
                EventKind::SpanEnd,
                "000000000000000b",
                "000000000000000a",
                9,
            ),
            5,
        );
        let t = tree(&[a, b.clone()], 10);
        assert_eq!(t.spans.len(), 2);
        assert!(t.spans[0].orphan);
        assert_eq!(t.spans[0].depth, 0);
        assert_eq!(t.spans[1].depth, 1);

        // A span below the cycle that started before both members (at 0;
        // `a` at 2, `b` at 4) stays below it: the cycle is broken at its
        // earliest member, `a`, not at the earliest unreachable span.
        let c = ended(
            ev(
                3,
                EventKind::SpanEnd,
                "000000000000000c",
                "000000000000000a",
                1,
            ),
            1,
        );
        let a = ended(
            ev(
                1,
                EventKind::SpanEnd,
                "000000000000000a",
                "000000000000000b",
                7,
            ),
            5,
        );
        let t = tree(&[c, a, b], 10);
        let shape: Vec<(String, usize, bool)> = t
            .spans
            .iter()
            .map(|s| (s.span_id.to_string(), s.depth, s.orphan))
            .collect();
        assert_eq!(
            shape,
            [
                ("000000000000000a".to_string(), 0, true),
                ("000000000000000c".to_string(), 1, false),
                ("000000000000000b".to_string(), 1, false),
            ]
        );
    }

    #[test]
    fn json_has_the_documented_shape() {
        let t = tree(&two_services(), 20);
        let j = t.to_json();
        assert_eq!(j["traceId"], T);
        assert_eq!(j["durationMs"], 15.0);
        let spans = j["spans"].as_array().unwrap();
        assert_eq!(spans.len(), 4);
        assert!(spans[0].get("parentId").is_none());
        assert_eq!(spans[1]["parentId"], ORDERS);
        assert_eq!(spans[2]["parentId"], CHARGE);
        assert_eq!(spans[1]["kind"], "client");
        assert_eq!(spans[1]["startMs"], 2.0);
        assert_eq!(spans[1]["durationMs"], 9.0);
        assert_eq!(spans[0]["status"], 201);
        assert_eq!(spans[0]["logs"][0]["atMs"], 12.0);
        assert_eq!(spans[3]["depth"], 3);
        assert_eq!(spans[1]["attrs"]["http.status"], 200);
        assert_eq!(spans[0]["running"], false);
        assert_eq!(spans[0]["orphan"], false);
        assert_eq!(spans[0]["eventIds"], serde_json::json!([1, 8]));
        assert_eq!(j["looseEventIds"], serde_json::json!([]));
        assert!(j["startedAt"].as_str().unwrap().ends_with('Z'));
    }
}
