use std::fmt;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::Error;
use nexus_trace_core::{Bus, Text, TraceContext};
use nexus_trace_http::record::request::{Outcome, RequestInfo, RequestRecording, TraceConfig};
use nexus_trace_http::record::{
    combined_tracestate, is_nexus_path, TRACEPARENT_HEADER, TRACESTATE_HEADER, TRACE_ID_HEADER,
};

use crate::body::TracedBody;

// Static names: actix copies a `&str` name into a new `HeaderName` on every
// lookup and insert.
const TRACE_ID: HeaderName = HeaderName::from_static(TRACE_ID_HEADER);
const TRACEPARENT: HeaderName = HeaderName::from_static(TRACEPARENT_HEADER);
const TRACESTATE: HeaderName = HeaderName::from_static(TRACESTATE_HEADER);

/// actix-web middleware that traces every request into a [`Bus`].
///
/// Wrap the app (`App::wrap`) or a scope (`Scope::wrap`); the matched route
/// pattern (`/users/{id}`) becomes each request's endpoint, or the path when
/// no route matched (or the fixed [`endpoint`](Self::endpoint)).
///
/// Each request publishes `request.start` and exactly one `request.end`, at
/// the end of the response body, on a handler error, on a panic (status 500,
/// error `handler panicked`) and when the client goes away (marked
/// `aborted`). Requests to `/__nexus` are not traced.
#[derive(Debug, Clone)]
pub struct NexusTrace {
    bus: Bus,
    /// Shared by the middleware of every worker.
    config: Arc<TraceConfig>,
}

impl NexusTrace {
    /// Traces into `bus`.
    pub fn new(bus: Bus) -> Self {
        NexusTrace {
            bus,
            config: Arc::new(TraceConfig::default()),
        }
    }

    /// The service name recorded on every event.
    pub fn service(mut self, name: impl Into<Text>) -> Self {
        Arc::make_mut(&mut self.config).service = name.into();
        self
    }

    /// A fixed endpoint name instead of the route pattern.
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

impl<S, B> Transform<S, ServiceRequest> for NexusTrace
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<TracedBody<B>>;
    type Error = Error;
    type Transform = NexusTraceMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(NexusTraceMiddleware {
            service,
            bus: self.bus.clone(),
            config: Arc::clone(&self.config),
        }))
    }
}

/// The service made by [`NexusTrace`] around the wrapped service.
#[derive(Debug)]
pub struct NexusTraceMiddleware<S> {
    service: S,
    bus: Bus,
    config: Arc<TraceConfig>,
}

impl<S, B> Service<ServiceRequest> for NexusTraceMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<TracedBody<B>>;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        if is_nexus_path(req.path()) {
            // The dashboard and its event stream are not traced themselves.
            return ResponseFuture::untraced(self.service.call(req));
        }
        let route = req.match_pattern();
        let tracestate = combined_tracestate(
            req.headers()
                .get_all(&TRACESTATE)
                .map(HeaderValue::as_bytes),
        );
        let trace = RequestRecording::start(
            &self.bus,
            &self.config,
            RequestInfo {
                method: req.method().as_str(),
                path: req.path(),
                query: Some(req.query_string()).filter(|q| !q.is_empty()),
                route: route.as_deref(),
                traceparent: req.headers().get(&TRACEPARENT).map(HeaderValue::as_bytes),
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
            self.service.call(req)
        };
        ResponseFuture::traced(future, trace)
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`NexusTraceMiddleware`].
    ///
    /// Holds the request's [`RequestRecording`]: if this future is dropped before
    /// it completes (client gone) or while unwinding (handler panic), the
    /// trace's drop publishes the single `request.end`.
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        // `None` for an untraced request, and once the response is out.
        // While the future is polled the recording's context is `current()`.
        trace: Option<RequestRecording>,
    }
}

impl<F> ResponseFuture<F> {
    fn traced(future: F, trace: RequestRecording) -> Self {
        ResponseFuture {
            future,
            trace: Some(trace),
        }
    }

    fn untraced(future: F) -> Self {
        ResponseFuture {
            future,
            trace: None,
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("trace", &self.trace)
            .finish_non_exhaustive()
    }
}

impl<F, B> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<TracedBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let future = this.future;
        let result = std::task::ready!(RequestRecording::poll_recording_panics(this.trace, || {
            future.poll(cx)
        }));
        let mut trace = this.trace.take();
        match result {
            Ok(mut res) => {
                if let Some(trace) = trace.as_mut() {
                    trace.set_status(res.status().as_u16());
                    if !res.headers().contains_key(&TRACE_ID) {
                        // The one allocation of the header: its value's bytes.
                        if let Ok(v) = HeaderValue::from_bytes(&trace.trace_id_hex()) {
                            res.headers_mut().insert(TRACE_ID, v);
                        }
                    }
                }
                Poll::Ready(Ok(res.map_body(|_, b| TracedBody::new(b, trace))))
            }
            Err(e) => {
                if let Some(mut trace) = trace {
                    trace.finish(Outcome::Failed {
                        status: e.as_response_error().status_code().as_u16(),
                        error: e.to_string(),
                    });
                }
                Poll::Ready(Err(e))
            }
        }
    }
}
