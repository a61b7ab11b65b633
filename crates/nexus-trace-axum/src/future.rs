use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Response};
use nexus_trace_http::record::request::{Outcome, RequestRecording};
use nexus_trace_http::record::TRACE_ID_HEADER;

use crate::body::TracedBody;

/// A static name: a `&str` name would be copied into every response.
const TRACE_ID: HeaderName = HeaderName::from_static(TRACE_ID_HEADER);

pin_project_lite::pin_project! {
    /// Response future of [`NexusTraceService`](crate::NexusTraceService).
    ///
    /// Holds the request's [`RequestRecording`]: if this future is dropped before
    /// it completes (client gone) or unwinds (handler panic), the trace's drop
    /// publishes the single `request.end`.
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        // `None` for an untraced request, and once the response is out.
        // While the future is polled the recording's context is `current()`.
        trace: Option<RequestRecording>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn traced(future: F, trace: RequestRecording) -> Self {
        ResponseFuture {
            future,
            trace: Some(trace),
        }
    }

    pub(crate) fn untraced(future: F) -> Self {
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

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: fmt::Display,
    B: http_body::Body,
    B::Error: fmt::Display,
{
    type Output = Result<Response<TracedBody<B>>, E>;

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
                Poll::Ready(Ok(res.map(|b| TracedBody::new(b, trace))))
            }
            Err(e) => {
                if let Some(mut trace) = trace {
                    trace.finish(Outcome::Failed {
                        status: 500,
                        error: e.to_string(),
                    });
                }
                Poll::Ready(Err(e))
            }
        }
    }
}
