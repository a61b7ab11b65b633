//! Server-Sent Events framing.
//!
//! One bus event is one SSE event: `id:` carries the event id (so a
//! reconnecting `EventSource` sends it back as `Last-Event-ID`) and `data:`
//! carries the event's JSON on a single line. The JSON encoder escapes every
//! control character and U+2028/U+2029, so no field content (a path with
//! `%0D%0A` decoded, a user agent with CR/LF) can end the line or inject a
//! frame.

use nexus_trace_core::Event;

/// Response headers every SSE stream carries (besides `content-type`).
pub const HEADERS: [(&str, &str); 3] = [
    ("cache-control", "no-cache"),
    // Tells nginx-style proxies not to buffer the stream.
    ("x-accel-buffering", "no"),
    ("x-content-type-options", "nosniff"),
];

/// The SSE content type.
pub const CONTENT_TYPE: &str = "text/event-stream";

/// A comment line that keeps idle connections (and proxies) alive.
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// Appends the frame for one bus event.
pub fn write_event(event: &Event, out: &mut Vec<u8>) {
    out.extend_from_slice(b"id: ");
    out.extend_from_slice(event.id.to_string().as_bytes());
    out.extend_from_slice(b"\ndata: ");
    event.write_json(out);
    out.extend_from_slice(b"\n\n");
}

/// Appends the frame that reports a lag: `n` events were skipped and the
/// next event delivered will be `next_id`. It is an SSE event of type
/// `lagged` (`addEventListener("lagged", ...)`), with no `id:` line, so it
/// does not move the client's `Last-Event-ID`.
pub fn write_lagged(n: u64, next_id: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(b"event: lagged\ndata: ");
    out.extend_from_slice(lagged_json(n, next_id).as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// Appends the last frame of a stream ended by the server's shutdown: an SSE
/// event of type `shutdown` (`addEventListener("shutdown", ...)`) with data
/// `{"kind":"shutdown","next":id}`, where `next` is the id the stream would
/// have delivered next. Like `lagged` it has no `id:` line, so the client's
/// `Last-Event-ID` stays at the last event it got and a reconnect resumes
/// exactly there. The body ends after this frame.
pub fn write_shutdown(next_id: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(b"event: shutdown\ndata: ");
    out.extend_from_slice(format!(r#"{{"kind":"shutdown","next":{next_id}}}"#).as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// The JSON body of a lag notice, also sent as a WebSocket text message:
/// `{"kind":"lagged","lagged":n,"next":id}`.
pub fn lagged_json(n: u64, next_id: u64) -> String {
    format!(r#"{{"kind":"lagged","lagged":{n},"next":{next_id}}}"#)
}

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
/// (line endings CRLF, LF or CR; comments; `data` joined by LF), for Rust
/// clients of `/__nexus/events` and for testing the encoder against.
///
/// No adapter uses it: it is the reading half of the framing above, kept
/// next to the writing half because the `sse_roundtrip` fuzz target (which
/// depends on this crate only, not on the test-only conformance crate)
/// checks that every frame written here parses back to the same event, and
/// the conformance suite's SSE client reads streams with it.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_is_one_frame_even_with_hostile_fields() {
        let mut e = Event::log("ua\rx");
        e.id = 42;
        e.path = "/a\r\ndata: x\n\nid: 7\u{2028}\u{2029}".into();
        let mut out = Vec::new();
        write_event(&e, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("id: 42\ndata: {"));
        assert!(text.ends_with("}\n\n"));
        // Exactly two line breaks inside the frame plus the terminator.
        assert_eq!(text.matches('\n').count(), 3, "{text:?}");
        assert!(!text.contains('\r'));
        assert!(!text.contains('\u{2028}') && !text.contains('\u{2029}'));
    }

    #[test]
    fn shutdown_frame() {
        let mut out = Vec::new();
        write_shutdown(7, &mut out);
        assert_eq!(
            out,
            b"event: shutdown\ndata: {\"kind\":\"shutdown\",\"next\":7}\n\n"
        );
    }

    #[test]
    fn lag_frame() {
        let mut out = Vec::new();
        write_lagged(5, 12, &mut out);
        assert_eq!(
            out,
            b"event: lagged\ndata: {\"kind\":\"lagged\",\"lagged\":5,\"next\":12}\n\n"
        );
    }

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
