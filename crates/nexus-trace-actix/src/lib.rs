//! actix-web 4 integration for nexus-trace: see every request live.
//!
//! * [`NexusTrace`]: middleware (`App::wrap` / `Scope::wrap`). Each request
//!   publishes `request.start` and exactly one `request.end` (also on
//!   handler error, panic, client disconnect; measured at the end of the
//!   response body), continues an incoming W3C `traceparent`, echoes the
//!   trace id in `x-trace-id`, and makes the request context available to
//!   all code inside the request via [`context::current`].
//! * [`RequestTrace`]: an extractor for the request context.
//! * [`NexusRoutes`]: the `/__nexus` routes (live events over SSE or
//!   WebSocket, traces by id, the dashboard), behind a required access gate.
//!   A client's WebSocket Close is answered at once, a client that stops
//!   reading is cut off after a write bound, and [`Shutdown`] (from
//!   `NexusRoutes::shutdown_handle`, chained into `HttpServer::shutdown_signal`) ends
//!   every stream with a goodbye on graceful shutdown.
//!
//! ```no_run
//! use actix_web::{web, App, HttpServer};
//! use nexus_trace_actix::{Access, NexusRoutes, NexusTrace};
//! use nexus_trace_actix::Bus;
//!
//! # async fn run() -> std::io::Result<()> {
//! let bus = Bus::new(4096);
//! let nexus = NexusRoutes::new(bus.clone(), Access::loopback()).config();
//! HttpServer::new(move || {
//!     App::new()
//!         .route("/users/{id}", web::get().to(|| async { "ada" }))
//!         .wrap(NexusTrace::new(bus.clone()).service("users"))
//!         .configure(nexus.clone())
//! })
//! .h1_allow_half_closed(false) // see "Client disconnects" below
//! .bind(("127.0.0.1", 8080))?
//! .run()
//! .await
//! # }
//! ```
//!
//! # Client disconnects
//!
//! By default actix-web allows HTTP/1 half-closed connections: when a client
//! goes away while its handler runs, the handler runs to completion and the
//! request is recorded when its response has been written. With
//! `HttpServer::h1_allow_half_closed(false)` (hyper's default), actix-web
//! drops the request at once and its `request.end` is marked `aborted`, and
//! a closed event stream frees its place under the stream cap immediately
//! rather than at the next keep-alive.
//!
//! # Panics
//!
//! actix-web does not catch handler panics: the connection's task unwinds
//! and the client sees the connection close. The request's `request.end`
//! is still published (status 500, error `handler panicked`) and the worker
//! keeps serving other connections.
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
mod middleware;
mod routes;
#[cfg(feature = "websocket")]
mod websocket;

pub use body::TracedBody;
pub use extract::{MissingTraceMiddleware, RequestTrace};
pub use middleware::{NexusTrace, NexusTraceMiddleware, ResponseFuture};
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
