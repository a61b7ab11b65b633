//! The event stream of one `/__nexus/events` client, independent of the web
//! framework: items from the client's own [`Subscription`] (so per-client
//! memory is one cursor plus one frame), turned into SSE bytes or WebSocket
//! text messages, with keep-alive ticks supplied by the adapter's runtime.
//! The client's [`StreamSession`](crate::serve::session::StreamSession) writes
//! them.
//!
//! The stream is pulled: it reads the ring only when the server can write to
//! the client. A client that stops reading is never buffered for; when it
//! resumes it is told exactly how much it lagged.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::serve::sse;
use nexus_trace_core::{RecvError, Subscription};

/// Wire format of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/event-stream` frames; several events may share one chunk.
    Sse,
    /// One JSON text message per event (the upstream dashboard protocol).
    WebSocket,
}

/// One item for the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Bytes to write: SSE frames, or one WebSocket text message (UTF-8 JSON).
    Data(Vec<u8>),
    /// Nothing happened for a keep-alive period: SSE writes a comment,
    /// WebSocket sends a ping.
    KeepAlive,
}

/// Most SSE events packed into one chunk when a client is catching up.
const MAX_BATCH_EVENTS: usize = 64;
/// Most bytes packed into one SSE chunk.
const MAX_BATCH_BYTES: usize = 64 * 1024;

/// The frames of one client. `T` yields keep-alive ticks.
#[derive(Debug)]
pub struct EventStream<T> {
    sub: Subscription,
    ticks: T,
    format: Format,
}

impl<T> EventStream<T> {
    /// Streams `sub` in `format`, with keep-alives from `ticks`.
    pub fn new(sub: Subscription, format: Format, ticks: T) -> Self {
        EventStream { sub, ticks, format }
    }

    /// The id of the next event the client will get.
    pub fn next_id(&self) -> u64 {
        self.sub.next_id()
    }
}

impl<T: Stream + Unpin> Stream for EventStream<T> {
    type Item = Frame;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
        let this = self.get_mut();
        let mut out = Vec::new();
        let mut events = 0;
        loop {
            match this.sub.poll_recv(cx) {
                Poll::Ready(Ok(event)) => match this.format {
                    Format::Sse => {
                        sse::write_event(&event, &mut out);
                        events += 1;
                        if events >= MAX_BATCH_EVENTS || out.len() >= MAX_BATCH_BYTES {
                            return Poll::Ready(Some(Frame::Data(out)));
                        }
                    }
                    Format::WebSocket => {
                        event.write_json(&mut out);
                        return Poll::Ready(Some(Frame::Data(out)));
                    }
                },
                Poll::Ready(Err(RecvError::Lagged(n))) => {
                    let next = this.sub.next_id();
                    match this.format {
                        Format::Sse => sse::write_lagged(n, next, &mut out),
                        Format::WebSocket => {
                            return Poll::Ready(Some(Frame::Data(
                                sse::lagged_json(n, next).into_bytes(),
                            )))
                        }
                    }
                }
                Poll::Ready(Err(RecvError::Closed)) => {
                    return Poll::Ready(if out.is_empty() {
                        None
                    } else {
                        Some(Frame::Data(out))
                    });
                }
                Poll::Pending => break,
            }
        }
        if !out.is_empty() {
            return Poll::Ready(Some(Frame::Data(out)));
        }
        // Drain every due tick so a burst of missed ticks sends one keep-alive.
        let mut ticked = false;
        while let Poll::Ready(Some(_)) = Pin::new(&mut this.ticks).poll_next(cx) {
            ticked = true;
        }
        if ticked {
            Poll::Ready(Some(Frame::KeepAlive))
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexus_trace_core::{Bus, Event};

    fn frames(s: &mut EventStream<futures::stream::Empty<()>>) -> Vec<Frame> {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut out = Vec::new();
        while let Poll::Ready(Some(f)) = Pin::new(&mut *s).poll_next(&mut cx) {
            out.push(f);
        }
        out
    }

    #[test]
    fn sse_batches_and_reports_lag() {
        let bus = Bus::new(2);
        let mut s = EventStream::new(
            bus.subscribe(0),
            Format::Sse,
            futures::stream::empty::<()>(),
        );
        for _ in 0..3 {
            bus.publish(Event::default());
        }
        let f = frames(&mut s);
        assert_eq!(f.len(), 1);
        let Frame::Data(bytes) = &f[0] else { panic!() };
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(
            "event: lagged\ndata: {\"kind\":\"lagged\",\"lagged\":1,\"next\":2}\n\nid: 2\n"
        ));
        assert!(text.contains("\nid: 3\n"));
    }

    #[test]
    fn websocket_is_one_message_per_event() {
        let bus = Bus::new(4);
        let mut s = EventStream::new(
            bus.subscribe(0),
            Format::WebSocket,
            futures::stream::empty::<()>(),
        );
        bus.publish(Event::default());
        bus.publish(Event::default());
        let f = frames(&mut s);
        assert_eq!(f.len(), 2);
        for (i, frame) in f.iter().enumerate() {
            let Frame::Data(bytes) = frame else { panic!() };
            let e = Event::from_json(std::str::from_utf8(bytes).unwrap()).unwrap();
            assert_eq!(e.id, i as u64 + 1);
        }
    }

    #[test]
    fn ends_after_close() {
        let bus = Bus::new(4);
        let mut s = EventStream::new(
            bus.subscribe(0),
            Format::Sse,
            futures::stream::empty::<()>(),
        );
        bus.publish(Event::default());
        drop(bus);
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(matches!(
            Pin::new(&mut s).poll_next(&mut cx),
            Poll::Ready(Some(Frame::Data(_)))
        ));
        assert!(matches!(
            Pin::new(&mut s).poll_next(&mut cx),
            Poll::Ready(None)
        ));
    }
}
