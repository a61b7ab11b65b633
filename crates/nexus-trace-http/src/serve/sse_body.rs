//! The body of an SSE response, fed by the stream's session task through a
//! one-frame slot.
//!
//! The HTTP server pulls the body only when it can write, so a body that
//! produced frames itself could not notice a client that stopped reading:
//! nothing would poll it. With the session on its own task, a frame that
//! stays in the slot is a write that does not complete, and the session's
//! write bound applies. Dropping the body (the server noticed the client
//! went away) ends the session at once. Per-client memory stays one frame.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use futures_sink::Sink;

use crate::serve::session::{Incoming, Outgoing};
use crate::serve::sse;

/// The write side: a `Sink` of the session's frames (flushed once the
/// server has taken the frame).
#[derive(Debug)]
pub struct SseSender {
    shared: Arc<Shared>,
}

/// Ends (yields `None`) when the server dropped the body: the client is
/// gone. Never yields an item.
#[derive(Debug)]
pub struct SseGone {
    shared: Arc<Shared>,
}

/// The response body: a stream of byte chunks for the framework.
#[derive(Debug)]
pub struct SseBody {
    shared: Arc<Shared>,
}

/// The body is gone; nothing more can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyGone;

impl std::fmt::Display for BodyGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the SSE response body was dropped")
    }
}

impl std::error::Error for BodyGone {}

#[derive(Debug, Default)]
struct Shared {
    slot: Mutex<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    frame: Option<Vec<u8>>,
    body_dropped: bool,
    sender_dropped: bool,
    /// The body's task, waiting for a frame.
    body_waker: Option<Waker>,
    /// The session's task, waiting for room (sink) or for the body's drop.
    sender_waker: Option<Waker>,
    gone_waker: Option<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        // Every update of `Slot` is a single field store: a panic elsewhere
        // cannot leave it half-done.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn store(slot: &mut Option<Waker>, cx: &Context<'_>) {
    if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
        *slot = Some(cx.waker().clone());
    }
}

/// A connected sender, "gone" signal and body.
pub fn sse_body() -> (SseSender, SseGone, SseBody) {
    let shared = Arc::new(Shared::default());
    (
        SseSender {
            shared: shared.clone(),
        },
        SseGone {
            shared: shared.clone(),
        },
        SseBody { shared },
    )
}

impl SseSender {
    /// Ready when the slot is empty (the server took the last frame).
    fn poll_empty(&self, cx: &mut Context<'_>) -> Poll<Result<(), BodyGone>> {
        let mut slot = self.shared.lock();
        if slot.body_dropped {
            Poll::Ready(Err(BodyGone))
        } else if slot.frame.is_none() {
            Poll::Ready(Ok(()))
        } else {
            store(&mut slot.sender_waker, cx);
            Poll::Pending
        }
    }
}

impl Sink<Outgoing> for SseSender {
    type Error = BodyGone;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), BodyGone>> {
        self.poll_empty(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Outgoing) -> Result<(), BodyGone> {
        let bytes = match item {
            Outgoing::Data(bytes) => bytes,
            Outgoing::KeepAlive => sse::KEEP_ALIVE.to_vec(),
            // SSE has no control frames: the end of the body is the close.
            Outgoing::Pong(_) | Outgoing::CloseReply(_) | Outgoing::Close(..) => return Ok(()),
        };
        let waker = {
            let mut slot = self.shared.lock();
            if slot.body_dropped {
                return Err(BodyGone);
            }
            // The session calls `poll_ready` first, so the slot is empty; if
            // it were not, appending keeps every byte in order.
            match &mut slot.frame {
                Some(pending) => pending.extend_from_slice(&bytes),
                None => slot.frame = Some(bytes),
            }
            slot.body_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), BodyGone>> {
        self.poll_empty(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), BodyGone>> {
        self.poll_empty(cx)
    }
}

impl Drop for SseSender {
    fn drop(&mut self) {
        let waker = {
            let mut slot = self.shared.lock();
            slot.sender_dropped = true;
            slot.body_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Stream for SseGone {
    type Item = Incoming;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        let mut slot = self.shared.lock();
        if slot.body_dropped {
            Poll::Ready(None)
        } else {
            store(&mut slot.gone_waker, cx);
            Poll::Pending
        }
    }
}

impl Stream for SseBody {
    type Item = Vec<u8>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        let (item, waker) = {
            let mut slot = self.shared.lock();
            match slot.frame.take() {
                Some(frame) => (Poll::Ready(Some(frame)), slot.sender_waker.take()),
                None if slot.sender_dropped => (Poll::Ready(None), None),
                None => {
                    store(&mut slot.body_waker, cx);
                    (Poll::Pending, None)
                }
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
        item
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        let wakers = {
            let mut slot = self.shared.lock();
            slot.body_dropped = true;
            slot.frame = None;
            [slot.sender_waker.take(), slot.gone_waker.take()]
        };
        wakers.into_iter().flatten().for_each(Waker::wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker;

    #[test]
    fn one_frame_in_flight_then_gone() {
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let (mut tx, mut gone, mut body) = sse_body();
        let mut tx = Pin::new(&mut tx);
        assert!(tx.as_mut().poll_ready(&mut cx).is_ready());
        tx.as_mut()
            .start_send(Outgoing::Data(b"a".to_vec()))
            .unwrap();
        assert!(
            tx.as_mut().poll_flush(&mut cx).is_pending(),
            "not taken yet"
        );
        assert!(
            tx.as_mut().poll_ready(&mut cx).is_pending(),
            "one frame only"
        );
        let got = Pin::new(&mut body).poll_next(&mut cx);
        assert_eq!(got, Poll::Ready(Some(b"a".to_vec())));
        assert!(matches!(
            tx.as_mut().poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        tx.as_mut().start_send(Outgoing::KeepAlive).unwrap();
        assert!(Pin::new(&mut gone).poll_next(&mut cx).is_pending());
        drop(body);
        assert!(matches!(
            Pin::new(&mut gone).poll_next(&mut cx),
            Poll::Ready(None)
        ));
        assert!(matches!(
            tx.as_mut().poll_ready(&mut cx),
            Poll::Ready(Err(BodyGone))
        ));
    }

    #[test]
    fn body_ends_after_the_last_frame_when_the_sender_drops() {
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let (mut tx, _gone, mut body) = sse_body();
        Pin::new(&mut tx)
            .start_send(Outgoing::Data(b"last".to_vec()))
            .unwrap();
        drop(tx);
        let mut body = Pin::new(&mut body);
        assert_eq!(
            body.as_mut().poll_next(&mut cx),
            Poll::Ready(Some(b"last".to_vec()))
        );
        assert_eq!(body.as_mut().poll_next(&mut cx), Poll::Ready(None));
    }
}
