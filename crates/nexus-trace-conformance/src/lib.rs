//! The HTTP-level conformance suite, written once and run against every
//! adapter (axum and actix-web) over real sockets with real clients.
//!
//! An adapter's test file implements [`Harness`] by starting its own test
//! app on `127.0.0.1:0` and calls [`conformance_tests!`]. The test app must
//! serve these routes with the adapter's middleware (service name
//! `conformance`) unless noted:
//!
//! | route | behaviour |
//! |---|---|
//! | `GET /ok` | 200 `ok` |
//! | `GET /status/{code}` | responds with that status |
//! | `GET /error` | the handler returns an error (a 500 response) |
//! | `GET /panic` | the handler panics |
//! | `GET /stream` | a streaming body: 3 chunks, 50 ms apart |
//! | `GET /slow` | 200 after 3 s |
//! | `GET /slow-body` | headers at once, then 50 chunks 100 ms apart |
//! | `GET /deep` | a nested function records downstream `db.deep` through `current()` |
//! | `GET /spawned` | a spawned task, handed the context, records `spawned.call` |
//! | `GET /extract` | returns the trace id taken from the context extractor |
//! | `GET /no-layer` | *without* the middleware: uses the required extractor (must 500) |
//! | `GET /no-layer-optional` | *without* the middleware: optional extractor, returns `none` |
//! | `GET /orders`, `GET /payments/charge` | see [`tree`]: a call to a second service (`payments`, its own middleware) on the same bus |
//! | `/__nexus/...` | mounted per [`Opts`] (`/`, `/events`, `/traces/{id}`, `/stats`) |
//!
//! The server must stop gracefully when [`Stop::signal`] resolves, with the
//! routes' shutdown switch chained in front (`shutdown.after(stop.signal())`
//! into axum's `with_graceful_shutdown` or actix-web's `shutdown_signal`),
//! and call [`Stop::finished`] when it has stopped.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use nexus_trace_core::{Bus, TryRecvError};
use nexus_trace_http::serve::gate::Access;
use nexus_trace_http::serve::shutdown::Shutdown;
use serde_json::Value;

pub mod client;
pub mod csp;
pub mod stream_end;
pub mod suite;
pub mod tree;

/// How the `/__nexus` routes are mounted on a test server.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Mount the routes at all.
    pub mount: bool,
    /// `None`: loopback-only gate; `Some(token)`: bearer-token gate.
    pub token: Option<String>,
    /// A gate to mount instead of the one `token` selects.
    pub access: Option<Access>,
    /// Cap on concurrent stream clients.
    pub max_streams: usize,
    /// Ring capacity.
    pub capacity: usize,
    /// SSE keep-alive / WebSocket ping period.
    pub keep_alive: Duration,
    /// Bound on one write to a stream client.
    pub write_timeout: Duration,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            mount: true,
            token: None,
            access: None,
            max_streams: 8,
            capacity: 1024,
            keep_alive: Duration::from_secs(15),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// A running test server.
pub struct Server {
    /// Port it listens on.
    pub port: u16,
    /// The bus it traces into (tests publish directly to create lag).
    pub bus: Bus,
    /// Token to send, if the gate wants one.
    pub token: Option<String>,
    /// The routes' shutdown switch, when they are mounted.
    pub shutdown: Option<Shutdown>,
    /// Stops the server gracefully, as a signal handler would.
    pub stop: Stop,
    /// Keeps the server alive; dropping it stops the server.
    pub guard: Box<dyn Send + Sync>,
}

/// A graceful-stop signal for a test server, and word of its end.
#[derive(Debug, Clone)]
pub struct Stop {
    signal: Arc<tokio::sync::watch::Sender<bool>>,
    done: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            signal: Arc::new(tokio::sync::watch::channel(false).0),
            done: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }
}

impl Stop {
    /// Starts the graceful stop.
    pub fn trigger(&self) {
        self.signal.send_replace(true);
    }

    /// Resolves once [`trigger`](Self::trigger) was called: the harness
    /// hands it to the framework's graceful-shutdown hook.
    pub fn signal(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.signal.subscribe();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }

    /// The harness calls this when the server has stopped.
    pub fn finished(&self) {
        self.done.send_replace(true);
    }

    /// Has the server stopped within `timeout`?
    pub async fn wait_finished(&self, timeout: Duration) -> bool {
        let mut rx = self.done.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|done| *done))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("port", &self.port).finish()
    }
}

impl Server {
    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A request builder with the gate's credentials.
    pub fn get(&self, client: &reqwest::Client, path: &str) -> reqwest::RequestBuilder {
        let req = client.get(self.url(path));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// The retained events of one trace (the `events` of
    /// `/__nexus/traces/{id}`).
    pub async fn trace(&self, trace_id: &str) -> Vec<Value> {
        match self.trace_tree(trace_id).await.get_mut("events") {
            Some(Value::Array(events)) => std::mem::take(events),
            other => panic!("traces JSON without an events array: {other:?}"),
        }
    }

    /// The whole `/__nexus/traces/{id}` answer: the span tree and events.
    pub async fn trace_tree(&self, trace_id: &str) -> Value {
        let client = reqwest::Client::new();
        let res = self
            .get(&client, &format!("/__nexus/traces/{trace_id}"))
            .send()
            .await
            .expect("traces route");
        assert_eq!(res.status(), 200, "traces route status");
        serde_json::from_str(&res.text().await.unwrap()).expect("traces JSON")
    }

    /// Polls until the trace has its `request.end` and returns the trace.
    ///
    /// This is no proof that the end is the only one: a late duplicate would
    /// come after. [`Server::stop_and_audit`] checks that, once the server is
    /// quiescent.
    pub async fn finished_trace(&self, trace_id: &str) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let events = self.trace(trace_id).await;
            if events.iter().any(|e| e["kind"] == "request.end") {
                return events;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no request.end for trace {trace_id}: {events:#?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every event the bus holds, as JSON, oldest first. Panics if the ring
    /// has overwritten any: a count taken from it would be incomplete.
    pub fn all_events(&self) -> Vec<Value> {
        let mut sub = self.bus.subscribe(0);
        let mut out = Vec::new();
        loop {
            match sub.try_recv() {
                Ok(e) => out.push(serde_json::from_str(&e.to_json()).expect("event JSON")),
                Err(TryRecvError::Lagged(n)) => {
                    panic!("the ring overwrote {n} events; give the test a bigger capacity")
                }
                Err(_) => return out,
            }
        }
    }

    /// Stops the server gracefully and waits until it has stopped: every
    /// connection is closed and every request future and body dropped, so
    /// nothing can publish a `request.end` any more. Then checks, over every
    /// event ever published, that each request (a span with a
    /// `request.start`) has exactly one start and exactly one end, and
    /// returns those events.
    pub async fn stop_and_audit(&self) -> Vec<Value> {
        self.stop.trigger();
        assert!(
            self.stop.wait_finished(Duration::from_secs(30)).await,
            "the server did not stop within 30 s"
        );
        let events = self.all_events();
        let mut requests: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
        for e in &events {
            let kind = e["kind"].as_str().unwrap_or("");
            if kind != "request.start" && kind != "request.end" {
                continue;
            }
            let span = e["spanId"].as_str().expect("a request event has a spanId");
            let counts = requests.entry(span).or_default();
            if kind == "request.start" {
                counts.0 += 1;
            } else {
                counts.1 += 1;
            }
        }
        for (span, counts) in &requests {
            let of_span: Vec<&Value> = events.iter().filter(|e| e["spanId"] == *span).collect();
            assert_eq!(
                *counts,
                (1, 1),
                "request span {span}: (starts, ends) once the server stopped: {of_span:#?}"
            );
        }
        events
    }
}

/// Starts an adapter's test app.
pub trait Harness: Sync {
    /// Starts a server configured by `opts` and returns once it accepts.
    fn spawn(&self, opts: Opts) -> impl Future<Output = Server> + Send;
}

/// Generates one `#[tokio::test]` per conformance case for a harness.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::suite::$case(&$harness).await;
            }
        )*
    };
    ($harness:expr) => {
        $crate::conformance_tests!($harness;
            start_and_one_end_for_each_status,
            handler_error_and_panic_end_once,
            client_disconnect_before_response_is_aborted,
            client_disconnect_mid_body_is_aborted,
            streaming_body_ends_at_body_end,
            endpoint_is_the_route_template,
            downstream_from_deep_code_and_spawned_task,
            traceparent_is_continued_or_ignored,
            hostile_requests_are_served,
            extractor_without_layer_is_a_clear_500,
            not_mounted_is_404,
            token_gate,
            loopback_gate_ignores_forwarded_for,
            sse_resumes_exactly_once_with_last_event_id,
            sse_header_beats_query_and_rejects_malformed_ids,
            sse_reports_lag,
            websocket_resumes_exactly_once_across_reconnect,
            frames_cannot_be_injected,
            stream_cap_returns_429_and_spares_existing_streams,
            nexus_routes_are_not_recorded_and_dashboard_is_strict,
            dashboard_csp_allows_exactly_the_served_inline_code,
            stalled_stream_client_is_lagged_not_buffered,
            event_shapes_match_the_reference,
            reconnect_storm_leaves_nothing_behind,
            oversized_ids_are_refused,
            websocket_close_mid_burst_is_answered_at_once,
            websocket_reconnect_loop_is_exactly_once,
            websocket_pings_are_answered,
            stalled_client_is_cut_off_after_the_write_bound,
            vanished_clients_free_their_place,
            shutdown_closes_streams_with_1001_and_a_final_frame,
            trace_tree_spans_two_services,
            trace_flags_and_tracestate_are_propagated,
        );
    };
}
