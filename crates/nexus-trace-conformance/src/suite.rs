//! The cases. Each takes a [`Harness`], starts the servers it needs and
//! asserts what a user relies on, over HTTP only.

use std::time::Duration;

use futures_util::StreamExt;
use nexus_trace_core::{Event, Text};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use eventsource_stream::Eventsource;
use nexus_trace_http::serve::gate::{Access, Decision};

use crate::client::{id_of, ws_read, SseStream};
use crate::stream_end::wait_for_stats;
use crate::{Harness, Opts, Server};

pub use crate::stream_end::{
    shutdown_closes_streams_with_1001_and_a_final_frame,
    stalled_client_is_cut_off_after_the_write_bound, vanished_clients_free_their_place,
    websocket_close_mid_burst_is_answered_at_once, websocket_pings_are_answered,
    websocket_reconnect_loop_is_exactly_once,
};

const SECOND: Duration = Duration::from_secs(1);

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn trace_id(res: &reqwest::Response) -> String {
    res.headers()
        .get("x-trace-id")
        .expect("x-trace-id header")
        .to_str()
        .unwrap()
        .to_owned()
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// Exactly one start and one end; returns the end.
fn one_start_one_end(events: &[Value]) -> Value {
    let starts = of_kind(events, "request.start");
    let ends = of_kind(events, "request.end");
    assert_eq!(starts.len(), 1, "one request.start in {events:#?}");
    assert_eq!(ends.len(), 1, "exactly one request.end in {events:#?}");
    assert!(id_of(starts[0]) < id_of(ends[0]));
    ends[0].clone()
}

/// A raw HTTP/1.1 request over a fresh TCP connection; returns the status
/// line's code, or 0 if the server closed without answering.
async fn raw_request(server: &Server, request: &[u8]) -> u16 {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = vec![0; 1024];
    let n = tokio::time::timeout(5 * SECOND, s.read(&mut buf))
        .await
        .map_or(0, |r| r.unwrap_or(0));
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

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

/// Without an explicit mount, `/__nexus` does not exist.
pub async fn not_mounted_is_404(h: &impl Harness) {
    let server = h
        .spawn(Opts {
            mount: false,
            ..Opts::default()
        })
        .await;
    let c = client();
    for path in ["/__nexus/", "/__nexus/events", "/__nexus/traces/abc"] {
        assert_eq!(
            c.get(server.url(path)).send().await.unwrap().status(),
            404,
            "{path}"
        );
    }
}

/// The token gate: missing or wrong token 401, right token 200, also via
/// `?access_token=` for `EventSource`.
pub async fn token_gate(h: &impl Harness) {
    let server = h
        .spawn(Opts {
            token: Some("t0ken-x".into()),
            ..Opts::default()
        })
        .await;
    let c = client();
    let url = server.url("/__nexus/traces/abc");
    assert_eq!(c.get(&url).send().await.unwrap().status(), 401);
    let wrong = c.get(&url).bearer_auth("t0ken-y").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().contains_key("www-authenticate"));
    assert_eq!(
        c.get(&url)
            .bearer_auth("t0ken-x")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let q = server.url("/__nexus/traces/abc?access_token=t0ken-x");
    assert_eq!(c.get(&q).send().await.unwrap().status(), 200);
    assert_eq!(
        c.get(server.url("/__nexus/"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

/// The loopback gate trusts the socket address only.
///
/// Over loopback alone (no other interface is needed): a loopback peer is
/// let in by `Access::loopback()` whatever `X-Forwarded-For` says; and the
/// adapter hands the gate the TCP peer, never a header. The second part uses
/// a gate that admits only `127.0.0.1`, and a client that connects from
/// `127.0.0.2` (loopback on Linux, but another address) while its headers
/// claim `127.0.0.1`: it is refused, and the gate saw `127.0.0.2`. That the
/// loopback gate refuses every non-loopback peer is `Access::check` alone,
/// unit-tested in `nexus-trace-http` (`serve::gate`).
pub async fn loopback_gate_ignores_forwarded_for(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    let c = client();
    let res = c
        .get(server.url("/__nexus/traces/abc"))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "loopback peer allowed");

    let only: std::net::IpAddr = [127, 0, 0, 1].into();
    let other: std::net::IpAddr = [127, 0, 0, 2].into();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let access = {
        let seen = seen.clone();
        Access::custom(move |req| {
            let peer = req.peer.map(|p| p.ip());
            seen.lock().unwrap().push(peer);
            if peer == Some(only) {
                Decision::Allow
            } else {
                Decision::Forbidden
            }
        })
    };
    let server = h
        .spawn(Opts {
            access: Some(access),
            ..Opts::default()
        })
        .await;
    let from = |ip| {
        reqwest::Client::builder()
            .local_address(ip)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
    };
    let forged = from(other)
        .get(server.url("/__nexus/traces/abc"))
        .header("x-forwarded-for", "127.0.0.1")
        .header("forwarded", "for=127.0.0.1")
        .header("x-real-ip", "127.0.0.1")
        .send()
        .await
        .expect("connect from 127.0.0.2 (all of 127.0.0.0/8 is loopback on Linux)");
    assert_eq!(forged.status(), 403, "peer 127.0.0.2 refused");
    let res = from(only)
        .get(server.url("/__nexus/traces/abc"))
        .header("x-forwarded-for", "127.0.0.2")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "peer 127.0.0.1 allowed");
    assert_eq!(
        *seen.lock().unwrap(),
        [Some(other), Some(only)],
        "the gate saw the socket peers"
    );
}

pub(crate) async fn open_sse(
    server: &Server,
    query: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    let c = client();
    let mut req = server.get(&c, &format!("/__nexus/events{query}"));
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    req.send().await.unwrap()
}

pub(crate) fn publish_logs(server: &Server, n: usize) {
    publish_logs_with(server, (0..n).map(|i| format!("m{i}")));
}

/// Publishes one log event per message.
pub(crate) fn publish_logs_with<M: AsRef<str>>(
    server: &Server,
    messages: impl IntoIterator<Item = M>,
) {
    for m in messages {
        server.bus.publish(Event::log(Text::copy(m.as_ref())));
    }
}

/// SSE replay from `Last-Event-ID` continues exactly where the client left
/// off: no gap, no duplicate.
pub async fn sse_resumes_exactly_once_with_last_event_id(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    publish_logs(&server, 5);
    let res = open_sse(&server, "", None).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(res.headers()["x-accel-buffering"], "no");
    let mut s = SseStream::new(res);
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let e = s.next(5 * SECOND).await.expect("backlog event");
        assert_eq!(e.event, "message");
        seen.push(e.id.unwrap().parse::<u64>().unwrap());
    }
    drop(s); // connection lost after id 3
    publish_logs(&server, 4); // ids 6..=9 while away
    let last = seen.last().unwrap().to_string();
    let mut s = SseStream::new(open_sse(&server, "", Some(&last)).await);
    while seen.len() < 9 {
        let e = s.next(5 * SECOND).await.expect("resumed event");
        let v: Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(e.id.as_deref(), Some(id_of(&v).to_string().as_str()));
        seen.push(id_of(&v));
    }
    assert_eq!(seen, (1..=9).collect::<Vec<_>>());
    publish_logs(&server, 1);
    let live = s.next(5 * SECOND).await.expect("live event");
    assert_eq!(live.id.as_deref(), Some("10"));
}

/// `Last-Event-ID` beats `?since=`; malformed ids get a 400, never a panic.
pub async fn sse_header_beats_query_and_rejects_malformed_ids(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    publish_logs(&server, 6);
    let mut s = SseStream::new(open_sse(&server, "?since=1", Some("4")).await);
    assert_eq!(s.next(5 * SECOND).await.unwrap().id.as_deref(), Some("5"));
    let mut s = SseStream::new(open_sse(&server, "?since=2", None).await);
    assert_eq!(s.next(5 * SECOND).await.unwrap().id.as_deref(), Some("3"));
    // An empty Last-Event-ID is the SSE "reset": ?since= applies.
    let mut s = SseStream::new(open_sse(&server, "?since=5", Some("")).await);
    assert_eq!(s.next(5 * SECOND).await.unwrap().id.as_deref(), Some("6"));
    for bad in [
        "abc",
        "-1",
        "+5",
        " 5x",
        "123456789012345678901",
        "99999999999999999999",
    ] {
        let res = open_sse(&server, "", Some(bad)).await;
        assert_eq!(res.status(), 400, "Last-Event-ID {bad:?}");
    }
    let status = raw_request(
        &server,
        b"GET /__nexus/events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 1\x002\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(status == 400, "NUL in Last-Event-ID: {status}");
    assert_eq!(open_sse(&server, "?since=x", None).await.status(), 400);
}

/// A client that falls more than a ring behind gets a `lagged` frame with
/// the exact count, then continues from the oldest retained event.
pub async fn sse_reports_lag(h: &impl Harness) {
    let server = h
        .spawn(Opts {
            capacity: 8,
            ..Opts::default()
        })
        .await;
    publish_logs(&server, 20);
    let mut s = SseStream::new(open_sse(&server, "?since=0", None).await);
    let lag = s.next(5 * SECOND).await.unwrap();
    assert_eq!(lag.event, "lagged");
    assert_eq!(lag.id, None);
    let v: Value = serde_json::from_str(&lag.data).unwrap();
    assert_eq!(
        (v["lagged"].as_u64(), v["next"].as_u64()),
        (Some(12), Some(13))
    );
    assert_eq!(s.next(5 * SECOND).await.unwrap().id.as_deref(), Some("13"));
}

/// The upstream dashboard's WebSocket protocol: `?since=N`, one JSON event
/// per text message, exactly once across a forced reconnect.
pub async fn websocket_resumes_exactly_once_across_reconnect(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    publish_logs(&server, 4);
    let url = format!("ws://127.0.0.1:{}/__nexus/events?since=0", server.port);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("ws connect");
    let first = ws_read(&mut ws, 4, 5 * SECOND).await;
    let mut seen: Vec<u64> = first.iter().map(id_of).collect();
    publish_logs(&server, 2);
    seen.extend(ws_read(&mut ws, 2, 5 * SECOND).await.iter().map(id_of));
    ws.close(None).await.ok();
    drop(ws); // forced reconnect
    publish_logs(&server, 3);
    let since = seen.last().unwrap();
    let url = format!(
        "ws://127.0.0.1:{}/__nexus/events?since={since}",
        server.port
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("ws reconnect");
    seen.extend(ws_read(&mut ws, 3, 5 * SECOND).await.iter().map(id_of));
    assert_eq!(seen, (1..=9).collect::<Vec<_>>());
    // A cross-origin page may not open the stream.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        url.as_str(),
    )
    .unwrap();
    req.headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
}

/// Paths with encoded CR/LF and U+2028 cannot add SSE frames: exactly one
/// SSE event per bus event; fields round-trip. The stream is parsed by
/// `eventsource-stream`, an SSE parser this project did not write.
pub async fn frames_cannot_be_injected(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    let c = client();
    let start = server.bus.last_id();
    let paths = [
        "/a%0D%0Adata:x%0A%0Aid:%2099",
        "/%E2%80%A8%E2%80%A9",
        "/%3Cscript%3Ealert(1)%3C/script%3E",
    ];
    for p in paths {
        let res = c.get(server.url(p)).send().await.unwrap();
        let trace = trace_id(&res);
        let _ = res.bytes().await;
        server.finished_trace(&trace).await;
    }
    let evil = "evil\r\ndata: injected\n\nid: 1\u{2028}\u{2029}<script>";
    publish_logs_with(&server, [evil]);
    let end = server.bus.last_id();
    let res = open_sse(&server, &format!("?since={start}"), None).await;
    let mut frames = Box::pin(res.bytes_stream().eventsource());
    let mut ids = Vec::new();
    let mut messages = Vec::new();
    while (ids.len() as u64) < end - start {
        let e = next_frame(&mut frames).await;
        assert_eq!(e.event, "message");
        let v: Value = serde_json::from_str(&e.data).expect("data is one JSON value");
        assert_eq!(e.id, id_of(&v).to_string(), "the frame's id is the event's");
        ids.push(id_of(&v));
        if v["kind"] == "log" {
            messages.push(v["message"].clone());
        }
        if let Some(path) = v["path"].as_str() {
            assert!(paths.contains(&path), "{path}");
        }
    }
    assert_eq!(ids, (start + 1..=end).collect::<Vec<_>>());
    assert_eq!(messages, [evil]);
    // No extra frames: the next frame is the marker published now.
    publish_logs_with(&server, ["marker"]);
    let marker = next_frame(&mut frames).await;
    assert_eq!(marker.id, (end + 1).to_string(), "{marker:?}");
    server.stop_and_audit().await;
}

/// The next event `eventsource-stream` parses from a response, within 5 s.
async fn next_frame<S, E>(frames: &mut S) -> eventsource_stream::Event
where
    S: futures_util::Stream<Item = Result<eventsource_stream::Event, E>> + Unpin,
    E: std::fmt::Debug,
{
    tokio::time::timeout(5 * SECOND, frames.next())
        .await
        .expect("a frame within 5 s")
        .expect("the stream goes on")
        .expect("a well-formed SSE event")
}

/// One stream past the cap gets 429; the streams already open keep working.
pub async fn stream_cap_returns_429_and_spares_existing_streams(h: &impl Harness) {
    let server = h
        .spawn(Opts {
            max_streams: 2,
            ..Opts::default()
        })
        .await;
    let mut a = SseStream::new(open_sse(&server, "?since=0", None).await);
    let b = open_sse(&server, "?since=0", None).await;
    assert_eq!(b.status(), 200);
    let over = open_sse(&server, "?since=0", None).await;
    assert_eq!(over.status(), 429);
    let url = format!("ws://127.0.0.1:{}/__nexus/events", server.port);
    assert!(
        tokio_tungstenite::connect_async(&url).await.is_err(),
        "ws over cap"
    );
    publish_logs(&server, 1);
    assert!(
        a.next(5 * SECOND).await.is_some(),
        "existing stream unaffected"
    );
    drop(b);
    wait_for_stats(
        &server,
        "the dropped stream's place freed",
        20 * SECOND,
        |s| s["streams"]["live"] == 1,
    )
    .await;
    assert_eq!(
        open_sse(&server, "?since=0", None).await.status(),
        200,
        "place freed"
    );
}

/// `/__nexus` requests are not traced; the dashboard has a strict CSP and
/// keep-alives flow on idle streams.
pub async fn nexus_routes_are_not_recorded_and_dashboard_is_strict(h: &impl Harness) {
    let server = h
        .spawn(Opts {
            keep_alive: Duration::from_millis(100),
            ..Opts::default()
        })
        .await;
    let c = client();
    let page = server.get(&c, "/__nexus/").send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("<title>nexus-trace</title>"));
    let mut s = SseStream::new(open_sse(&server, "?since=0", None).await);
    let deadline = tokio::time::Instant::now() + 20 * SECOND;
    while s.comments() < 2 {
        assert!(
            s.next(Duration::from_millis(50)).await.is_none(),
            "no events"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "keep-alive comments on an idle stream"
        );
    }
    let _ = server.get(&c, "/__nexus/traces/abc").send().await.unwrap();
    let mut sub = server.bus.subscribe(0);
    while let Ok(e) = sub.try_recv() {
        assert!(
            !e.path.starts_with("/__nexus"),
            "nexus request traced: {e:?}"
        );
    }
}

/// The dashboard as served: its Content-Security-Policy header allows
/// exactly the inline scripts and styles in the page as served (SHA-256 of
/// each, computed here from the response body), nothing else inline and no
/// other origin; the page has no inline event handlers or style attributes,
/// which a hash policy would block.
pub async fn dashboard_csp_allows_exactly_the_served_inline_code(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    let page = server.get(&client(), "/__nexus/").send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = page.text().await.unwrap();
    let policy = crate::csp::Policy::parse(&csp);
    assert_eq!(policy.get("default-src"), ["'none'"], "{csp}");
    assert_eq!(policy.get("connect-src"), ["'self'"], "{csp}");
    let page = crate::csp::InlineCode::of(&html);
    assert!(!page.scripts.is_empty(), "the page has its script inline");
    assert!(
        page.external.is_empty(),
        "no external resources: {:?}",
        page.external
    );
    assert!(
        page.inline_attributes.is_empty(),
        "inline handlers or styles: {:?}",
        page.inline_attributes
    );
    for (directive, blocks) in [("script-src", &page.scripts), ("style-src", &page.styles)] {
        let mut served: Vec<String> = blocks.iter().map(|b| crate::csp::source_hash(b)).collect();
        served.sort();
        let mut allowed = policy.get(directive).to_vec();
        allowed.sort();
        assert_eq!(
            allowed, served,
            "{directive} against the served page ({csp})"
        );
    }
}

/// A stream client that stops reading while 10^6 events are published is
/// lagged, not buffered: when it reads again it gets a `lagged` frame.
pub async fn stalled_stream_client_is_lagged_not_buffered(h: &impl Harness) {
    let server = h
        .spawn(Opts {
            capacity: 1024,
            ..Opts::default()
        })
        .await;
    let mut s = SseStream::new(open_sse(&server, "?since=0", None).await);
    publish_logs(&server, 1);
    assert!(s.next(5 * SECOND).await.is_some());
    // Stop reading; publish a million events.
    let bus = server.bus.clone();
    tokio::task::spawn_blocking(move || {
        for _ in 0..1_000_000 {
            bus.publish(Event::default());
        }
    })
    .await
    .unwrap();
    let mut lagged = 0;
    let mut delivered = 0u64;
    let deadline = tokio::time::Instant::now() + 20 * SECOND;
    loop {
        let e = s.next(5 * SECOND).await.expect("stream continues");
        if e.event == "lagged" {
            let v: Value = serde_json::from_str(&e.data).unwrap();
            lagged += v["lagged"].as_u64().unwrap();
        } else {
            delivered += 1;
            if e.id.as_deref() == Some("1000001") {
                break;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "caught up in time");
    }
    assert!(lagged > 0, "the stalled client was told it lagged");
    assert_eq!(
        lagged + delivered,
        1_000_000,
        "every id delivered or counted"
    );
    // What was delivered is bounded by what the socket buffers held plus the
    // ring, never the million events.
    assert!(
        delivered < 200_000,
        "delivered {delivered}: buffered, not lagged"
    );
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
            concat!(env!("CARGO_MANIFEST_DIR"), "/src/shape.json"),
            serde_json::to_string_pretty(&got).unwrap() + "\n",
        )
        .unwrap();
    }
    assert_eq!(got, reference, "event shapes differ from the reference");
    server.stop_and_audit().await;
}

pub(crate) async fn stats(server: &Server) -> Value {
    let res = server
        .get(&client(), "/__nexus/stats")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    serde_json::from_str(&res.text().await.unwrap()).unwrap()
}

/// A reconnect storm: hundreds of stream clients connect, read, and vanish
/// (some mid-stream, some before reading). Afterwards no subscription and no
/// stream place is left behind, the counters say so, and the server serves.
pub async fn reconnect_storm_leaves_nothing_behind(h: &impl Harness) {
    let server = h
        .spawn(Opts {
            max_streams: 16,
            ..Opts::default()
        })
        .await;
    publish_logs(&server, 50);
    let mut tasks = Vec::new();
    for round in 0..200u64 {
        let url = server.url(&format!("/__nexus/events?since={}", round % 50));
        tasks.push(tokio::spawn(async move {
            let res = match client().get(url).send().await {
                Ok(r) => r,
                Err(_) => return 0u16,
            };
            let status = res.status().as_u16();
            if status == 200 && round % 3 != 0 {
                let mut s = SseStream::new(res);
                let _ = s.next(Duration::from_millis(500)).await;
            }
            status
        }));
        if round % 20 == 0 {
            // Publishing goes on during the storm.
            publish_logs(&server, 5);
        }
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            429 | 0 => {}
            other => panic!("unexpected status {other} during the storm"),
        }
    }
    assert!(ok > 0);
    // Everything is released once the clients are gone.
    let last = wait_for_stats(&server, "every stream released", 20 * SECOND, |s| {
        s["streams"]["live"] == 0 && s["subscribers"] == 0
    })
    .await;
    assert_eq!(last["streams"]["max"], 16);
    assert_eq!(last["published"], server.bus.last_id());
    let mut s = SseStream::new(open_sse(&server, "?since=0", None).await);
    assert!(s.next(5 * SECOND).await.is_some(), "a new client is served");
    assert_eq!(
        client()
            .get(server.url("/ok"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Oversized resume points and trace ids are refused with 400, never a panic.
pub async fn oversized_ids_are_refused(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    let huge = "9".repeat(10_000);
    assert_eq!(open_sse(&server, "", Some(&huge)).await.status(), 400);
    assert_eq!(
        open_sse(&server, &format!("?since={huge}"), None)
            .await
            .status(),
        400
    );
    let long_id = "a".repeat(200);
    let res = server
        .get(&client(), &format!("/__nexus/traces/{long_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let s = stats(&server).await;
    assert_eq!(
        s["streams"]["live"], 0,
        "refused streams hold no place: {s}"
    );
}
