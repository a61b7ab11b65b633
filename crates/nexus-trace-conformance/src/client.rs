//! Clients for the event stream: a conforming SSE parser over a real HTTP
//! response, and a WebSocket reader.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `id:` field, if the event had one.
    pub id: Option<String>,
    /// The `event:` type (`message` when absent).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// An incremental parser following the HTML Living Standard's SSE rules
/// (line endings CRLF, LF or CR; comments; `data` joined by LF).
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    id: Option<String>,
    event: Option<String>,
    data: Vec<String>,
    has_data: bool,
    /// Comment lines seen (keep-alives).
    pub comments: usize,
}

impl SseParser {
    /// Feeds bytes; returns the events completed by them.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n' || *b == b'\r') {
            // A CR at the very end may be the first half of CRLF: wait.
            if self.buf[pos] == b'\r' && pos + 1 == self.buf.len() {
                break;
            }
            let line = String::from_utf8_lossy(&self.buf[..pos]).into_owned();
            let skip = if self.buf[pos] == b'\r' && self.buf.get(pos + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            self.buf.drain(..pos + skip);
            if let Some(e) = self.line(&line) {
                out.push(e);
            }
        }
        out
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = self.has_data.then(|| SseEvent {
                id: self.id.clone(),
                event: self.event.take().unwrap_or_else(|| "message".into()),
                data: self.data.join("\n"),
            });
            self.data.clear();
            self.has_data = false;
            self.event = None;
            return event;
        }
        if line.starts_with(':') {
            self.comments += 1;
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                self.data.push(value.to_owned());
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
        None
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_follows_the_spec() {
        let mut p = SseParser::default();
        let mut got = p.feed(b": hi\n\nid: 1\ndata: a\r\ndata:b\r\revent: x\ndata: c\n");
        got.extend(p.feed(b"\nid: 2\ndata: z\r"));
        got.extend(p.feed(b"\n\n"));
        assert_eq!(p.comments, 1);
        assert_eq!(
            got,
            vec![
                SseEvent {
                    id: Some("1".into()),
                    event: "message".into(),
                    data: "a\nb".into()
                },
                SseEvent {
                    id: Some("1".into()),
                    event: "x".into(),
                    data: "c".into()
                },
                SseEvent {
                    id: Some("2".into()),
                    event: "message".into(),
                    data: "z".into()
                },
            ]
        );
    }
}
