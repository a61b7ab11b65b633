//! How event streams end: a client's close answered at once (also
//! mid-burst), exactly-once resume across many closes, pings, a client that
//! stops reading cut off after the write bound, and graceful shutdown.
//!
//! Waits poll with deadlines; the only timings asserted are the ones the
//! contract names (a close handshake under 500 ms, bounded totals).

use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use nexus_trace_core::{Bus, Event, Text};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::client::{id_of, ws_read, SseStream};
use crate::suite::{open_sse, publish_logs, stats};
use crate::{Harness, Opts, Server};

const SECOND: Duration = Duration::from_secs(1);
/// The close handshake bound the contract names.
const HANDSHAKE_BOUND: Duration = Duration::from_millis(500);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn events_url(server: &Server, query: &str) -> String {
    format!("ws://127.0.0.1:{}/__nexus/events{query}", server.port)
}

async fn ws_connect(server: &Server, query: &str) -> Ws {
    tokio_tungstenite::connect_async(events_url(server, query))
        .await
        .expect("ws connect")
        .0
}

/// Log events published every millisecond by a task, until stopped.
struct Traffic {
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    fn start(bus: &Bus, per_ms: usize) -> Traffic {
        let bus = bus.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                for _ in 0..per_ms {
                    bus.publish(Event::log("traffic"));
                }
            }
        });
        Traffic { task }
    }

    /// Stops publishing; nothing is published after this returns.
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Polls `/__nexus/stats` until `ok` holds; panics with the last value
/// after `timeout`.
pub(crate) async fn wait_for_stats(
    server: &Server,
    what: &str,
    timeout: Duration,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let s = stats(server).await;
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: stats are {s}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn ended(s: &Value, reason: &str) -> u64 {
    s["streams"]["ended"][reason]
        .as_u64()
        .unwrap_or_else(|| panic!("streams.ended.{reason} in {s}"))
}

/// What a client saw between sending its Close and the server's answer.
struct Closed {
    /// The server's close code.
    code: Option<u16>,
    /// Event messages that were already on their way.
    events: Vec<Value>,
    took: Duration,
}

/// Reads until the server's Close (answered by the client library), keeping
/// the event messages before it.
async fn until_close<S>(ws: &mut S, timeout: Duration) -> Closed
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    let started = Instant::now();
    let deadline = started + timeout;
    let mut events = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                events.push(serde_json::from_str(t.as_str()).expect("one JSON value"))
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Closed {
                    code: frame.map(|f| u16::from(f.code)),
                    events,
                    took: started.elapsed(),
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => panic!("connection failed before the server's Close: {e}"),
            Ok(None) => panic!("connection ended without the server's Close"),
            Err(_) => panic!("no Close from the server within {timeout:?}"),
        }
    }
}

/// Sends a Close and reads until the server's answer.
async fn close_handshake<S>(ws: &mut S) -> Closed
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    let started = Instant::now();
    ws.send(Message::Close(None)).await.expect("send Close");
    let mut closed = until_close(ws, 5 * SECOND).await;
    closed.took = started.elapsed();
    closed
}

/// After the close handshake the server closes the connection.
async fn connection_ends(ws: &mut Ws) {
    let end = tokio::time::timeout(5 * SECOND, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    assert!(end.is_ok(), "the server closed the connection");
}

/// A client closes during a burst of events: the Close is answered in under
/// 500 ms, the connection ends, and the stream's place is freed and counted
/// as a client close. An idle stream's close is answered just as fast.
pub async fn websocket_close_mid_burst_is_answered_at_once(h: &impl Harness) {
    let server = h
        .spawn(Opts {
            capacity: 4096,
            ..Opts::default()
        })
        .await;
    let traffic = Traffic::start(&server.bus, 100);
    let mut ws = ws_connect(&server, "?since=0").await;
    let first = ws_read(&mut ws, 500, 10 * SECOND).await;
    assert_eq!(first.len(), 500, "the burst flows");
    let busy = close_handshake(&mut ws).await;
    assert!(
        busy.took < HANDSHAKE_BOUND,
        "close mid-burst answered in {:?} ({} events were in flight)",
        busy.took,
        busy.events.len()
    );
    connection_ends(&mut ws).await;
    traffic.stop().await;
    wait_for_stats(&server, "place freed after a busy close", 5 * SECOND, |s| {
        s["streams"]["live"] == 0 && ended(s, "client_close") == 1
    })
    .await;

    let mut ws = ws_connect(&server, &format!("?since={}", server.bus.last_id())).await;
    wait_for_stats(&server, "idle stream open", 5 * SECOND, |s| {
        s["streams"]["live"] == 1
    })
    .await;
    let idle = close_handshake(&mut ws).await;
    assert!(
        idle.took < HANDSHAKE_BOUND,
        "idle close took {:?}",
        idle.took
    );
    connection_ends(&mut ws).await;
    let s = wait_for_stats(
        &server,
        "place freed after an idle close",
        5 * SECOND,
        |s| s["streams"]["live"] == 0 && ended(s, "client_close") == 2,
    )
    .await;
    assert_eq!(ended(&s, "write_timeout"), 0, "{s}");
    eprintln!(
        "close handshake: mid-burst {:?} ({} events in flight), idle {:?}",
        busy.took,
        busy.events.len(),
        idle.took
    );
}

/// The upstream dashboard's reconnect pattern under traffic: 100 cycles of
/// open `?since=<last id>`, read a little, close, read what was in flight
/// until the server's Close. Every id is seen exactly once across them, in
/// order, and the loop finishes in bounded time.
pub async fn websocket_reconnect_loop_is_exactly_once(h: &impl Harness) {
    let server = h
        .spawn(Opts {
            capacity: 1 << 16,
            ..Opts::default()
        })
        .await;
    let traffic = Traffic::start(&server.bus, 5);
    let mut last = 0u64;
    let mut seen = 0u64;
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    let mut take = |events: &[Value], last: &mut u64| {
        for e in events {
            assert_ne!(e["kind"], "lagged", "no event may be lost: {e}");
            let id = id_of(e);
            assert_eq!(id, *last + 1, "ids continue exactly once across reconnects");
            *last = id;
            seen += 1;
        }
    };
    for cycle in 0..100u64 {
        let mut ws = ws_connect(&server, &format!("?since={last}")).await;
        let want = 1 + (cycle % 20) as usize;
        let got = ws_read(&mut ws, want, 5 * SECOND).await;
        take(&got, &mut last);
        let closed = close_handshake(&mut ws).await;
        take(&closed.events, &mut last);
        slowest = slowest.max(closed.took);
    }
    let cycles = started.elapsed();
    traffic.stop().await;
    let end = server.bus.last_id();
    let mut ws = ws_connect(&server, &format!("?since={last}")).await;
    while last < end {
        let got = ws_read(&mut ws, 1, 5 * SECOND).await;
        assert!(!got.is_empty(), "the tail after {last} arrives");
        take(&got, &mut last);
    }
    close_handshake(&mut ws).await;
    assert_eq!(seen, end, "every id from 1 to {end} seen exactly once");
    assert!(
        cycles < 30 * SECOND,
        "100 close/reopen cycles took {cycles:?}"
    );
    wait_for_stats(&server, "every place freed", 5 * SECOND, |s| {
        s["streams"]["live"] == 0 && ended(s, "client_close") == 101
    })
    .await;
    eprintln!("100 cycles in {cycles:?}, {end} events, slowest close handshake {slowest:?}");
}

/// Keep-alive pings reach an idle WebSocket client; its pings are answered
/// with the same payload, its pongs are ignored, and its close frees the
/// place.
pub async fn websocket_pings_are_answered(h: &impl Harness) {
    let server = h
        .spawn(Opts {
            keep_alive: Duration::from_millis(100),
            max_streams: 1,
            ..Opts::default()
        })
        .await;
    let mut ws = ws_connect(&server, "").await;
    let first = tokio::time::timeout(5 * SECOND, ws.next()).await;
    assert!(
        matches!(first, Ok(Some(Ok(Message::Ping(_))))),
        "a keep-alive ping: {first:?}"
    );
    ws.send(Message::Ping("hi".into())).await.unwrap();
    let deadline = Instant::now() + 5 * SECOND;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Pong(p)))) => {
                assert_eq!(&p[..], b"hi");
                break;
            }
            Ok(Some(Ok(Message::Ping(_)))) => {}
            other => panic!("expected a pong, got {other:?}"),
        }
    }
    ws.send(Message::Pong("unasked".into())).await.unwrap();
    publish_logs(&server, 1);
    assert_eq!(
        ws_read(&mut ws, 1, 5 * SECOND).await.len(),
        1,
        "still streaming"
    );
    let closed = close_handshake(&mut ws).await;
    assert!(
        closed.took < HANDSHAKE_BOUND,
        "close took {:?}",
        closed.took
    );
    wait_for_stats(&server, "place freed", 5 * SECOND, |s| {
        s["streams"]["live"] == 0
    })
    .await;
    drop(ws_connect(&server, "").await);
}

/// Clients that vanish without a goodbye free their place: an idle SSE
/// client that drops its connection (noticed at the latest when the next
/// keep-alive fails to write), and a WebSocket client whose TCP connection
/// ends without a close handshake.
pub async fn vanished_clients_free_their_place(h: &impl Harness) {
    let server = h
        .spawn(Opts {
            keep_alive: Duration::from_millis(200),
            ..Opts::default()
        })
        .await;
    let since = format!("?since={}", server.bus.last_id());
    let res = open_sse(&server, &since, None).await;
    assert_eq!(res.status(), 200);
    wait_for_stats(&server, "sse open", 5 * SECOND, |s| {
        s["streams"]["live"] == 1
    })
    .await;
    drop(res);
    wait_for_stats(&server, "sse client gone", 5 * SECOND, |s| {
        s["streams"]["live"] == 0 && ended(s, "disconnected") == 1
    })
    .await;
    let ws = ws_connect(&server, &since).await;
    wait_for_stats(&server, "ws open", 5 * SECOND, |s| {
        s["streams"]["live"] == 1
    })
    .await;
    drop(ws);
    let s = wait_for_stats(&server, "ws client gone", 5 * SECOND, |s| {
        s["streams"]["live"] == 0 && ended(s, "disconnected") == 2
    })
    .await;
    assert_eq!(s["subscribers"], 0, "{s}");
}

/// A TCP connection to the server whose receive buffer is tiny and which is
/// never read: the server's writes stall after a few kilobytes.
async fn stalling_socket(server: &Server) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket
        .connect(([127, 0, 0, 1], server.port).into())
        .await
        .expect("connect")
}

/// Publishes 4 KiB events until `ok` holds for the stats.
async fn publish_until(server: &Server, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    // One shared text: each event still serialises to 4 KiB.
    let fat = Text::from("x".repeat(4096));
    let deadline = Instant::now() + 30 * SECOND;
    loop {
        for _ in 0..32 {
            server.bus.publish(Event::log(fat.clone()));
        }
        let s = stats(server).await;
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: stats are {s}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A client that never reads (WebSocket, then SSE) is cut off once a write
/// has made no progress for the write bound: its place is freed, counted
/// as a write timeout, and taken by the next client.
pub async fn stalled_client_is_cut_off_after_the_write_bound(h: &impl Harness) {
    let server = h
        .spawn(Opts {
            max_streams: 1,
            capacity: 256,
            write_timeout: Duration::from_millis(300),
            ..Opts::default()
        })
        .await;
    let since = server.bus.last_id();
    let tcp = stalling_socket(&server).await;
    let (stalled_ws, _) =
        tokio_tungstenite::client_async(events_url(&server, &format!("?since={since}")), tcp)
            .await
            .expect("ws handshake");
    wait_for_stats(&server, "stalled ws admitted", 5 * SECOND, |s| {
        s["streams"]["live"] == 1
    })
    .await;
    let started = Instant::now();
    publish_until(&server, "stalled ws cut off", |s| {
        ended(s, "write_timeout") == 1 && s["streams"]["live"] == 0
    })
    .await;
    let ws_cut = started.elapsed();

    // The place is reused: the cap is 1.
    let mut sse =
        SseStream::new(open_sse(&server, &format!("?since={}", server.bus.last_id()), None).await);
    publish_logs(&server, 1);
    assert!(
        sse.next(5 * SECOND).await.is_some(),
        "a new client is served"
    );
    drop(sse);
    wait_for_stats(&server, "sse reader gone", 5 * SECOND, |s| {
        s["streams"]["live"] == 0
    })
    .await;

    // The same for an SSE client that never reads.
    let mut stalled_sse = stalling_socket(&server).await;
    let request = format!(
        "GET /__nexus/events?since={} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        server.bus.last_id()
    );
    stalled_sse.write_all(request.as_bytes()).await.unwrap();
    wait_for_stats(&server, "stalled sse admitted", 5 * SECOND, |s| {
        s["streams"]["live"] == 1
    })
    .await;
    let started = Instant::now();
    let s = publish_until(&server, "stalled sse cut off", |s| {
        ended(s, "write_timeout") == 2 && s["streams"]["live"] == 0
    })
    .await;
    let sse_cut = started.elapsed();
    assert_eq!(s["streams"]["refused"], 0, "{s}");

    let mut ws = ws_connect(&server, &format!("?since={}", server.bus.last_id())).await;
    publish_logs(&server, 1);
    assert_eq!(
        ws_read(&mut ws, 1, 5 * SECOND).await.len(),
        1,
        "place reused"
    );
    drop((stalled_ws, stalled_sse));
    eprintln!("stalled clients cut off after: ws {ws_cut:?}, sse {sse_cut:?} (bound 300 ms)");
}

/// Shutdown: every open WebSocket stream gets Close 1001, every SSE stream a
/// final `shutdown` frame and the end of its body; the counters say so and
/// new streams get 503. Through the server's graceful stop, wired as the
/// docs say, the same happens and the server is not held up by its streams.
pub async fn shutdown_closes_streams_with_1001_and_a_final_frame(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    publish_logs(&server, 3);
    let mut a = ws_connect(&server, "?since=0").await;
    let mut b = ws_connect(&server, "?since=0").await;
    assert_eq!(ws_read(&mut a, 3, 5 * SECOND).await.len(), 3);
    assert_eq!(ws_read(&mut b, 3, 5 * SECOND).await.len(), 3);
    let mut sse = SseStream::new(open_sse(&server, "?since=0", None).await);
    for _ in 0..3 {
        assert!(sse.next(5 * SECOND).await.is_some());
    }
    wait_for_stats(&server, "three streams", 5 * SECOND, |s| {
        s["streams"]["live"] == 3
    })
    .await;
    let shutdown = server.shutdown.clone().expect("routes mounted");
    let started = Instant::now();
    shutdown.trigger();
    let all_ended = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.closed().await;
            started.elapsed()
        })
    };
    for ws in [&mut a, &mut b] {
        let closed = until_close(ws, 5 * SECOND).await;
        assert_eq!(closed.code, Some(1001), "going away");
        assert!(closed.events.is_empty(), "nothing new was published");
        // Reading on sends the client's answer; then the server closes.
        connection_ends(ws).await;
    }
    let last = sse.next(5 * SECOND).await.expect("the final SSE frame");
    // No `id:` line: the client's last event id stays at the last event.
    assert_eq!(
        (last.event.as_str(), last.id.as_deref()),
        ("shutdown", Some("3"))
    );
    let v: Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["next"].as_u64()),
        (Some("shutdown"), Some(4))
    );
    assert!(sse.next(5 * SECOND).await.is_none(), "the SSE body ends");
    let goodbyes = tokio::time::timeout(5 * SECOND, all_ended)
        .await
        .expect("closed() resolves once every stream ended")
        .unwrap();
    let s = wait_for_stats(&server, "all ended by shutdown", 5 * SECOND, |s| {
        s["streams"]["live"] == 0 && ended(s, "shutdown") == 3
    })
    .await;
    assert_eq!(
        ended(&s, "write_timeout") + ended(&s, "client_close"),
        0,
        "{s}"
    );
    assert_eq!(open_sse(&server, "?since=0", None).await.status(), 503);
    assert!(
        tokio_tungstenite::connect_async(events_url(&server, ""))
            .await
            .is_err(),
        "no new WebSocket stream"
    );

    let server = h.spawn(Opts::default()).await;
    let mut ws = ws_connect(&server, "?since=0").await;
    let mut sse = SseStream::new(open_sse(&server, "?since=0", None).await);
    publish_logs(&server, 1);
    assert_eq!(ws_read(&mut ws, 1, 5 * SECOND).await.len(), 1);
    assert!(sse.next(5 * SECOND).await.is_some());
    let started = Instant::now();
    server.stop.trigger();
    let stopped = {
        let stop = server.stop.clone();
        tokio::spawn(async move {
            stop.wait_finished(10 * SECOND)
                .await
                .then(|| started.elapsed())
        })
    };
    assert_eq!(until_close(&mut ws, 5 * SECOND).await.code, Some(1001));
    connection_ends(&mut ws).await;
    let last = sse.next(5 * SECOND).await.expect("the final SSE frame");
    assert_eq!(last.event, "shutdown");
    assert!(sse.next(5 * SECOND).await.is_none(), "the SSE body ends");
    let stopped = stopped
        .await
        .unwrap()
        .expect("the server stopped; its open streams did not hold it up");
    eprintln!(
        "shutdown: every stream ended {goodbyes:?} after the trigger; \
         graceful stop with open streams took {stopped:?}"
    );
}
