use std::sync::Arc;

use nexus_trace_core::{Bus, Text};
use nexus_trace_http::record::request::TraceConfig;
use tower_layer::Layer;

use crate::service::NexusTraceService;

/// A `tower::Layer` that traces every request into a [`Bus`].
///
/// Put it on the router with `Router::layer` so the route template
/// (`MatchedPath`) becomes each request's endpoint; outside a router the
/// endpoint is the path (or the fixed [`endpoint`](Self::endpoint)).
#[derive(Debug, Clone)]
pub struct NexusTraceLayer {
    bus: Bus,
    /// Shared by every service the layer makes (axum may make one per
    /// route, or per request for a router that was not given its state).
    config: Arc<TraceConfig>,
}

impl NexusTraceLayer {
    /// Traces into `bus`.
    pub fn new(bus: Bus) -> Self {
        NexusTraceLayer {
            bus,
            config: Arc::new(TraceConfig::default()),
        }
    }

    /// The service name recorded on every event.
    pub fn service(mut self, name: impl Into<Text>) -> Self {
        Arc::make_mut(&mut self.config).service = name.into();
        self
    }

    /// A fixed endpoint name instead of the route template.
    pub fn endpoint(mut self, name: impl Into<Text>) -> Self {
        Arc::make_mut(&mut self.config).endpoint = Some(name.into());
        self
    }

    /// The transport label (default `http`).
    pub fn transport(mut self, transport: impl Into<Text>) -> Self {
        Arc::make_mut(&mut self.config).transport = transport.into();
        self
    }

    /// Record query strings (sensitive values redacted). Off by default.
    pub fn capture_query(mut self, on: bool) -> Self {
        Arc::make_mut(&mut self.config).capture_query = on;
        self
    }
}

impl<S> Layer<S> for NexusTraceLayer {
    type Service = NexusTraceService<S>;

    fn layer(&self, inner: S) -> NexusTraceService<S> {
        NexusTraceService::new(inner, self.bus.clone(), Arc::clone(&self.config))
    }
}
