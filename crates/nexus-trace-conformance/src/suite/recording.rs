//! Recording: one start and exactly one end per request (statuses, errors,
//! panics, disconnects, streaming bodies), route templates, the request
//! context in nested code and spawned tasks, `traceparent`, hostile
//! requests, the extractor without its middleware, the events' shapes.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use super::{client, of_kind, one_start_one_end, raw_request, trace_id, SECOND};
use crate::{Harness, Opts, Server};

/// 2xx, 3xx, 4xx and 5xx responses: one start, exactly one end, status kept.
pub async fn start_and_one_end_for_each_status(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    let c = client();
    for code in [200u16, 204, 302, 404, 418, 503] {
        let res = server
            .get(&c, &format!("/status/{code}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), code);
        let trace = trace_id(&res);
        drop(res.bytes().await);
        let events = server.finished_trace(&trace).await;
        let end = one_start_one_end(&events);
        assert_eq!(end["status"], code);
        assert_eq!(end["service"], "conformance");
        assert_eq!(end["method"], "GET");
        assert_eq!(end["path"], format!("/status/{code}"));
        assert_eq!(end["traceId"], trace.as_str());
        if code >= 500 {
            assert!(
                !end["error"].as_str().unwrap_or("").is_empty(),
                "5xx has an error"
            );
        } else {
            assert!(end.get("error").is_none(), "no error on {code}");
        }
    }
    let all = server.stop_and_audit().await;
    assert_eq!(of_kind(&all, "request.end").len(), 6);
}

/// A handler error and a handler panic each produce exactly one end.
pub async fn handler_error_and_panic_end_once(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    let c = client();
    let res = server.get(&c, "/error").send().await.unwrap();
    assert_eq!(res.status(), 500);
    let trace = trace_id(&res);
    let end = one_start_one_end(&server.finished_trace(&trace).await);
    assert_eq!(end["status"], 500);
    assert!(!end["error"].as_str().unwrap().is_empty());

    // A panicking handler: whatever the client sees (500 or a dropped
    // connection), the bus has one start and one end marked as a panic.
    let before = server.bus.last_id();
    let _ = server.get(&c, "/panic").send().await;
    let end = wait_for_end_on_path(&server, before, "/panic").await;
    assert_eq!(end["status"], 500);
    assert_eq!(end["error"], "handler panicked");
    // The server still serves.
    assert_eq!(server.get(&c, "/ok").send().await.unwrap().status(), 200);
    // Once the server has stopped: one start and one end for each request.
    let all = server.stop_and_audit().await;
    let panics: Vec<Value> = all.into_iter().filter(|e| e["path"] == "/panic").collect();
    assert_eq!(one_start_one_end(&panics)["error"], "handler panicked");
}

/// The client goes away while the handler runs: one end, marked aborted.
pub async fn client_disconnect_before_response_is_aborted(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    let before = server.bus.last_id();
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    assert!(server.get(&quick, "/slow").send().await.is_err());
    let end = wait_for_end_on_path(&server, before, "/slow").await;
    assert_eq!(end["meta"]["aborted"], true, "{end}");
    server.stop_and_audit().await;
}

/// The client goes away mid-body: one end, aborted, with the sent status.
pub async fn client_disconnect_mid_body_is_aborted(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    let before = server.bus.last_id();
    let c = client();
    let res = server.get(&c, "/slow-body").send().await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.bytes_stream();
    let _first = body.next().await;
    drop(body);
    let end = wait_for_end_on_path(&server, before, "/slow-body").await;
    assert_eq!(end["status"], 200);
    assert_eq!(end["meta"]["aborted"], true, "{end}");
    server.stop_and_audit().await;
}

/// Polls the bus (from after `since`) until a `request.end` for `path`
/// arrives and returns it. That it is the only one is checked once the
/// server has stopped ([`Server::stop_and_audit`]).
async fn wait_for_end_on_path(server: &Server, since: u64, path: &str) -> Value {
    let mut sub = server.bus.subscribe(since);
    let deadline = tokio::time::Instant::now() + 20 * SECOND;
    loop {
        while let Ok(e) = sub.try_recv() {
            let e: Value = serde_json::from_str(&e.to_json()).unwrap();
            if e["path"] == path && e["kind"] == "request.end" {
                return e;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no request.end for {path}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A streaming body: the end is published when the body ends, so its
/// duration covers the whole stream.
pub async fn streaming_body_ends_at_body_end(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    let c = client();
    let res = server.get(&c, "/stream").send().await.unwrap();
    let trace = trace_id(&res);
    let body = res.text().await.unwrap();
    assert!(!body.is_empty());
    let end = one_start_one_end(&server.finished_trace(&trace).await);
    let ns = end["durationNs"].as_u64().unwrap();
    assert!(ns >= 100_000_000, "duration {ns} ns covers the 3 chunks");
    server.stop_and_audit().await;
}

/// The endpoint is the route template, not the concrete path.
pub async fn endpoint_is_the_route_template(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    let c = client();
    let res = server.get(&c, "/status/201").send().await.unwrap();
    let trace = trace_id(&res);
    let events = server.finished_trace(&trace).await;
    for e in &events {
        assert_eq!(e["endpoint"], "/status/{code}", "{e}");
    }
    server.stop_and_audit().await;
}

/// Downstream calls recorded through `current()` from nested code and from
/// a spawned task land on the request's trace, as children of its span.
pub async fn downstream_from_deep_code_and_spawned_task(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    let c = client();
    for (path, name) in [("/deep", "db.deep"), ("/spawned", "spawned.call")] {
        let res = server.get(&c, path).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let trace = trace_id(&res);
        let events = server.finished_trace(&trace).await;
        let start = of_kind(&events, "request.start")[0].clone();
        let calls = of_kind(&events, "downstream");
        assert_eq!(calls.len(), 1, "{events:#?}");
        assert_eq!(calls[0]["message"], name);
        assert_eq!(calls[0]["parentId"], start["spanId"]);
        assert!(calls[0]["durationNs"].as_u64().unwrap() > 0);
    }
    let res = server.get(&c, "/extract").send().await.unwrap();
    let trace = trace_id(&res);
    assert_eq!(
        res.text().await.unwrap(),
        trace,
        "extractor sees the same context"
    );
    server.stop_and_audit().await;
}

/// A valid `traceparent` continues the caller's trace; malformed ones start
/// a fresh trace; the trace id is always echoed.
pub async fn traceparent_is_continued_or_ignored(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    let c = client();
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let res = server
        .get(&c, "/ok")
        .header("traceparent", tp)
        .send()
        .await
        .unwrap();
    assert_eq!(trace_id(&res), "4bf92f3577b34da6a3ce929d0e0e4736");
    let events = server
        .finished_trace("4bf92f3577b34da6a3ce929d0e0e4736")
        .await;
    assert_eq!(
        of_kind(&events, "request.start")[0]["parentId"],
        "00f067aa0ba902b7"
    );
    for bad in [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "garbage",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        &"0".repeat(8000),
    ] {
        let res = server
            .get(&c, "/ok")
            .header("traceparent", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let id = trace_id(&res);
        assert_eq!(id.len(), 32);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(id, "00000000000000000000000000000000");
    }
    server.stop_and_audit().await;
}

/// Non-UTF-8 header values, a 64 KiB header and invalid percent-encoding:
/// no panic, the request is served and traced.
pub async fn hostile_requests_are_served(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    let big = "x".repeat(64 * 1024);
    let cases: Vec<Vec<u8>> = vec![
        b"GET /ok HTTP/1.1\r\nHost: x\r\nUser-Agent: \xff\xfe\x80\r\ntraceparent: \xff\r\nConnection: close\r\n\r\n".to_vec(),
        format!("GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n").into_bytes(),
        b"GET /status/%zz%ff%E2%82 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /ok?since=%ff&token=%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
    ];
    for (i, req) in cases.iter().enumerate() {
        let status = raw_request(&server, req).await;
        assert!(
            (200..500).contains(&status) && status != 0,
            "case {i}: got status {status}"
        );
    }
    assert_eq!(
        client()
            .get(server.url("/ok"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "still serving"
    );
    // Invalid percent-encoding is recorded verbatim, never decoded.
    let mut sub = server.bus.subscribe(0);
    let mut seen = false;
    while let Ok(e) = sub.try_recv() {
        seen |= e.path == "/status/%zz%ff%E2%82";
    }
    assert!(seen, "the hostile path was traced verbatim");
}

/// The context extractor without the middleware: a 500 that names the fix;
/// the optional form yields `None`.
pub async fn extractor_without_layer_is_a_clear_500(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    let c = client();
    let res = c.get(server.url("/no-layer")).send().await.unwrap();
    assert_eq!(res.status(), 500);
    assert!(res.text().await.unwrap().contains("NexusTrace"));
    let res = c
        .get(server.url("/no-layer-optional"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "none");
}

/// The events of a few requests, reduced to what does not vary between
/// runs (no ids, times, durations): kinds, which fields are present, and the
/// values a user filters on.
fn shape(events: &[Value]) -> Value {
    let stable = [
        "kind",
        "service",
        "endpoint",
        "transport",
        "method",
        "path",
        "status",
        "message",
        "error",
    ];
    Value::Array(
        events
            .iter()
            .map(|e| {
                let obj = e.as_object().expect("event object");
                // durationMs is omitted under 1 ms (Go's omitempty): timing, not shape.
                let mut keys: Vec<&String> = obj.keys().filter(|k| *k != "durationMs").collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                out.insert("fields".into(), keys.into_iter().cloned().collect());
                for k in stable {
                    if let Some(v) = obj.get(k) {
                        out.insert(k.into(), v.clone());
                    }
                }
                if let Some(meta) = obj.get("meta") {
                    out.insert("meta".into(), meta.clone());
                }
                Value::Object(out)
            })
            .collect(),
    )
}

/// The same requests produce events of the same shape on every adapter: the
/// shapes must equal the reference in `shape.json`.
pub async fn event_shapes_match_the_reference(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    let c = client();
    let mut all = serde_json::Map::new();
    for path in ["/status/201", "/deep", "/error", "/stream"] {
        let res = server.get(&c, path).send().await.unwrap();
        let trace = trace_id(&res);
        let _ = res.bytes().await;
        let events = server.finished_trace(&trace).await;
        all.insert(path.into(), shape(&events));
    }
    let got = Value::Object(all);
    let reference: Value = serde_json::from_str(include_str!("shape.json")).unwrap();
    if std::env::var_os("NEXUS_WRITE_SHAPE").is_some() {
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/src/suite/shape.json"),
            serde_json::to_string_pretty(&got).unwrap() + "\n",
        )
        .unwrap();
    }
    assert_eq!(got, reference, "event shapes differ from the reference");
    server.stop_and_audit().await;
}
