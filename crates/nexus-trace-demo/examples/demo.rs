//! The nexus-trace demo on axum: a small shop with live tracing and the
//! dashboard.
//!
//! ```text
//! cargo run --release --example demo [-- --addr 127.0.0.1:8080] [--no-traffic] [--otlp]
//! ```
//!
//! * `GET /users/{id}`: an embedded SQLite query (a downstream event); ids
//!   above 100 are 404.
//! * `POST /orders` (`{"userId":1,"item":"book","amountCents":1299}`): a
//!   SQLite write plus an outbound call to a second service (payments, on
//!   another loopback port) carrying `traceparent`; both are downstream events.
//! * `GET /fail`: a failing downstream call and a 500.
//! * `GET /panic`: the handler panics (the client gets a 500).
//! * `/__nexus/`: the dashboard (loopback only; `NEXUS_TOKEN` requires a
//!   bearer token instead).
//! * `--otlp`: also export every request as OTLP spans to an OpenTelemetry
//!   collector (`OTEL_EXPORTER_OTLP_ENDPOINT`, default `http://localhost:4318`).
//!
//! The `tracing` bridge is installed: `tracing` events and spans inside a
//! request (the SQLite queries' spans, for one) show up on its trace.

use std::net::SocketAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use nexus_trace_axum::{NexusRoutes, NexusTraceLayer, RequestTrace};
use nexus_trace_core::Bus;
use nexus_trace_demo::{self as demo, Args, NewOrder, Shop, ShopError};
use serde_json::Value;
use tower_http::catch_panic::CatchPanicLayer;

struct Error(ShopError);

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, body) = self.0.status_and_body();
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(body)).into_response()
    }
}

async fn user(State(shop): State<Shop>, Path(id): Path<i64>) -> Result<Json<Value>, Error> {
    shop.user(id).await.map(Json).map_err(Error)
}

async fn order(
    State(shop): State<Shop>,
    RequestTrace(trace): RequestTrace,
    Json(order): Json<NewOrder>,
) -> Result<(StatusCode, Json<Value>), Error> {
    let body = shop.order(&trace, order).await.map_err(Error)?;
    Ok((StatusCode::CREATED, Json(body)))
}

async fn fail(State(shop): State<Shop>) -> Error {
    Error(shop.fail().await)
}

async fn charge(Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let (status, body) = demo::charge(&body).await;
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        Json(body),
    )
}

async fn bind(addr: SocketAddr) -> tokio::net::TcpListener {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("demo: cannot listen on {addr}: {e} (try --addr 127.0.0.1:0)");
            std::process::exit(1);
        }
    }
}

#[tokio::main]
async fn main() {
    let args = Args::from_env().unwrap_or_else(|e| demo::exit_usage(&e));
    let (access, token) = demo::access_from_env().unwrap_or_else(|e| demo::exit_usage(&e));
    let bus = Bus::new(args.capacity);
    demo::quiet_intentional_panics();
    if let Err(e) = demo::install_tracing(&bus) {
        eprintln!("demo: {e}");
    }
    let otlp = args.otlp.then(|| {
        demo::start_otlp(&bus).unwrap_or_else(|e| demo::exit_usage(&format!("--otlp: {e}")))
    });

    // The payments service, on its own loopback port, traced into the same bus.
    let payments = Router::new()
        .route("/charge", post(charge))
        .layer(NexusTraceLayer::new(bus.clone()).service("payments"));
    let payments_listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await;
    let payments_addr = payments_listener.local_addr().expect("bound socket");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(payments_listener, payments).await {
            eprintln!("demo: payments service stopped: {e}");
        }
    });

    let shop = Shop::open(format!("http://{payments_addr}/charge")).unwrap_or_else(|e| {
        eprintln!("demo: cannot create the SQLite database: {e}");
        std::process::exit(1);
    });
    let app = Router::new()
        .route("/users/{id}", get(user))
        .route("/orders", post(order))
        .route("/fail", get(fail))
        .route("/panic", get(|| async { demo::panic_on_purpose() }))
        .with_state(shop)
        .layer(NexusTraceLayer::new(bus.clone()).service("shop"))
        .layer(CatchPanicLayer::new());
    let nexus = NexusRoutes::new(bus, access);
    // Ends live event streams (Close 1001 / a final SSE frame) on Ctrl-C or SIGTERM.
    let stop = nexus.shutdown_handle();
    let app = app.merge(nexus.into_router());

    let listener = bind(args.addr).await;
    let addr = listener.local_addr().expect("bound socket");
    demo::banner(
        "axum",
        addr,
        token.as_deref(),
        args.traffic,
        otlp.as_ref().map(|o| o.traces_url()),
    );
    if args.traffic {
        tokio::spawn(demo::traffic(format!("http://{addr}")));
    }
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop.after(demo::stop_signal()))
    .await;
    if let Some(otlp) = otlp {
        demo::stop_otlp(otlp).await;
    }
    if let Err(e) = served {
        eprintln!("demo: server error: {e}");
        std::process::exit(1);
    }
}
