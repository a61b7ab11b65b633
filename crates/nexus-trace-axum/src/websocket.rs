//! `GET /__nexus/events` over WebSocket (feature `websocket`): axum's
//! WebSocket (tungstenite) as the transport of the stream's session.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use nexus_trace_http::serve::session::{Incoming, Outgoing};
use nexus_trace_http::serve::surface::Admitted;

use crate::routes::TokioTimer;

/// Largest message a stream client may send (it has nothing to say beyond
/// control frames; actix-ws uses the same limit).
const CLIENT_MESSAGE_LIMIT: usize = 64 * 1024;

/// Completes the handshake of an admitted WebSocket stream and runs its
/// session over the socket.
pub(crate) async fn upgrade(admitted: Admitted, req: Request) -> Response {
    let (mut parts, _) = req.into_parts();
    match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => {
            upgrade
                .max_message_size(CLIENT_MESSAGE_LIMIT)
                .on_upgrade(move |socket| async move {
                    let (tx, rx) = socket.split();
                    admitted
                        .into_session(TokioTimer, WsSink(tx), WsIncoming(rx))
                        .await;
                })
        }
        Err(rejection) => rejection.into_response(),
    }
}

/// The session's frames, written to axum's WebSocket (tungstenite).
struct WsSink(SplitSink<WebSocket, Message>);

impl Sink<Outgoing> for WsSink {
    type Error = axum::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready_unpin(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Outgoing) -> Result<(), Self::Error> {
        let message = match item {
            Outgoing::Data(bytes) => match String::from_utf8(bytes) {
                Ok(text) => Message::Text(text.into()),
                // Event JSON is always UTF-8; never send a broken text frame.
                Err(_) => return Ok(()),
            },
            Outgoing::KeepAlive => Message::Ping(Bytes::new()),
            // tungstenite answers pings itself while it reads them, and
            // queues the answer to a Close the moment it reads it: flushing
            // (which follows) sends it.
            Outgoing::Pong(_) | Outgoing::CloseReply(_) => return Ok(()),
            Outgoing::Close(code, reason) => Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })),
        };
        self.0.start_send_unpin(message)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_flush_unpin(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_close_unpin(cx)
    }
}

/// What the client sent, read from axum's WebSocket; ends with the
/// connection (or a protocol error).
struct WsIncoming(SplitStream<WebSocket>);

impl Stream for WsIncoming {
    type Item = Incoming;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        self.0.poll_next_unpin(cx).map(|message| match message? {
            Ok(Message::Ping(payload)) => Some(Incoming::Ping(payload.to_vec())),
            Ok(Message::Pong(_)) => Some(Incoming::Pong),
            Ok(Message::Close(frame)) => Some(Incoming::Close(frame.map(|f| f.code))),
            Ok(Message::Text(_) | Message::Binary(_)) => Some(Incoming::Message),
            Err(_) => None,
        })
    }
}
