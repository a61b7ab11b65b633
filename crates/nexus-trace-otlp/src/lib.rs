//! Exports the requests seen on a nexus-trace [`Bus`](nexus_trace_core::Bus)
//! to any OpenTelemetry backend, as OTLP spans over OTLP/HTTP (protobuf).
//!
//! The exporter is one more subscriber of the bus: it follows its own
//! subscription on a tokio task, so it can never slow down a request. If it
//! falls behind (a slow collector, a burst), the bus overwrites what it has
//! not read and it counts the missed events; everything it cannot deliver is
//! counted too ([`Stats`]).
//!
//! # Mapping
//!
//! * A request (`request.start` + `request.end`, matched by trace and span
//!   id) is a **SERVER** span: the bus's trace and span ids, the caller's
//!   span (from `traceparent`) as parent, named `{method} {route}`, from the
//!   start event's time for `durationNs`, with `http.request.method`,
//!   `url.path`, `http.route` and `http.response.status_code`. Its status is
//!   ERROR (with the error text) for a 5xx or an error, else unset.
//! * A `downstream` event is a **CLIENT** child span of its request (or
//!   INTERNAL when its meta says `"otel.kind": "internal"`), named after the
//!   call, its meta as attributes, ERROR with the error text when it failed.
//! * A `log` event is a span event on its request's span.
//! * Spans are grouped per service, with `service.name` as their resource.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use nexus_trace_core::Bus;
//! use nexus_trace_otlp::OtlpExporter;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let bus = Bus::new(8192);
//! // OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, ... or
//! // OtlpExporter::builder(&bus).endpoint("http://collector:4318").build()?
//! let exporter = OtlpExporter::from_env(&bus)?.spawn()?;
//! println!("exporting spans to {}", exporter.traces_url());
//!
//! // ... serve requests with a nexus-trace middleware publishing to `bus` ...
//!
//! let stats = exporter.shutdown(Duration::from_secs(5)).await;
//! println!("{} spans exported, {} dropped", stats.spans_exported, stats.spans_dropped());
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! * `rustls-tls`: `https://` endpoints. Without it only `http://` endpoints
//!   are accepted (a local collector, a sidecar).
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod config;
mod convert;
mod exporter;
mod stats;

pub use config::{parse_headers, ConfigError, OtlpExporterBuilder, DEFAULT_ENDPOINT, TRACES_PATH};
pub use exporter::{ExporterHandle, ExporterMonitor, OtlpExporter};
/// The OTLP message types this crate sends, re-exported for receivers and
/// tests.
pub use opentelemetry_proto::tonic as proto;
pub use stats::{DroppedSpans, Stats};
