use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::MatchedPath;
use http::{HeaderName, Request, Response};
use nexus_trace_core::{Bus, TraceContext};
use nexus_trace_http::record::request::{RequestInfo, RequestRecording, TraceConfig};
use nexus_trace_http::record::{
    combined_tracestate, is_nexus_path, TRACEPARENT_HEADER, TRACESTATE_HEADER,
};
use tower_service::Service;

/// Static names: a `&str` name is parsed on every lookup.
const TRACEPARENT: HeaderName = HeaderName::from_static(TRACEPARENT_HEADER);
const TRACESTATE: HeaderName = HeaderName::from_static(TRACESTATE_HEADER);

use crate::body::TracedBody;
use crate::future::ResponseFuture;

/// The middleware service made by [`NexusTraceLayer`](crate::NexusTraceLayer).
#[derive(Debug, Clone)]
pub struct NexusTraceService<S> {
    inner: S,
    bus: Bus,
    config: Arc<TraceConfig>,
}

impl<S> NexusTraceService<S> {
    pub(crate) fn new(inner: S, bus: Bus, config: Arc<TraceConfig>) -> Self {
        NexusTraceService { inner, bus, config }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for NexusTraceService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: fmt::Display,
    ResBody: http_body::Body,
    ResBody::Error: fmt::Display,
{
    type Response = Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if is_nexus_path(req.uri().path()) {
            // The dashboard and its event stream are not traced themselves.
            return ResponseFuture::untraced(self.inner.call(req));
        }
        let tracestate = combined_tracestate(
            req.headers()
                .get_all(TRACESTATE)
                .iter()
                .map(|v| v.as_bytes()),
        );
        let trace = RequestRecording::start(
            &self.bus,
            &self.config,
            RequestInfo {
                method: req.method().as_str(),
                path: req.uri().path(),
                query: req.uri().query(),
                route: req
                    .extensions()
                    .get::<MatchedPath>()
                    .map(MatchedPath::as_str),
                traceparent: req.headers().get(TRACEPARENT).map(|v| v.as_bytes()),
                tracestate: tracestate.as_deref(),
            },
        );
        // The handler reaches the context through `current()` (the `RequestTrace`
        // extractor does), set while its future is polled: no per-request
        // extension to allocate.
        // The synchronous part of `call` runs with the context too; the
        // future's polls get it from the recording.
        let future = {
            let _entered = trace.context().map(TraceContext::enter);
            self.inner.call(req)
        };
        ResponseFuture::traced(future, trace)
    }
}
