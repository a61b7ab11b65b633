use std::convert::Infallible;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;
use nexus_trace_core::TraceContext;

/// Extracts the request's [`TraceContext`] (span and bus).
///
/// The layer does not store the context in the request's extensions (that
/// would cost an allocation per request): the extractor takes
/// [`current()`](crate::context::current), which the layer sets while it
/// polls the request's future, and a `TraceContext` in the extensions if
/// one was put there. A layer between this one and the handler that runs
/// the handler on another task must hand the context over with
/// [`context::propagate`](crate::context::propagate).
///
/// Without [`NexusTraceLayer`](crate::NexusTraceLayer) on the route, the
/// request fails with a 500 that says so; use `Option<RequestTrace>` to make the
/// layer optional.
///
/// ```
/// use nexus_trace_axum::RequestTrace;
///
/// async fn handler(RequestTrace(ctx): RequestTrace) -> String {
///     ctx.log("handling");
///     ctx.trace_id().to_string()
/// }
/// ```
#[derive(Debug, Clone)]
pub struct RequestTrace(pub TraceContext);

/// The rejection when [`RequestTrace`] is used without the layer: a 500 naming the fix.
#[derive(Debug, Clone, Copy)]
pub struct MissingTraceLayer;

impl MissingTraceLayer {
    const MESSAGE: &'static str = "nexus-trace: no request context; add \
        `.layer(NexusTraceLayer::new(bus))` to this router, or extract \
        `Option<RequestTrace>` where tracing is optional";
}

impl std::fmt::Display for MissingTraceLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(Self::MESSAGE)
    }
}

impl std::error::Error for MissingTraceLayer {}

impl IntoResponse for MissingTraceLayer {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, Self::MESSAGE).into_response()
    }
}

/// The request's context: one put in the extensions, else the current one.
fn context_of(parts: &Parts) -> Option<TraceContext> {
    parts
        .extensions
        .get::<TraceContext>()
        .cloned()
        .or_else(crate::context::current)
}

impl<S: Send + Sync> FromRequestParts<S> for RequestTrace {
    type Rejection = MissingTraceLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        context_of(parts).map(RequestTrace).ok_or(MissingTraceLayer)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for RequestTrace {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Infallible> {
        Ok(context_of(parts).map(RequestTrace))
    }
}
