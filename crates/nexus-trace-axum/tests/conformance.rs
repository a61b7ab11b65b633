//! The shared conformance suite against the axum adapter.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::header::HOST;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use nexus_trace_axum::{Access, NexusRoutes, NexusTraceLayer, RequestTrace, Shutdown};
use nexus_trace_conformance::{conformance_tests, Harness, Opts, Server, Stop};
use nexus_trace_core::{context, Bus};

struct Axum;

fn chunks(n: usize, every: Duration) -> Body {
    let stream = futures_util::stream::unfold(0, move |i| async move {
        if i == n {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(every).await;
        }
        Some((
            Ok::<_, std::io::Error>(Bytes::from(format!("chunk {i}\n"))),
            i + 1,
        ))
    });
    Body::from_stream(stream)
}

fn deep_repository_call() {
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(2));
    context::record("db.deep", start, None).expect("inside a request");
}

struct AppError(&'static str);

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.0).into_response()
    }
}

fn app(bus: &Bus, opts: &Opts) -> (Router, Option<Shutdown>) {
    let traced = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/status/{code}",
            get(|Path(code): Path<u16>| async move {
                StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
            }),
        )
        .route(
            "/error",
            get(|| async { Err::<(), _>(AppError("database unavailable")) }),
        )
        .route(
            "/panic",
            get(|| async {
                if std::hint::black_box(true) {
                    panic!("handler panicked on purpose");
                }
                "unreachable"
            }),
        )
        .route(
            "/stream",
            get(|| async { chunks(3, Duration::from_millis(50)) }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "slow"
            }),
        )
        .route(
            "/slow-body",
            get(|| async { chunks(50, Duration::from_millis(100)) }),
        )
        .route(
            "/deep",
            get(|| async {
                deep_repository_call();
                "deep"
            }),
        )
        .route(
            "/spawned",
            get(|| async {
                tokio::spawn(context::propagate(async {
                    let start = Instant::now();
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    context::record("spawned.call", start, None);
                }))
                .await
                .unwrap();
                "spawned"
            }),
        )
        .route(
            "/extract",
            get(|RequestTrace(ctx): RequestTrace| async move { ctx.trace_id().to_string() }),
        )
        .route(
            "/orders",
            get(|headers: HeaderMap| async move {
                let host = headers
                    .get(HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("");
                nexus_trace_conformance::tree::orders(host).await
            }),
        )
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(NexusTraceLayer::new(bus.clone()).service("conformance"));
    // A second service with its own middleware, on the same bus.
    let payments = Router::new()
        .route(
            "/payments/charge",
            get(|headers: HeaderMap| async move {
                let header = |name: &str| headers.get(name).and_then(|h| h.to_str().ok());
                nexus_trace_conformance::tree::charge(header("traceparent"), header("tracestate"))
                    .await
            }),
        )
        .layer(NexusTraceLayer::new(bus.clone()).service("payments"));
    let untraced = Router::new()
        .route(
            "/no-layer",
            get(|RequestTrace(ctx): RequestTrace| async move { ctx.trace_id().to_string() }),
        )
        .route(
            "/no-layer-optional",
            get(|t: Option<RequestTrace>| async move {
                if t.is_some() {
                    "some"
                } else {
                    "none"
                }
            }),
        );
    let mut app = untraced.merge(payments).merge(traced);
    let mut shutdown = None;
    if opts.mount {
        let access = match (&opts.access, &opts.token) {
            (Some(access), _) => access.clone(),
            (None, Some(t)) => Access::bearer(t).unwrap(),
            (None, None) => Access::loopback(),
        };
        let routes = NexusRoutes::new(bus.clone(), access)
            .max_streams(opts.max_streams)
            .keep_alive(opts.keep_alive)
            .write_timeout(opts.write_timeout);
        shutdown = Some(routes.shutdown_handle());
        app = app.merge(routes.into_router());
    }
    (app, shutdown)
}

impl Harness for Axum {
    async fn spawn(&self, opts: Opts) -> Server {
        let bus = Bus::new(opts.capacity);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let (app, shutdown) = app(&bus, &opts);
        let stop = Stop::default();
        // The wiring the docs give: the routes' goodbyes, then axum's own
        // graceful shutdown.
        let signal: Pin<Box<dyn Future<Output = ()> + Send>> = match &shutdown {
            Some(s) => Box::pin(s.after(stop.signal())),
            None => Box::pin(stop.signal()),
        };
        let done = stop.clone();
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(signal)
            .await
            .unwrap();
            done.finished();
        });
        Server {
            port,
            bus,
            token: opts.token,
            shutdown,
            stop,
            guard: Box::new(AbortOnDrop(task)),
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

conformance_tests!(Axum);

/// With tower-http's `CatchPanic` outside the layer, the panic is caught and
/// the future dropped only after unwinding; the end must still say "panic".
#[tokio::test]
async fn panic_caught_by_catch_panic_layer_is_recorded_as_a_panic() {
    use tower::ServiceExt;
    let bus = Bus::new(64);
    let mut sub = bus.subscribe(0);
    let app = Router::new()
        .route(
            "/panic",
            get(|| async {
                if std::hint::black_box(true) {
                    panic!("handler panicked on purpose");
                }
                "unreachable"
            }),
        )
        .layer(NexusTraceLayer::new(bus.clone()))
        .layer(tower_http::catch_panic::CatchPanicLayer::new());
    let req = axum::http::Request::get("/panic")
        .body(Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 500);
    let events: Vec<_> = std::iter::from_fn(|| sub.try_recv().ok()).collect();
    let ends: Vec<_> = events
        .iter()
        .filter(|e| e.kind() == nexus_trace_core::EventKind::RequestEnd)
        .collect();
    assert_eq!(ends.len(), 1, "{events:?}");
    assert_eq!(
        (ends[0].status, ends[0].error.as_str()),
        (500, "handler panicked")
    );
}
