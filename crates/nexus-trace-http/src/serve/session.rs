//! The life of one `/__nexus/events` client, written once for every adapter
//! and both wire formats: it writes the client's frames while reading what
//! the client says, and ends the stream for exactly one reason.
//!
//! * **Client close.** A WebSocket Close is answered at once with a Close
//!   (RFC 6455 §5.5.1), even mid-burst: the frame not yet written is
//!   dropped, nothing else is sent, and the session ends when the answer is
//!   flushed.
//! * **Pings and pongs.** A ping is answered with a pong carrying its
//!   payload (only the latest one, as §5.5.3 allows); pongs and any data the
//!   client sends are read and ignored.
//! * **Stalled client.** A write (the transport taking a frame, or
//!   flushing it) that makes no progress for the write bound ends the
//!   session. A client that reads slowly but steadily is never cut off. A
//!   frame is read from the ring only when the transport can take it, so
//!   what a slow client has not taken stays in the ring (and is reported as
//!   lag if it is overwritten), never in a queue of its own.
//! * **Shutdown.** When the surface's [`Shutdown`](crate::serve::shutdown::Shutdown)
//!   is triggered, what was handed to the transport goes out, then the
//!   goodbye: WebSocket Close 1001 (then a bounded wait for the client's
//!   Close), or the final SSE `shutdown` frame (whose `next` is the first
//!   id not delivered), after which the body ends.
//! * **Client gone.** The transport's read side ending (TCP closed, an SSE
//!   body dropped by the server) ends the session at once; an SSE client
//!   that left is noticed when the server notices, at the latest when the
//!   next keep-alive fails to write.
//!
//! The place under the stream cap is freed, and the reason counted for
//! `/__nexus/stats`, the moment the session ends.
//!
//! The session is a future: the adapter spawns it on its runtime with the
//! transport's two halves, a [`Sink`] of [`Outgoing`] frames and a
//! [`Stream`] of [`Incoming`] ones, translated from its WebSocket library.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_sink::Sink;

use crate::serve::limit::{EndReason, StreamPermit};
use crate::serve::shutdown::ShutdownListener;
use crate::serve::sse;
use crate::serve::stream::{EventStream, Format, Frame};
use crate::serve::timer::{Deadline, Ticks, Timer};

/// WebSocket close code: normal closure.
pub const CLOSE_NORMAL: u16 = 1000;
/// WebSocket close code: the server is going away (shutdown).
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// A frame for the transport to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// Event data: SSE bytes, or one WebSocket text message (UTF-8 JSON).
    Data(Vec<u8>),
    /// Nothing happened for a keep-alive period: an SSE comment, a
    /// WebSocket ping.
    KeepAlive,
    /// WebSocket pong answering a client's ping, with its payload.
    Pong(Vec<u8>),
    /// WebSocket Close answering the client's Close, echoing its code.
    /// Libraries that queue this answer themselves when they read the
    /// client's Close (tungstenite) only flush here.
    CloseReply(Option<u16>),
    /// WebSocket Close started by the server: code and reason.
    Close(u16, &'static str),
}

/// What the client sent, as the session needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A ping with its payload (answered with a pong).
    Ping(Vec<u8>),
    /// A pong (ignored).
    Pong,
    /// A Close frame, with its code if it had one.
    Close(Option<u16>),
    /// A data message (ignored: the stream is one-way).
    Message,
}

/// Most frames written in one poll before the session yields to other tasks.
const BUDGET: usize = 64;
/// Most client frames read in one poll.
const READ_BUDGET: usize = 16;
/// Longest wait for a client's Close after the server sent its own.
const MAX_CLOSE_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Streaming,
    /// Writing what is left, then ending for `reason`; with `await_reply`
    /// (a WebSocket Close the server started) then waiting for the client's.
    Closing {
        reason: EndReason,
        await_reply: bool,
    },
    /// The server's Close is out; waiting (bounded) for the client's.
    AwaitingReply(EndReason),
    Ended(EndReason),
}

/// One client's session: a future that ends with the reason the stream
/// ended. Made by [`Admitted::into_session`](crate::serve::surface::Admitted::into_session)
/// or [`Admitted::into_sse`](crate::serve::surface::Admitted::into_sse).
pub struct StreamSession<Tm: Timer, Tx, Rx> {
    events: EventStream<Ticks<Tm>>,
    format: Format,
    permit: Option<StreamPermit>,
    shutdown: ShutdownListener,
    /// Dropped when the session ends (closing the connection or ending the
    /// SSE body), even if the future itself is kept.
    tx: Option<Tx>,
    rx: Option<Rx>,
    timer: Tm,
    write_timeout: Duration,
    write_deadline: Deadline<Tm>,
    close_deadline: Deadline<Tm>,
    /// Written first: a pong, or the answer to the client's Close.
    control: Option<Outgoing>,
    /// The frame in hand.
    data: Option<Outgoing>,
    /// Written last: the server's Close, or the final SSE frame.
    goodbye: Option<Outgoing>,
    unflushed: bool,
    phase: Phase,
}

impl<Tm: Timer, Tx, Rx> std::fmt::Debug for StreamSession<Tm, Tx, Rx> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSession")
            .field("format", &self.format)
            .field("next_id", &self.events.next_id())
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

/// What a session is made of, handed over by the surface.
pub(crate) struct Parts<Tm: Timer> {
    pub(crate) events: EventStream<Ticks<Tm>>,
    pub(crate) format: Format,
    pub(crate) permit: StreamPermit,
    pub(crate) shutdown: ShutdownListener,
    pub(crate) timer: Tm,
    pub(crate) write_timeout: Duration,
}

impl<Tm, Tx, Rx> StreamSession<Tm, Tx, Rx>
where
    Tm: Timer + Unpin,
    Tx: Sink<Outgoing> + Unpin,
    Rx: Stream<Item = Incoming> + Unpin,
{
    pub(crate) fn new(parts: Parts<Tm>, tx: Tx, rx: Rx) -> Self {
        StreamSession {
            events: parts.events,
            format: parts.format,
            permit: Some(parts.permit),
            shutdown: parts.shutdown,
            tx: Some(tx),
            rx: Some(rx),
            timer: parts.timer,
            write_timeout: parts.write_timeout,
            write_deadline: Deadline::new(),
            close_deadline: Deadline::new(),
            control: None,
            data: None,
            goodbye: None,
            unflushed: false,
            phase: Phase::Streaming,
        }
    }

    /// The reason a failed or stalled write ends the session with.
    fn reason_if_cut_off(&self, streaming: EndReason) -> EndReason {
        match self.phase {
            Phase::Streaming => streaming,
            Phase::Closing { reason, .. } | Phase::AwaitingReply(reason) | Phase::Ended(reason) => {
                reason
            }
        }
    }

    fn finish(&mut self, reason: EndReason) -> Poll<EndReason> {
        self.phase = Phase::Ended(reason);
        self.tx = None;
        self.rx = None;
        self.control = None;
        self.data = None;
        self.goodbye = None;
        if let Some(permit) = self.permit.take() {
            permit.release(reason);
        }
        Poll::Ready(reason)
    }

    /// Stop streaming: write what is in hand, then say goodbye.
    fn begin_close(&mut self, reason: EndReason) {
        match self.format {
            Format::WebSocket => {
                let (code, text) = match reason {
                    EndReason::Shutdown => (CLOSE_GOING_AWAY, "server shutting down"),
                    _ => (CLOSE_NORMAL, "stream ended"),
                };
                self.goodbye = Some(Outgoing::Close(code, text));
                self.phase = Phase::Closing {
                    reason,
                    await_reply: true,
                };
            }
            Format::Sse => {
                if reason == EndReason::Shutdown {
                    let mut frame = Vec::new();
                    sse::write_shutdown(self.events.next_id(), &mut frame);
                    self.goodbye = Some(Outgoing::Data(frame));
                }
                self.phase = Phase::Closing {
                    reason,
                    await_reply: false,
                };
            }
        }
    }

    /// Reads what the client sent; `Some` when that ends the session.
    fn poll_incoming(&mut self, cx: &mut Context<'_>) -> Option<EndReason> {
        for _ in 0..READ_BUDGET {
            let rx = self.rx.as_mut()?;
            match Pin::new(rx).poll_next(cx) {
                Poll::Ready(Some(Incoming::Close(code))) => match self.phase {
                    Phase::Streaming => {
                        // Answer at once; what was not written is not sent.
                        self.data = None;
                        self.control = Some(Outgoing::CloseReply(code));
                        self.phase = Phase::Closing {
                            reason: EndReason::ClientClose,
                            await_reply: false,
                        };
                    }
                    Phase::Closing { reason, .. } => {
                        // Both sides closed at once: the server's own Close,
                        // still to be written, is the answer (§5.1.1).
                        self.data = None;
                        self.control = None;
                        self.phase = Phase::Closing {
                            reason,
                            await_reply: false,
                        };
                    }
                    Phase::AwaitingReply(reason) | Phase::Ended(reason) => return Some(reason),
                },
                Poll::Ready(Some(Incoming::Ping(payload))) => {
                    if self.phase == Phase::Streaming {
                        self.control = Some(Outgoing::Pong(payload));
                    }
                }
                Poll::Ready(Some(Incoming::Pong | Incoming::Message)) => {}
                Poll::Ready(None) => {
                    self.rx = None;
                    return Some(self.reason_if_cut_off(EndReason::Disconnected));
                }
                Poll::Pending => return None,
            }
        }
        // More may be waiting: come back after the others had their turn.
        cx.waker().wake_by_ref();
        None
    }

    /// The transport is not ready: wait, within the write bound.
    fn wait_for_write(&mut self, cx: &mut Context<'_>) -> Poll<EndReason> {
        self.write_deadline.arm(&self.timer, self.write_timeout);
        match self.write_deadline.poll_expired(cx) {
            Poll::Ready(()) => {
                let reason = self.reason_if_cut_off(EndReason::WriteTimeout);
                self.finish(reason)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Can the transport take a frame now? `Err` with the reason to end.
    fn poll_transport_ready(&mut self, cx: &mut Context<'_>) -> Result<bool, EndReason> {
        let Some(tx) = self.tx.as_mut() else {
            return Err(self.reason_if_cut_off(EndReason::Disconnected));
        };
        match Pin::new(tx).poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                self.write_deadline.disarm();
                Ok(true)
            }
            Poll::Ready(Err(_)) => Err(self.reason_if_cut_off(EndReason::Disconnected)),
            Poll::Pending => Ok(false),
        }
    }

    /// Flushes; `Some` to return from `poll` with.
    fn flush(&mut self, cx: &mut Context<'_>) -> Option<Poll<EndReason>> {
        let Some(tx) = self.tx.as_mut() else {
            return Some(self.finish(EndReason::Disconnected));
        };
        match Pin::new(tx).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                self.unflushed = false;
                self.write_deadline.disarm();
                None
            }
            Poll::Ready(Err(_)) => {
                let reason = self.reason_if_cut_off(EndReason::Disconnected);
                Some(self.finish(reason))
            }
            Poll::Pending => Some(self.wait_for_write(cx)),
        }
    }

    fn poll_session(&mut self, cx: &mut Context<'_>) -> Poll<EndReason> {
        if let Phase::Ended(reason) = self.phase {
            return Poll::Ready(reason);
        }
        let mut budget = BUDGET;
        loop {
            if self.phase == Phase::Streaming && self.shutdown.poll_triggered(cx).is_ready() {
                self.begin_close(EndReason::Shutdown);
            }
            if let Some(reason) = self.poll_incoming(cx) {
                return self.finish(reason);
            }
            let idle = self.control.is_none() && self.data.is_none();
            if self.phase == Phase::Streaming && idle {
                // Take the next frame only once the transport can take it:
                // what the client has not taken stays in the ring, where a
                // client that falls behind is told how much it lagged.
                match self.poll_transport_ready(cx) {
                    Ok(true) => {}
                    Ok(false) => return self.wait_for_write(cx),
                    Err(reason) => return self.finish(reason),
                }
                match Pin::new(&mut self.events).poll_next(cx) {
                    Poll::Ready(Some(Frame::Data(bytes))) => {
                        self.data = Some(Outgoing::Data(bytes))
                    }
                    Poll::Ready(Some(Frame::KeepAlive)) => self.data = Some(Outgoing::KeepAlive),
                    Poll::Ready(None) => self.begin_close(EndReason::SourceClosed),
                    Poll::Pending => {}
                }
            }
            let has_next = self.control.is_some() || self.data.is_some() || self.goodbye.is_some();
            if has_next {
                match self.poll_transport_ready(cx) {
                    Ok(true) => {
                        let next = self
                            .control
                            .take()
                            .or_else(|| self.data.take())
                            .or_else(|| self.goodbye.take());
                        let sent = match (next, self.tx.as_mut()) {
                            (Some(frame), Some(tx)) => Pin::new(tx).start_send(frame).is_ok(),
                            _ => true,
                        };
                        if !sent {
                            let reason = self.reason_if_cut_off(EndReason::Disconnected);
                            return self.finish(reason);
                        }
                        self.unflushed = true;
                        budget -= 1;
                        if budget == 0 {
                            // Yield to other tasks; what is buffered goes out first.
                            if let Some(done) = self.flush(cx) {
                                return done;
                            }
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        continue;
                    }
                    Ok(false) => return self.wait_for_write(cx),
                    Err(reason) => return self.finish(reason),
                }
            }
            if self.unflushed {
                if let Some(done) = self.flush(cx) {
                    return done;
                }
            }
            // Everything is written and flushed.
            match self.phase {
                Phase::Streaming => return Poll::Pending,
                Phase::Closing {
                    reason,
                    await_reply: false,
                } => return self.finish(reason),
                Phase::Closing {
                    reason,
                    await_reply: true,
                } => {
                    self.phase = Phase::AwaitingReply(reason);
                    let wait = self.write_timeout.min(MAX_CLOSE_WAIT);
                    self.close_deadline.arm(&self.timer, wait);
                }
                Phase::AwaitingReply(reason) => {
                    return match self.close_deadline.poll_expired(cx) {
                        Poll::Ready(()) => self.finish(reason),
                        Poll::Pending => Poll::Pending,
                    };
                }
                Phase::Ended(reason) => return Poll::Ready(reason),
            }
        }
    }
}

impl<Tm, Tx, Rx> Future for StreamSession<Tm, Tx, Rx>
where
    Tm: Timer + Unpin,
    Tx: Sink<Outgoing> + Unpin,
    Rx: Stream<Item = Incoming> + Unpin,
{
    type Output = EndReason;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<EndReason> {
        self.get_mut().poll_session(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use futures::task::noop_waker;

    use super::*;
    use crate::serve::gate::Access;
    use crate::serve::surface::{EventsRequest, NexusEndpoints};
    use nexus_trace_core::{Bus, Event};

    /// A clock the test moves by hand, in milliseconds.
    #[derive(Clone, Default)]
    struct Clock(Arc<AtomicU64>);

    struct Sleep {
        clock: Clock,
        until: u64,
    }

    impl Future for Sleep {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            if self.clock.0.load(Ordering::SeqCst) >= self.until {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    impl Clock {
        fn advance(&self, ms: u64) {
            self.0.fetch_add(ms, Ordering::SeqCst);
        }
        fn at(&self, after: Duration) -> u64 {
            self.0.load(Ordering::SeqCst) + after.as_millis() as u64
        }
    }

    impl Timer for Clock {
        type Sleep = Sleep;
        fn sleep(&self, after: Duration) -> Sleep {
            Sleep {
                clock: self.clone(),
                until: self.at(after),
            }
        }
        fn reset(&self, sleep: Pin<&mut Sleep>, after: Duration) {
            sleep.get_mut().until = self.at(after);
        }
    }

    /// The client's end of a fake transport.
    #[derive(Clone, Default)]
    struct Peer {
        written: Arc<Mutex<Vec<Outgoing>>>,
        blocked: Arc<AtomicBool>,
        incoming: Arc<Mutex<VecDeque<Incoming>>>,
        gone: Arc<AtomicBool>,
    }

    impl Peer {
        fn written(&self) -> Vec<Outgoing> {
            self.written.lock().unwrap().clone()
        }
        fn send(&self, m: Incoming) {
            self.incoming.lock().unwrap().push_back(m);
        }
    }

    struct Tx(Peer);
    struct Rx(Peer);

    impl Sink<Outgoing> for Tx {
        type Error = ();
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            if self.0.blocked.load(Ordering::SeqCst) {
                Poll::Pending
            } else {
                Poll::Ready(Ok(()))
            }
        }
        fn start_send(self: Pin<&mut Self>, item: Outgoing) -> Result<(), ()> {
            self.0.written.lock().unwrap().push(item);
            Ok(())
        }
        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
            self.poll_ready(cx)
        }
        fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
            self.poll_ready(cx)
        }
    }

    impl Stream for Rx {
        type Item = Incoming;
        fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Incoming>> {
            match self.0.incoming.lock().unwrap().pop_front() {
                Some(m) => Poll::Ready(Some(m)),
                None if self.0.gone.load(Ordering::SeqCst) => Poll::Ready(None),
                None => Poll::Pending,
            }
        }
    }

    fn surface(bus: &Bus) -> NexusEndpoints {
        NexusEndpoints::new(bus.clone(), Access::loopback())
            .write_timeout(Duration::from_millis(100))
            .keep_alive(Duration::from_secs(60))
    }

    fn websocket(
        surface: &NexusEndpoints,
        clock: &Clock,
        peer: &Peer,
    ) -> StreamSession<Clock, Tx, Rx> {
        let admitted = surface
            .events(EventsRequest {
                upgrade: Some(b"websocket"),
                ..EventsRequest::default()
            })
            .unwrap();
        admitted.into_session(clock.clone(), Tx(peer.clone()), Rx(peer.clone()))
    }

    fn poll<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        let waker = noop_waker();
        Pin::new(f).poll(&mut Context::from_waker(&waker))
    }

    fn publish(bus: &Bus, n: usize) {
        for _ in 0..n {
            bus.publish(Event::default());
        }
    }

    fn stats(surface: &NexusEndpoints) -> serde_json::Value {
        serde_json::from_str(&surface.stats()).unwrap()
    }

    #[test]
    fn a_close_mid_burst_is_answered_at_once_and_nothing_follows_it() {
        let bus = Bus::new(1024);
        let s = surface(&bus);
        let (clock, peer) = (Clock::default(), Peer::default());
        let mut session = websocket(&s, &clock, &peer);
        publish(&bus, 1000);
        assert!(poll(&mut session).is_pending(), "yields within its budget");
        let before = peer.written().len();
        assert!((1..1000).contains(&before), "mid-burst: {before} written");
        peer.send(Incoming::Close(Some(1000)));
        assert_eq!(poll(&mut session), Poll::Ready(EndReason::ClientClose));
        let written = peer.written();
        assert_eq!(written.len(), before + 1);
        assert_eq!(written.last(), Some(&Outgoing::CloseReply(Some(1000))));
        let st = stats(&s);
        assert_eq!(st["streams"]["live"], 0);
        assert_eq!(st["streams"]["ended"]["client_close"], 1);
        assert_eq!(st["subscribers"], 1, "the cursor goes with the future");
        drop(session);
        assert_eq!(stats(&s)["subscribers"], 0);
    }

    #[test]
    fn pings_are_answered_and_pongs_ignored() {
        let bus = Bus::new(16);
        let s = surface(&bus);
        let (clock, peer) = (Clock::default(), Peer::default());
        let mut session = websocket(&s, &clock, &peer);
        peer.send(Incoming::Ping(b"a".to_vec()));
        peer.send(Incoming::Ping(b"b".to_vec()));
        peer.send(Incoming::Pong);
        peer.send(Incoming::Message);
        assert!(poll(&mut session).is_pending());
        assert_eq!(peer.written(), vec![Outgoing::Pong(b"b".to_vec())]);
        peer.gone.store(true, Ordering::SeqCst);
        assert_eq!(poll(&mut session), Poll::Ready(EndReason::Disconnected));
    }

    #[test]
    fn a_stalled_write_ends_the_stream_after_the_bound_a_slow_one_does_not() {
        let bus = Bus::new(16);
        let s = surface(&bus).max_streams(1);
        let (clock, peer) = (Clock::default(), Peer::default());
        let mut session = websocket(&s, &clock, &peer);
        peer.blocked.store(true, Ordering::SeqCst);
        publish(&bus, 3);
        assert!(poll(&mut session).is_pending());
        clock.advance(60);
        assert!(poll(&mut session).is_pending(), "within the bound");
        peer.blocked.store(false, Ordering::SeqCst);
        assert!(
            poll(&mut session).is_pending(),
            "progress disarms the bound"
        );
        assert_eq!(peer.written().len(), 3);
        peer.blocked.store(true, Ordering::SeqCst);
        publish(&bus, 1);
        assert!(poll(&mut session).is_pending());
        clock.advance(60);
        assert!(poll(&mut session).is_pending(), "a fresh bound");
        clock.advance(60);
        assert_eq!(poll(&mut session), Poll::Ready(EndReason::WriteTimeout));
        let st = stats(&s);
        assert_eq!(st["streams"]["live"], 0);
        assert_eq!(st["streams"]["ended"]["write_timeout"], 1);
        assert!(s.events(EventsRequest::default()).is_ok(), "place reused");
    }

    #[test]
    fn shutdown_sends_close_1001_and_waits_for_the_reply() {
        let bus = Bus::new(16);
        let s = surface(&bus);
        let (clock, peer) = (Clock::default(), Peer::default());
        let mut session = websocket(&s, &clock, &peer);
        let (clock2, peer2) = (Clock::default(), Peer::default());
        let mut silent = websocket(&s, &clock2, &peer2);
        publish(&bus, 1);
        assert!(poll(&mut session).is_pending());
        s.shutdown_handle().trigger();
        publish(&bus, 1);
        assert!(poll(&mut session).is_pending(), "waits for the reply");
        assert_eq!(peer.written().len(), 2);
        assert_eq!(
            peer.written()[1],
            Outgoing::Close(CLOSE_GOING_AWAY, "server shutting down")
        );
        peer.send(Incoming::Close(Some(CLOSE_GOING_AWAY)));
        assert_eq!(poll(&mut session), Poll::Ready(EndReason::Shutdown));
        // A client that never answers is let go after the bound.
        assert!(poll(&mut silent).is_pending());
        clock2.advance(100);
        assert_eq!(poll(&mut silent), Poll::Ready(EndReason::Shutdown));
        assert_eq!(stats(&s)["streams"]["ended"]["shutdown"], 2);
        let refused = s.events(EventsRequest::default()).unwrap_err();
        assert_eq!(refused.status, 503);
        drop((session, silent));
        let mut closed = std::pin::pin!(s.shutdown_handle().closed());
        assert!(poll(&mut closed).is_ready());
    }

    #[test]
    fn sse_shutdown_writes_a_final_frame_and_ends_the_body() {
        let bus = Bus::new(16);
        let s = surface(&bus);
        let (mut session, mut body) = s
            .events(EventsRequest::default())
            .unwrap()
            .into_sse(Clock::default());
        publish(&bus, 2);
        assert!(
            poll(&mut session).is_pending(),
            "the server has not taken it"
        );
        s.shutdown_handle().trigger();
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut text = String::new();
        loop {
            let _ = poll(&mut session);
            match Pin::new(&mut body).poll_next(&mut cx) {
                Poll::Ready(Some(chunk)) => text.push_str(std::str::from_utf8(&chunk).unwrap()),
                Poll::Ready(None) => break,
                Poll::Pending => panic!("stuck after {text:?}"),
            }
        }
        assert!(text.starts_with("id: 1\n"), "{text}");
        assert!(
            text.ends_with("event: shutdown\ndata: {\"kind\":\"shutdown\",\"next\":3}\n\n"),
            "{text}"
        );
        assert_eq!(poll(&mut session), Poll::Ready(EndReason::Shutdown));
    }

    #[test]
    fn an_sse_body_dropped_by_the_server_ends_the_session() {
        let bus = Bus::new(16);
        let s = surface(&bus);
        let (mut session, body) = s
            .events(EventsRequest::default())
            .unwrap()
            .into_sse(Clock::default());
        assert!(poll(&mut session).is_pending());
        drop(body);
        assert_eq!(poll(&mut session), Poll::Ready(EndReason::Disconnected));
        assert_eq!(stats(&s)["streams"]["ended"]["disconnected"], 1);
    }
}
