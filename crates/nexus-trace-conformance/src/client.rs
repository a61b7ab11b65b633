//! Clients for the event stream: a conforming SSE parser over a real HTTP
//! response, and a WebSocket reader.

use std::time::Duration;

use futures_util::StreamExt;
use nexus_trace_http::serve::sse::{SseEvent, SseParser};
use serde_json::Value;

/// An open SSE response.
pub struct SseStream {
    stream: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    parser: SseParser,
    pending: std::collections::VecDeque<SseEvent>,
}

impl std::fmt::Debug for SseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseStream").finish_non_exhaustive()
    }
}

impl SseStream {
    /// Wraps a successful `text/event-stream` response.
    pub fn new(res: reqwest::Response) -> SseStream {
        SseStream {
            stream: res.bytes_stream().boxed(),
            parser: SseParser::default(),
            pending: Default::default(),
        }
    }

    /// The next event, or `None` on end of stream or after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next()).await;
            match chunk {
                Ok(Some(Ok(bytes))) => self.pending.extend(self.parser.feed(&bytes)),
                _ => return None,
            }
        }
    }

    /// Keep-alive comments seen so far.
    pub fn comments(&self) -> usize {
        self.parser.comments
    }
}

/// The event id of a JSON event or SSE frame.
pub fn id_of(e: &Value) -> u64 {
    e["id"].as_u64().expect("event id")
}

/// Reads WebSocket text messages as JSON until `count` arrived or `timeout`.
pub async fn ws_read<S>(ws: &mut S, count: usize, timeout: Duration) -> Vec<Value>
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while out.len() < count {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                out.push(serde_json::from_str(t.as_str()).expect("one JSON value per message"));
            }
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    out
}
