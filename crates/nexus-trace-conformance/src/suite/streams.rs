//! Event streams under pressure: lag frames, frame injection, the stream
//! cap, stalled clients and reconnect storms.

use std::time::Duration;

use futures_util::StreamExt;
use nexus_trace_core::Event;
use serde_json::Value;

use eventsource_stream::Eventsource;

use super::{client, open_sse, publish_logs, publish_logs_with, trace_id, SECOND};
use crate::client::{id_of, SseStream};
use crate::stream_end::wait_for_stats;
use crate::{Harness, Opts};

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
