//! Resuming a stream exactly once: `Last-Event-ID` and `?since=` over SSE,
//! `?since=` across a WebSocket reconnect, malformed and oversized ids.

use serde_json::Value;

use super::{client, open_sse, publish_logs, raw_request, stats, SECOND};
use crate::client::{id_of, ws_read, SseStream};
use crate::{Harness, Opts};

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
