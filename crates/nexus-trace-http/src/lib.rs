//! The framework-free HTTP kit of nexus-trace, shared by the axum and
//! actix-web adapters so that both behave the same.
//!
//! * [`record`]: recording a request: its `request.start` and exactly one
//!   `request.end` ([`record::request`]), the route template
//!   ([`record::route`]), query redaction ([`record::redact`]) and the trace
//!   headers.
//! * [`serve`]: serving the [`PREFIX`] routes: the access gate
//!   ([`serve::gate`]), the stream-client cap ([`serve::limit`]), resume
//!   points ([`serve::resume`]), SSE framing ([`serve::sse`]), each stream
//!   client's session ([`serve::session`]), graceful shutdown
//!   ([`serve::shutdown`]), the trace-tree JSON and the dashboard page
//!   ([`serve::dashboard`]), all behind one handle per mount
//!   ([`serve::surface::NexusEndpoints`]).
//!
//! * [`client`] (feature `reqwest`): outbound calls with reqwest in a
//!   CLIENT span, `traceparent` and `tracestate` injected.
//!
//! Applications use an adapter (`nexus-trace-axum`, `nexus-trace-actix`),
//! which re-exports what they need; this crate is for adapter authors.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

#[cfg(feature = "reqwest")]
pub mod client;
pub mod record;
pub mod serve;

/// The mount point of the nexus routes.
pub const PREFIX: &str = "/__nexus";
