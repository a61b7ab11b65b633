//! The cases. Each takes a [`Harness`](crate::Harness), starts the servers
//! it needs and asserts what a user relies on, over HTTP only.

use std::time::Duration;

use nexus_trace_core::{Event, Text};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::id_of;
use crate::Server;

mod dashboard;
mod gate;
mod recording;
mod resume;
mod streams;

pub use dashboard::{
    dashboard_csp_allows_exactly_the_served_inline_code,
    nexus_routes_are_not_recorded_and_dashboard_is_strict,
};
pub use gate::{loopback_gate_ignores_forwarded_for, not_mounted_is_404, token_gate};
pub use recording::{
    client_disconnect_before_response_is_aborted, client_disconnect_mid_body_is_aborted,
    downstream_from_deep_code_and_spawned_task, endpoint_is_the_route_template,
    event_shapes_match_the_reference, extractor_without_layer_is_a_clear_500,
    handler_error_and_panic_end_once, hostile_requests_are_served,
    start_and_one_end_for_each_status, streaming_body_ends_at_body_end,
    traceparent_is_continued_or_ignored,
};
pub use resume::{
    oversized_ids_are_refused, sse_header_beats_query_and_rejects_malformed_ids,
    sse_resumes_exactly_once_with_last_event_id, websocket_resumes_exactly_once_across_reconnect,
};
pub use streams::{
    frames_cannot_be_injected, reconnect_storm_leaves_nothing_behind, sse_reports_lag,
    stalled_stream_client_is_lagged_not_buffered,
    stream_cap_returns_429_and_spares_existing_streams,
};

pub use crate::stream_end::{
    shutdown_closes_streams_with_1001_and_a_final_frame,
    stalled_client_is_cut_off_after_the_write_bound, vanished_clients_free_their_place,
    websocket_close_mid_burst_is_answered_at_once, websocket_pings_are_answered,
    websocket_reconnect_loop_is_exactly_once,
};
pub use crate::tree::{trace_flags_and_tracestate_are_propagated, trace_tree_spans_two_services};

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

pub(crate) async fn stats(server: &Server) -> Value {
    let res = server
        .get(&client(), "/__nexus/stats")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    serde_json::from_str(&res.text().await.unwrap()).unwrap()
}
