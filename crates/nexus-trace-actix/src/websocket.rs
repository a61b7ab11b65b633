//! `GET /__nexus/events` over WebSocket (feature `websocket`): actix-ws as
//! the transport of the stream's session.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use futures_util::{Sink, Stream, StreamExt};
use nexus_trace_http::serve::session::{Incoming, Outgoing};
use nexus_trace_http::serve::surface::Admitted;

use crate::routes::TokioTimer;

/// Completes the handshake of an admitted WebSocket stream and spawns its
/// session over the connection.
pub(crate) fn upgrade(
    admitted: Admitted,
    req: &HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    match actix_ws::handle(req, payload) {
        Ok((response, session, incoming)) => {
            let session =
                admitted.into_session(TokioTimer, WsSink::new(session), WsIncoming(incoming));
            actix_web::rt::spawn(session);
            response
        }
        Err(e) => e.as_response_error().error_response(),
    }
}

/// The session's frames, written through actix-ws's session.
struct WsSink {
    session: Session,
    /// A Close was queued: actix-ws ends the response after it, so the
    /// client's answer can no longer be read.
    closed: bool,
}

impl WsSink {
    fn new(session: Session) -> WsSink {
        WsSink {
            session,
            closed: false,
        }
    }
}

impl Sink<Outgoing> for WsSink {
    type Error = actix_ws::Closed;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.session).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Outgoing) -> Result<(), Self::Error> {
        self.closed |= matches!(item, Outgoing::CloseReply(_) | Outgoing::Close(..));
        let message = match item {
            Outgoing::Data(bytes) => match String::from_utf8(bytes) {
                Ok(text) => Message::Text(text.into()),
                // Event JSON is always UTF-8; never send a broken text frame.
                Err(_) => return Ok(()),
            },
            Outgoing::KeepAlive => Message::Ping(Bytes::new()),
            Outgoing::Pong(payload) => Message::Pong(payload.into()),
            Outgoing::CloseReply(code) => Message::Close(code.map(|code| CloseReason {
                code: CloseCode::from(code),
                description: None,
            })),
            Outgoing::Close(code, reason) => Message::Close(Some(CloseReason {
                code: CloseCode::from(code),
                description: Some(reason.to_owned()),
            })),
        };
        Pin::new(&mut self.session).start_send(message)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match Pin::new(&mut self.session).poll_flush(cx) {
            // The Close is queued and actix-ws will end the connection
            // after writing it: report the connection closed, so the
            // session ends now instead of waiting for an answer it cannot
            // read (the queued frames are still written).
            Poll::Ready(Ok(())) if self.closed => Poll::Ready(Err(actix_ws::Closed)),
            other => other,
        }
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.session).poll_close(cx)
    }
}

/// What the client sent, read from actix-ws; ends with the connection (or
/// a protocol error).
struct WsIncoming(MessageStream);

impl Stream for WsIncoming {
    type Item = Incoming;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        self.0.poll_next_unpin(cx).map(|message| match message? {
            Ok(Message::Ping(payload)) => Some(Incoming::Ping(payload.to_vec())),
            Ok(Message::Pong(_)) => Some(Incoming::Pong),
            Ok(Message::Close(reason)) => Some(Incoming::Close(reason.map(|r| r.code.into()))),
            Ok(_) => Some(Incoming::Message),
            Err(_) => None,
        })
    }
}
