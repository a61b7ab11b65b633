//! The exporter against an in-process OTLP/HTTP receiver that decodes what it
//! gets with the official `ExportTraceServiceRequest` type.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use nexus_trace_core::Bus;
use nexus_trace_http::record::request::{Outcome, RequestInfo, RequestRecording, TraceConfig};
use nexus_trace_otlp::proto::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use nexus_trace_otlp::proto::common::v1::any_value::Value as Any;
use nexus_trace_otlp::proto::common::v1::KeyValue;
use nexus_trace_otlp::proto::trace::v1::span::SpanKind;
use nexus_trace_otlp::proto::trace::v1::status::StatusCode as OtelStatus;
use nexus_trace_otlp::proto::trace::v1::Span;
use nexus_trace_otlp::{OtlpExporter, OtlpExporterBuilder};
use prost::Message;
use tokio::sync::mpsc;

/// How the receiver answers.
#[derive(Clone, Copy)]
enum Mode {
    Ok,
    /// Sleeps this long before answering 200.
    Slow(Duration),
    /// Answers 503 to the first `n` requests, then 200.
    Unavailable(usize),
    /// Answers 200 with a partial success rejecting this many spans.
    Reject(i64),
}

struct Receiver {
    addr: SocketAddr,
    got: mpsc::UnboundedReceiver<(HeaderMap, ExportTraceServiceRequest)>,
}

#[derive(Clone)]
struct Rx {
    tx: mpsc::UnboundedSender<(HeaderMap, ExportTraceServiceRequest)>,
    mode: Mode,
    calls: Arc<AtomicUsize>,
}

async fn traces(State(rx): State<Rx>, headers: HeaderMap, body: Bytes) -> (StatusCode, Vec<u8>) {
    let call = rx.calls.fetch_add(1, Ordering::SeqCst);
    match rx.mode {
        Mode::Slow(d) => tokio::time::sleep(d).await,
        Mode::Unavailable(n) if call < n => return (StatusCode::SERVICE_UNAVAILABLE, Vec::new()),
        _ => {}
    }
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    let _ = rx.tx.send((headers, req));
    let response = match rx.mode {
        Mode::Reject(n) => ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: n,
                error_message: "span too old".into(),
            }),
        },
        _ => ExportTraceServiceResponse::default(),
    };
    (StatusCode::OK, response.encode_to_vec())
}

async fn receiver(mode: Mode) -> Receiver {
    let (tx, got) = mpsc::unbounded_channel();
    let state = Rx {
        tx,
        mode,
        calls: Arc::new(AtomicUsize::new(0)),
    };
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .route("/custom/traces", post(traces))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver { addr, got }
}

impl Receiver {
    /// Everything received until `n` spans arrived (or 10 s passed).
    async fn spans(&mut self, n: usize) -> Vec<(String, Span)> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while out.len() < n {
            let Ok(Some((_, req))) = tokio::time::timeout_at(deadline, self.got.recv()).await
            else {
                break;
            };
            out.extend(flatten(&req));
        }
        out
    }
}

fn flatten(req: &ExportTraceServiceRequest) -> Vec<(String, Span)> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let resource = rs.resource.clone().unwrap_or_default();
        let Some(Any::StringValue(service)) = attr(&resource.attributes, "service.name") else {
            panic!("resource without service.name: {resource:?}");
        };
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                out.push((service.clone(), span.clone()));
            }
        }
    }
    out
}

fn attr(attrs: &[KeyValue], key: &str) -> Option<Any> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|v| v.value)
}

fn info<'a>(
    method: &'a str,
    path: &'a str,
    route: &'a str,
    tp: Option<&'a [u8]>,
) -> RequestInfo<'a> {
    RequestInfo {
        tracestate: None,
        method,
        path,
        query: None,
        route: Some(route),
        traceparent: tp,
    }
}

fn config(service: &str) -> TraceConfig {
    TraceConfig {
        service: nexus_trace_core::Text::copy(service),
        ..TraceConfig::default()
    }
}

/// Polls `ok` until it holds; panics naming `what` after 20 s.
async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A short flush interval, so the tests that wait for spans without a
/// shutdown get them soon; tests whose counts depend on how spans are
/// split into requests set a long one and let shutdown send.
fn builder(bus: &Bus, addr: SocketAddr) -> OtlpExporterBuilder {
    OtlpExporter::builder(bus)
        .endpoint(format!("http://{addr}"))
        .flush_interval(Duration::from_millis(20))
}

/// `n` complete requests, each with one downstream call.
fn publish_requests(bus: &Bus, n: usize) {
    for _ in 0..n {
        let mut t = RequestRecording::start(bus, &config("load"), info("GET", "/x", "/x", None));
        t.context()
            .expect("a recording outside a poll has its context")
            .record("db.x", Instant::now(), None);
        t.finish(Outcome::Completed { status: 200 });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_become_server_spans_with_children() {
    let mut rx = receiver(Mode::Ok).await;
    let bus = Bus::new(1024);
    let exporter = builder(&bus, rx.addr)
        .headers([("x-api-key", "secret"), ("x-tenant", "shop")])
        .build()
        .unwrap()
        .spawn()
        .unwrap();
    assert_eq!(
        exporter.traces_url(),
        format!("http://{}/v1/traces", rx.addr)
    );

    // A request continuing a caller's trace, with a failing DB call and a log.
    let tp = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut users = RequestRecording::start(
        &bus,
        &config("shop"),
        info("GET", "/users/42", "/users/{id}", Some(tp)),
    );
    let ctx = users
        .context()
        .expect("a recording outside a poll has its context")
        .clone();
    ctx.log("loading user");
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(2));
    ctx.record("db.users.get", start, Some(&"database is locked"));
    ctx.record("cache.get", Instant::now(), None);
    users.finish(Outcome::Completed { status: 200 });

    // A failing request of another service, no incoming traceparent.
    let mut charge = RequestRecording::start(
        &bus,
        &config("payments"),
        info("POST", "/charge", "/charge", None),
    );
    let charge_ctx = charge
        .context()
        .expect("a recording outside a poll has its context")
        .clone();
    charge.finish(Outcome::Failed {
        status: 500,
        error: "ledger unavailable".into(),
    });

    // Flushed by the flush interval, no shutdown needed.
    let spans = rx.spans(4).await;
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let find = |name: &str| {
        spans
            .iter()
            .find(|(_, s)| s.name == name)
            .unwrap_or_else(|| panic!("no span {name}: {spans:#?}"))
            .clone()
    };

    let (service, server) = find("GET /users/{id}");
    assert_eq!(service, "shop");
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(server.trace_id, ctx.trace_id().to_bytes());
    assert_eq!(
        hex(&server.trace_id),
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "continues the caller's trace"
    );
    assert_eq!(server.span_id, ctx.span().span_id.to_bytes());
    assert_eq!(hex(&server.parent_span_id), "00f067aa0ba902b7");
    let a = &server.attributes;
    assert_eq!(
        attr(a, "http.request.method"),
        Some(Any::StringValue("GET".into()))
    );
    assert_eq!(
        attr(a, "url.path"),
        Some(Any::StringValue("/users/42".into()))
    );
    assert_eq!(
        attr(a, "http.route"),
        Some(Any::StringValue("/users/{id}".into()))
    );
    assert_eq!(
        attr(a, "http.response.status_code"),
        Some(Any::IntValue(200))
    );
    assert!(server.status.is_none(), "a 200 has an unset status");
    assert!(server.start_time_unix_nano > 0);
    assert!(server.end_time_unix_nano >= server.start_time_unix_nano);
    assert_eq!(server.events.len(), 1);
    assert_eq!(server.events[0].name, "loading user");

    let (service, db) = find("db.users.get");
    assert_eq!(service, "shop");
    assert_eq!(db.kind, SpanKind::Client as i32);
    assert_eq!(db.trace_id, server.trace_id);
    assert_eq!(
        db.parent_span_id, server.span_id,
        "child of the request span"
    );
    assert_ne!(db.span_id, server.span_id);
    let status = db.status.clone().unwrap();
    assert_eq!(status.code, OtelStatus::Error as i32);
    assert_eq!(status.message, "database is locked");
    assert!(db.end_time_unix_nano - db.start_time_unix_nano >= 2_000_000);
    assert!(db.start_time_unix_nano >= server.start_time_unix_nano);

    let (_, cache) = find("cache.get");
    assert_eq!(cache.parent_span_id, server.span_id);
    assert!(cache.status.is_none());

    let (service, failed) = find("POST /charge");
    assert_eq!(service, "payments");
    assert_eq!(failed.trace_id, charge_ctx.trace_id().to_bytes());
    assert!(failed.parent_span_id.is_empty(), "a root span");
    let status = failed.status.clone().unwrap();
    assert_eq!(status.code, OtelStatus::Error as i32);
    assert_eq!(status.message, "ledger unavailable");
    assert_eq!(
        attr(&failed.attributes, "http.response.status_code"),
        Some(Any::IntValue(500))
    );

    let stats = exporter.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stats.spans_exported, 4);
    assert_eq!(stats.spans_dropped(), 0, "{stats:?}");
    assert!(stats.batches_exported >= 1);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_resources_arrive() {
    let mut rx = receiver(Mode::Ok).await;
    let bus = Bus::new(1024);
    let env = |name: &str| match name {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" => Some(format!("http://{}/custom/traces", rx.addr)),
        "OTEL_EXPORTER_OTLP_HEADERS" => Some("authorization=Bearer%20abc,x-tenant=a%2Cb".into()),
        _ => None,
    };
    // Only shutdown sends (one request with all three spans), however slowly
    // the spans are published.
    let exporter = OtlpExporter::builder(&bus)
        .with_env_from(env)
        .unwrap()
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap()
        .spawn()
        .unwrap();
    for service in ["a", "b", "a"] {
        let mut t = RequestRecording::start(&bus, &config(service), info("GET", "/", "/", None));
        t.finish(Outcome::Completed { status: 204 });
    }
    // Shutdown flushes the partial batch.
    let stats = exporter.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stats.spans_exported, 3, "{stats:?}");
    let (headers, req) = rx.got.recv().await.unwrap();
    assert_eq!(headers["authorization"], "Bearer abc");
    assert_eq!(headers["x-tenant"], "a,b");
    assert_eq!(headers["content-type"], "application/x-protobuf");
    let services: Vec<_> = req
        .resource_spans
        .iter()
        .map(|rs| {
            let r = rs.resource.clone().unwrap();
            (
                attr(&r.attributes, "service.name"),
                rs.scope_spans.iter().map(|s| s.spans.len()).sum::<usize>(),
            )
        })
        .collect();
    assert_eq!(
        services,
        vec![
            (Some(Any::StringValue("a".into())), 2),
            (Some(Any::StringValue("b".into())), 1)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_everything_complete() {
    let mut rx = receiver(Mode::Ok).await;
    let bus = Bus::new(4096);
    // A long flush interval and a big batch: only shutdown sends anything.
    let exporter = builder(&bus, rx.addr)
        .flush_interval(Duration::from_secs(3600))
        .batch_size(10_000)
        .build()
        .unwrap()
        .spawn()
        .unwrap();
    publish_requests(&bus, 100);
    // One request still open at shutdown: counted, not exported.
    let open = RequestRecording::start(&bus, &config("load"), info("GET", "/x", "/x", None));
    let stats = exporter.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stats.spans_exported, 200, "{stats:?}");
    assert_eq!(stats.dropped.shutdown, 1, "{stats:?}");
    assert_eq!(rx.spans(200).await.len(), 200);
    drop(open);
}

/// With no collector listening, every span is lost, and every lost span is
/// counted: the connection errors are retried a bounded number of times and
/// the totals add up. (Whether publishing waits for the exporter is not a
/// question for a test: `benches/` measures publish cost.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_down_every_lost_span_is_counted() {
    // A port where nothing listens.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let bus = Bus::new(1 << 14);
    let exporter = builder(&bus, addr)
        .batch_size(50)
        .max_retries(2)
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap()
        .spawn()
        .unwrap();
    // 6000 events, 4000 spans. The exporter has read every event and failed
    // (after retries) at least once before it is stopped.
    publish_requests(&bus, 2000);
    let monitor = exporter.monitor();
    wait_until("every event read and a batch failed", || {
        let s = monitor.stats();
        s.events_received == 6000 && s.batches_failed > 0
    })
    .await;
    let stats = exporter.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stats.spans_exported, 0);
    assert!(stats.spans_dropped() > 0, "{stats:?}");
    assert!(stats.batches_failed > 0, "{stats:?}");
    assert!(
        stats.retries > 0,
        "connection errors are retried: {stats:?}"
    );
    // Every span is accounted for: nothing lagged, nothing open.
    assert_eq!(stats.events_lagged, 0);
    assert_eq!(stats.events_received, 6000);
    assert_eq!(stats.spans_dropped(), 4000, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_collector_times_out_and_counts() {
    let rx = receiver(Mode::Slow(Duration::from_secs(5))).await;
    let bus = Bus::new(1 << 14);
    let exporter = builder(&bus, rx.addr)
        .batch_size(100)
        .max_retries(3)
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap()
        .spawn()
        .unwrap();
    publish_requests(&bus, 1000);
    let monitor = exporter.monitor();
    wait_until("a batch timed out", || monitor.stats().batches_failed > 0).await;
    let mid = monitor.stats();
    assert!(mid.batches_failed > 0, "{mid:?}");
    let last_error = monitor.last_error().unwrap_or_default();
    assert!(last_error.contains("timed out"), "{last_error}");
    let stats = exporter.shutdown(Duration::from_secs(2)).await;
    assert_eq!(stats.spans_exported, 0);
    assert_eq!(stats.retries, 0, "timeouts are not retried: {stats:?}");
    assert!(stats.dropped.export_failed > 0, "{stats:?}");
    assert!(
        stats.dropped.queue_full > 0,
        "the sender was busy: {stats:?}"
    );
    assert_eq!(stats.spans_dropped(), 2000, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_collector_is_retried() {
    let mut rx = receiver(Mode::Unavailable(2)).await;
    let bus = Bus::new(1024);
    let exporter = builder(&bus, rx.addr)
        .max_retries(3)
        .backoff(Duration::from_millis(1), Duration::from_millis(10))
        .build()
        .unwrap()
        .spawn()
        .unwrap();
    publish_requests(&bus, 5);
    assert_eq!(rx.spans(10).await.len(), 10);
    let stats = exporter.shutdown(Duration::from_secs(5)).await;
    assert_eq!((stats.spans_exported, stats.retries), (10, 2), "{stats:?}");
    assert_eq!(stats.batches_failed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_success_counts_rejected_spans() {
    let rx = receiver(Mode::Reject(1)).await;
    let bus = Bus::new(1024);
    // The receiver rejects one span per request: only shutdown sends, so
    // all four spans go in one request however the threads are scheduled.
    let exporter = builder(&bus, rx.addr)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap()
        .spawn()
        .unwrap();
    publish_requests(&bus, 2);
    let stats = exporter.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stats.dropped.rejected, 1, "{stats:?}");
    assert_eq!(stats.spans_exported, 3, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_exporter_counts_missed_events() {
    let mut rx = receiver(Mode::Ok).await;
    let bus = Bus::new(16);
    // Subscribed now, but not yet reading: the ring laps it.
    let exporter = builder(&bus, rx.addr).build().unwrap();
    publish_requests(&bus, 20); // 60 events into a ring of 16
    let handle = exporter.spawn().unwrap();
    let stats = handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stats.events_lagged, 60 - 16, "{stats:?}");
    assert_eq!(stats.events_received, 16);
    assert!(stats.spans_exported > 0);
    assert!(!rx.spans(1).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_bus_flushes_and_stops_the_exporter() {
    let mut rx = receiver(Mode::Ok).await;
    let bus = Bus::new(1024);
    let exporter = builder(&bus, rx.addr)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap()
        .spawn()
        .unwrap();
    publish_requests(&bus, 3);
    drop(bus);
    assert_eq!(rx.spans(6).await.len(), 6);
    wait_until("the exporter stopped", || exporter.is_finished()).await;
    assert_eq!(exporter.stats().spans_exported, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_keeps_pending_bounded() {
    let mut rx = receiver(Mode::Ok).await;
    let bus = Bus::new(1024);
    let exporter = builder(&bus, rx.addr)
        .max_pending(2)
        .build()
        .unwrap()
        .spawn()
        .unwrap();
    let mut open: Vec<_> = (0..5)
        .map(|_| RequestRecording::start(&bus, &config("x"), info("GET", "/", "/", None)))
        .collect();
    for t in &mut open {
        t.finish(Outcome::Completed { status: 200 });
    }
    // Evicted starts still export from their end event.
    assert_eq!(rx.spans(5).await.len(), 5);
    let stats = exporter.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stats.pending_evicted, 3, "{stats:?}");
    assert_eq!(stats.spans_exported, 5);
}

#[test]
fn spawn_outside_a_runtime_is_an_error() {
    let bus = Bus::new(8);
    let err = OtlpExporter::builder(&bus)
        .build()
        .unwrap()
        .spawn()
        .unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}

/// `/orders` → a CLIENT span → payments `/charge` (continuing the client
/// span's `traceparent`) → an INTERNAL `ledger.write` span with a log: the
/// exported parents are exactly the tree `/__nexus/traces/{id}` serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_parents_form_the_trace_tree() {
    use nexus_trace_core::{TraceTree, WireId};

    let mut rx = receiver(Mode::Ok).await;
    let bus = Bus::new(1024);
    let mut copy = bus.subscribe(0);
    let exporter = builder(&bus, rx.addr).build().unwrap().spawn().unwrap();

    let mut orders = RequestRecording::start(
        &bus,
        &config("shop"),
        info("POST", "/orders", "/orders", None),
    );
    let call = orders
        .context()
        .expect("a recording outside a poll has its context")
        .span_builder("http.payments.charge")
        .client()
        .start();
    let header = call.traceparent().unwrap().to_string();
    let mut charge = RequestRecording::start(
        &bus,
        &config("payments"),
        info("POST", "/charge", "/charge", Some(header.as_bytes())),
    );
    let ledger = charge
        .context()
        .expect("a recording outside a poll has its context")
        .start_span("ledger.write");
    ledger.log("appended");
    ledger.end();
    charge.finish(Outcome::Completed { status: 200 });
    call.end();
    orders.finish(Outcome::Completed { status: 201 });

    let spans = rx.spans(4).await;
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let events: Vec<_> = std::iter::from_fn(|| copy.try_recv().ok()).collect();
    let trace_id: WireId<_> = orders
        .context()
        .expect("a recording outside a poll has its context")
        .trace_id()
        .into();
    let tree = TraceTree::build(
        &trace_id,
        events.iter().map(|e| &**e),
        std::time::SystemTime::now(),
    )
    .expect("the trace's events");
    assert_eq!(tree.spans.len(), 4);
    for node in &tree.spans {
        let (_, span) = spans
            .iter()
            .find(|(_, s)| s.span_id == node.span_id.id().unwrap().to_bytes())
            .unwrap_or_else(|| panic!("{} not exported", node.name));
        let parent = node
            .parent_id
            .id()
            .map(|p| p.to_bytes().to_vec())
            .unwrap_or_default();
        assert_eq!(span.parent_span_id, parent, "{} parent", node.name);
        let kind = match node.kind {
            nexus_trace_core::tree::NodeKind::Server => SpanKind::Server,
            nexus_trace_core::tree::NodeKind::Client => SpanKind::Client,
            nexus_trace_core::tree::NodeKind::Internal => SpanKind::Internal,
        };
        assert_eq!(span.kind, kind as i32, "{} kind", node.name);
    }
    let depths: Vec<usize> = tree.spans.iter().map(|s| s.depth).collect();
    assert_eq!(depths, [0, 1, 2, 3]);
    let (_, ledger_span) = spans
        .iter()
        .find(|(_, s)| s.name == "ledger.write")
        .unwrap();
    assert_eq!(
        ledger_span.events.len(),
        1,
        "the log is a span event of ledger.write"
    );
    assert_eq!(ledger_span.events[0].name, "appended");
    exporter.shutdown(Duration::from_secs(5)).await;
}
