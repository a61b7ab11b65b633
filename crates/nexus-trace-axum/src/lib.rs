//! axum 0.8 / tower integration for nexus-trace: see every request live.
//!
//! * [`NexusTraceLayer`]: a `tower::Layer` for any tower HTTP service.
//!   Each request publishes `request.start` and exactly one `request.end`
//!   (also on handler error, panic, client disconnect; measured at the end of
//!   the response body), continues an incoming W3C `traceparent`, echoes the
//!   trace id in `x-trace-id`, and makes the request context available to
//!   all code inside the request via [`context::current`].
//! * [`RequestTrace`]: an extractor for the request context.
//! * [`NexusRoutes`]: the `/__nexus` routes (live events over SSE or
//!   WebSocket, traces by id, the dashboard), behind a required access gate.
//!   A client's WebSocket Close is answered at once, a client that stops
//!   reading is cut off after a write bound, and [`Shutdown`] (from
//!   `NexusRoutes::shutdown_handle`, chained into `with_graceful_shutdown`) ends
//!   every stream with a goodbye on graceful shutdown.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use nexus_trace_axum::{Access, NexusRoutes, NexusTraceLayer};
//! use nexus_trace_axum::Bus;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let bus = Bus::new(4096);
//! let app = Router::new()
//!     .route("/users/{id}", get(|| async { "ada" }))
//!     .layer(NexusTraceLayer::new(bus.clone()).service("users"))
//!     .merge(NexusRoutes::new(bus, Access::loopback()).into_router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! * `websocket` (default): `GET /__nexus/events` over WebSocket too.
//!   Without it the stream is Server-Sent Events only (an upgrade request is
//!   served SSE) and the WebSocket library is not compiled.
//! * `dashboard` (default): the dashboard page at `GET /__nexus/`. Without
//!   it that route is not mounted.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod body;
mod extract;
mod future;
mod layer;
mod routes;
mod service;
#[cfg(feature = "websocket")]
mod websocket;

pub use body::TracedBody;
pub use extract::{MissingTraceLayer, RequestTrace};
pub use future::ResponseFuture;
pub use layer::NexusTraceLayer;
pub use nexus_trace_http::serve::gate::{Access, AccessRequest, Decision, GateError};
pub use nexus_trace_http::serve::shutdown::Shutdown;
// What an application needs from the core, so that it depends on this crate
// alone: the bus, the event model and the request context.
pub use nexus_trace_core::{
    context, Bus, Event, EventKind, SpanContext, SpanGuard, SpanKind, TraceContext,
};
/// Outbound reqwest calls in a CLIENT span (feature `reqwest`); see
/// `nexus_trace_http::client`.
#[cfg(feature = "reqwest")]
pub use nexus_trace_http::client::TracedRequest;
pub use routes::NexusRoutes;
pub use service::NexusTraceService;
