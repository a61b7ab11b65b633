use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use nexus_trace_core::TraceContext;

/// Extracts the request's [`TraceContext`] (span and bus).
///
/// The middleware does not store the context in the request's extensions
/// (that would cost an allocation per request): the extractor takes
/// [`current()`](crate::context::current), which the middleware sets
/// while it polls the request's future, and a `TraceContext` in the
/// extensions if one was put there.
///
/// Without the [`NexusTrace`](crate::NexusTrace) middleware around the
/// route, the request fails with a 500 that says so; use `Option<RequestTrace>` to
/// make the middleware optional.
///
/// ```
/// use nexus_trace_actix::RequestTrace;
///
/// async fn handler(RequestTrace(ctx): RequestTrace) -> String {
///     ctx.log("handling");
///     ctx.trace_id().to_string()
/// }
/// ```
#[derive(Debug, Clone)]
pub struct RequestTrace(pub TraceContext);

/// The error when [`RequestTrace`] is used without the middleware: a 500 naming the fix.
#[derive(Debug, Clone, Copy)]
pub struct MissingTraceMiddleware;

impl MissingTraceMiddleware {
    const MESSAGE: &'static str = "nexus-trace: no request context; add \
        `App::wrap(NexusTrace::new(bus))` (or `Scope::wrap`) around this route, \
        or extract `Option<RequestTrace>` where tracing is optional";
}

impl std::fmt::Display for MissingTraceMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(Self::MESSAGE)
    }
}

impl std::error::Error for MissingTraceMiddleware {}

impl ResponseError for MissingTraceMiddleware {
    fn status_code(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::InternalServerError()
            .content_type("text/plain; charset=utf-8")
            .body(Self::MESSAGE)
    }
}

impl FromRequest for RequestTrace {
    type Error = MissingTraceMiddleware;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<TraceContext>()
                .cloned()
                .or_else(crate::context::current)
                .map(RequestTrace)
                .ok_or(MissingTraceMiddleware),
        )
    }
}
