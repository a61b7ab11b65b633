use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use nexus_trace_http::record::request::RequestRecording;

pin_project_lite::pin_project! {
    /// A response body that publishes the request's `request.end` when it
    /// has been sent completely (or fails, or is dropped unfinished).
    pub struct TracedBody<B> {
        #[pin]
        inner: B,
        trace: Option<RequestRecording>,
    }
}

impl<B: Body> TracedBody<B> {
    pub(crate) fn new(inner: B, trace: Option<RequestRecording>) -> Self {
        let mut body = TracedBody { inner, trace };
        if body.inner.is_end_stream() {
            // An empty body may never be polled: the response is complete.
            RequestRecording::finish_body(&mut body.trace, None);
        }
        body
    }
}

impl<B> fmt::Debug for TracedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedBody")
            .field("trace", &self.trace)
            .finish_non_exhaustive()
    }
}

impl<B> Body for TracedBody<B>
where
    B: Body,
    B::Error: fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let polled = std::task::ready!(this.inner.as_mut().poll_frame(cx));
        match &polled {
            None => RequestRecording::finish_body(this.trace, None),
            Some(Err(e)) => RequestRecording::finish_body(this.trace, Some(e.to_string())),
            Some(Ok(_)) if this.inner.is_end_stream() => {
                RequestRecording::finish_body(this.trace, None)
            }
            Some(Ok(_)) => {}
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
