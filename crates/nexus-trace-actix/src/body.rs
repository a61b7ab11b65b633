use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;
use nexus_trace_http::record::request::RequestRecording;

pin_project_lite::pin_project! {
    /// A response body that publishes the request's `request.end` when it
    /// has been sent completely (or fails, or is dropped unfinished).
    pub struct TracedBody<B> {
        #[pin]
        inner: B,
        trace: Option<RequestRecording>,
        // Bytes still to come of a body of known size; `None` otherwise.
        remaining: Option<u64>,
    }
}

impl<B: MessageBody> TracedBody<B> {
    pub(crate) fn new(inner: B, trace: Option<RequestRecording>) -> Self {
        let remaining = match inner.size() {
            BodySize::Sized(n) => Some(n),
            BodySize::None | BodySize::Stream => None,
        };
        let mut body = TracedBody {
            inner,
            trace,
            remaining,
        };
        if matches!(body.inner.size(), BodySize::None | BodySize::Sized(0)) {
            // actix-http never polls an empty body: the response is complete.
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

impl<B: MessageBody> MessageBody for TracedBody<B> {
    /// The inner body's error, boxed so that its text can be recorded.
    type Error = Box<dyn StdError>;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.project();
        match std::task::ready!(this.inner.poll_next(cx)) {
            None => {
                RequestRecording::finish_body(this.trace, None);
                Poll::Ready(None)
            }
            Some(Err(e)) => {
                let e: Box<dyn StdError> = e.into();
                RequestRecording::finish_body(this.trace, Some(e.to_string()));
                Poll::Ready(Some(Err(e)))
            }
            Some(Ok(chunk)) => {
                if let Some(remaining) = this.remaining {
                    *remaining = remaining.saturating_sub(chunk.len() as u64);
                    if *remaining == 0 {
                        // The last byte of a sized body: actix may not poll again.
                        RequestRecording::finish_body(this.trace, None);
                    }
                }
                Poll::Ready(Some(Ok(chunk)))
            }
        }
    }
}
