//! Serving the `/__nexus` routes, framework-free: SSE framing, resume-point
//! parsing, the access gate, the stream-client cap, each stream client's
//! session (close handshake, write bound, shutdown), the trace-tree and
//! stats JSON, and the dashboard page. The adapters hold one
//! [`NexusEndpoints`](surface::NexusEndpoints) per mount and translate
//! between it and their framework.

#[cfg(feature = "dashboard")]
pub mod dashboard;
pub mod gate;
pub mod limit;
pub mod resume;
pub mod session;
pub mod shutdown;
pub mod sse;
pub mod sse_body;
pub mod stream;
pub mod surface;
pub mod timer;

use nexus_trace_core::{Bus, Event, Text, TraceId, TraceTree, TryRecvError, WireId};

/// May a WebSocket handshake open the event stream, judged by its `Origin`
/// and `Host` headers (raw values)?
///
/// Browsers always send `Origin` on WebSocket handshakes, so a page on
/// another site could otherwise read the stream with the user's ambient
/// access. Accepted: no `Origin` (a non-browser client; the access gate
/// still applies), a same-origin page (the origin's `host[:port]` equals
/// `Host`, ASCII case-insensitively), or an origin listed in `allowed`.
/// An `Origin` that is not UTF-8 is refused.
pub fn websocket_origin_allowed(
    origin: Option<&[u8]>,
    host: Option<&[u8]>,
    allowed: &[String],
) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let Ok(origin) = std::str::from_utf8(origin) else {
        return false;
    };
    if allowed.iter().any(|a| a == origin) {
        return true;
    }
    let origin_host = origin.split_once("://").map(|(_, rest)| rest.as_bytes());
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// `GET /__nexus/traces/{trace_id}`: the trace's span tree
/// ([`TraceTree::to_json`](nexus_trace_core::TraceTree::to_json), its schema)
/// built from the events the ring still holds, plus those events themselves
/// under `"events"` (Go-compatible encoding, id order). A trace with no
/// retained event answers an empty tree (`"spans": []`, `"events": []`,
/// no `startedAt`). The id must be 1 to 128 bytes, else the reason to
/// answer 400. Reads the ring through a temporary cursor.
pub fn trace_json(bus: &Bus, trace_id: &str) -> Result<Vec<u8>, &'static str> {
    if trace_id.is_empty() || trace_id.len() > 128 {
        return Err("nexus: trace id must be 1 to 128 bytes\n");
    }
    let wanted: WireId<TraceId> = Text::copy(trace_id).into();
    let events = retained_events_of(bus, &wanted);
    let tree = TraceTree::build(
        &wanted,
        events.iter().map(|e| &**e),
        std::time::SystemTime::now(),
    );
    let head = match tree {
        Some(tree) => tree.to_json(),
        None => serde_json::json!({
            "traceId": trace_id,
            "spans": [],
            "looseEventIds": [],
        }),
    };
    let mut out = serde_json::to_vec(&head).unwrap_or_else(|_| b"{}".to_vec());
    // Reopen the object to append the events in their Go encoding.
    out.pop();
    if out.len() > 1 {
        out.push(b',');
    }
    out.extend_from_slice(b"\"events\":[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        event.write_json(&mut out);
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// The bus's and the stream cap's counters as JSON, for `GET /__nexus/stats`:
/// `{"capacity":…,"published":…,"overwritten":…,"dropped":…,"abandoned":…,
/// "subscribers":…,"streams":{"live":…,"max":…,"refused":…,"ended":{
/// "client_close":…,"disconnected":…,"write_timeout":…,"shutdown":…,
/// "source_closed":…}}}`. `streams.ended` counts the streams that ended, by
/// reason (see [`limit::EndReason`]); every admitted stream is either live or
/// counted there once.
pub fn stats_json(bus: &Bus, streams: &limit::StreamLimiter) -> String {
    let c = bus.counters();
    let ended: serde_json::Map<String, serde_json::Value> = limit::EndReason::ALL
        .iter()
        .map(|&r| (r.name().to_owned(), streams.ended(r).into()))
        .collect();
    serde_json::json!({
        "capacity": bus.capacity(),
        "published": c.published,
        "overwritten": c.overwritten,
        "dropped": c.dropped,
        "abandoned": c.abandoned,
        "subscribers": c.subscribers,
        "streams": {
            "live": streams.live(),
            "max": streams.max(),
            "refused": streams.refused(),
            "ended": ended,
        },
    })
    .to_string()
}

fn retained_events_of(bus: &Bus, trace_id: &WireId<TraceId>) -> Vec<std::sync::Arc<Event>> {
    let mut sub = bus.subscribe(0);
    let last = bus.last_id();
    let mut out = Vec::new();
    while sub.next_id() <= last {
        match sub.try_recv() {
            Ok(event) => {
                if &event.trace_id == trace_id {
                    out.push(event);
                }
            }
            Err(TryRecvError::Lagged(_)) => continue,
            Err(_) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexus_trace_core::Event;

    #[test]
    fn websocket_origins() {
        let allowed = vec!["https://app.example".to_owned()];
        let check = |o: Option<&str>, h: Option<&str>| {
            websocket_origin_allowed(o.map(str::as_bytes), h.map(str::as_bytes), &allowed)
        };
        assert!(check(None, Some("127.0.0.1:8080")), "non-browser client");
        assert!(check(Some("http://127.0.0.1:8080"), Some("127.0.0.1:8080")));
        assert!(check(Some("http://LOCALHOST:1"), Some("localhost:1")));
        assert!(check(Some("https://app.example"), Some("api.example")));
        assert!(!check(Some("http://evil.example"), Some("127.0.0.1:8080")));
        assert!(!check(Some("http://127.0.0.1:9"), Some("127.0.0.1:8080")));
        assert!(!check(Some("null"), Some("127.0.0.1:8080")));
        assert!(!check(Some("http://evil.example"), None));
        assert!(!websocket_origin_allowed(
            Some(b"http://\xff"),
            Some(b"x"),
            &allowed
        ));
    }

    #[test]
    fn trace_json_filters_by_trace() {
        let bus = Bus::new(8);
        for t in ["a", "b", "a"] {
            let mut event = Event::default();
            event.trace_id = t.into();
            bus.publish(event);
        }
        let json = String::from_utf8(trace_json(&bus, "a").unwrap()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let ids: Vec<u64> = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, vec![1, 3]);
        // Events without span ids are loose: no spans, every event listed.
        assert_eq!(v["spans"], serde_json::json!([]));
        assert_eq!(v["looseEventIds"], serde_json::json!([1, 3]));
        let none: serde_json::Value =
            serde_json::from_slice(&trace_json(&bus, "zzz").unwrap()).unwrap();
        assert_eq!(
            none,
            serde_json::json!({"traceId": "zzz", "spans": [], "looseEventIds": [], "events": []})
        );
        assert!(trace_json(&bus, "").is_err());
        assert!(trace_json(&bus, &"a".repeat(129)).is_err());
    }
}
