//! Every decision of the `/__nexus` routes, made once for all adapters: who
//! may enter, where an event stream starts, in which format, whether there
//! is room for it, and what a refusal says. An adapter only turns these
//! answers into its framework's responses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;
use futures_sink::Sink;

use crate::serve::gate::{Access, AccessRequest, Decision};
use crate::serve::limit::{StreamLimiter, StreamPermit};
use crate::serve::session::{Incoming, Outgoing, Parts, StreamSession};
use crate::serve::shutdown::{Shutdown, ShutdownListener};
use crate::serve::sse_body::{sse_body, SseBody, SseGone, SseSender};
use crate::serve::stream::{EventStream, Format};
use crate::serve::timer::{Ticks, Timer};
use crate::serve::{resume, stats_json, trace_json, websocket_origin_allowed};
use nexus_trace_core::Bus;

/// A refused request: status, plain-text message, extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status (400, 401, 403, 429, 503).
    pub status: u16,
    /// Plain-text body, ending in a newline.
    pub message: String,
    /// Extra response headers (`WWW-Authenticate`, `Retry-After`).
    pub headers: Vec<(&'static str, &'static str)>,
}

impl Refusal {
    fn new(status: u16, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }
}

/// What `GET /__nexus/events` carries that matters.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventsRequest<'a> {
    /// Raw `Last-Event-ID` header.
    pub last_event_id: Option<&'a [u8]>,
    /// Raw query string.
    pub query: Option<&'a str>,
    /// Raw `Upgrade` header.
    pub upgrade: Option<&'a [u8]>,
    /// Raw `Origin` header.
    pub origin: Option<&'a [u8]>,
    /// Raw `Host` header.
    pub host: Option<&'a [u8]>,
}

/// An admitted event stream, waiting for its transport.
#[derive(Debug)]
pub struct Admitted {
    bus: Bus,
    since: u64,
    /// SSE, or WebSocket when the request asked to upgrade.
    pub format: Format,
    permit: StreamPermit,
    shutdown: ShutdownListener,
    keep_alive: Duration,
    write_timeout: Duration,
}

impl Admitted {
    fn parts<Tm: Timer + Clone>(self, timer: Tm) -> Parts<Tm> {
        let ticks = Ticks::new(timer.clone(), self.keep_alive);
        Parts {
            events: EventStream::new(self.bus.subscribe(self.since), self.format, ticks),
            format: self.format,
            permit: self.permit,
            shutdown: self.shutdown,
            timer,
            write_timeout: self.write_timeout,
        }
    }

    /// The session of a WebSocket client over its transport's two halves:
    /// `tx` writes [`Outgoing`] frames, `rx` yields what the client sent and
    /// ends when the connection does. Spawn it; it ends with the reason.
    pub fn into_session<Tm, Tx, Rx>(self, timer: Tm, tx: Tx, rx: Rx) -> StreamSession<Tm, Tx, Rx>
    where
        Tm: Timer + Clone + Unpin,
        Tx: Sink<Outgoing> + Unpin,
        Rx: Stream<Item = Incoming> + Unpin,
    {
        StreamSession::new(self.parts(timer), tx, rx)
    }

    /// An SSE client: the session to spawn and the response body it feeds.
    /// The server dropping the body (client gone) ends the session.
    pub fn into_sse<Tm>(self, timer: Tm) -> (StreamSession<Tm, SseSender, SseGone>, SseBody)
    where
        Tm: Timer + Clone + Unpin,
    {
        let (tx, gone, body) = sse_body();
        (StreamSession::new(self.parts(timer), tx, gone), body)
    }
}

/// The shared state of one mounted `/__nexus` surface. Clones share the
/// stream cap, so make one per application, not per worker.
#[derive(Debug, Clone)]
pub struct NexusEndpoints {
    bus: Bus,
    access: Access,
    limiter: Arc<StreamLimiter>,
    keep_alive: Duration,
    write_timeout: Duration,
    shutdown: Shutdown,
    allowed_origins: Arc<[String]>,
}

impl NexusEndpoints {
    /// Default cap on concurrent event-stream clients.
    pub const DEFAULT_MAX_STREAMS: usize = 32;
    /// Default period of SSE keep-alive comments and WebSocket pings.
    pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);
    /// Default bound on one write to an event-stream client.
    pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

    /// A surface over `bus` behind `access`.
    pub fn new(bus: Bus, access: Access) -> NexusEndpoints {
        NexusEndpoints {
            bus,
            access,
            limiter: StreamLimiter::new(Self::DEFAULT_MAX_STREAMS),
            keep_alive: Self::DEFAULT_KEEP_ALIVE,
            write_timeout: Self::DEFAULT_WRITE_TIMEOUT,
            shutdown: Shutdown::new(),
            allowed_origins: Arc::from([]),
        }
    }

    /// Most concurrent event-stream clients; more get 429.
    pub fn max_streams(mut self, n: usize) -> NexusEndpoints {
        self.limiter = StreamLimiter::new(n);
        self
    }

    /// Period of keep-alives (at least 10 ms).
    pub fn keep_alive(mut self, period: Duration) -> NexusEndpoints {
        self.keep_alive = period.max(Duration::from_millis(10));
        self
    }

    /// Bound on one write to an event-stream client (at least 1 ms): a
    /// frame the transport does not take, or a flush that makes no
    /// progress, for this long ends the stream and frees its place. Also
    /// bounds each goodbye on shutdown.
    pub fn write_timeout(mut self, bound: Duration) -> NexusEndpoints {
        self.write_timeout = bound.max(Duration::from_millis(1));
        self
    }

    /// The switch that ends every stream on graceful shutdown (shared by
    /// clones of this surface).
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Also accept WebSocket handshakes from this `Origin`.
    pub fn allow_origin(mut self, origin: impl Into<String>) -> NexusEndpoints {
        let mut all = self.allowed_origins.to_vec();
        all.push(origin.into());
        self.allowed_origins = all.into();
        self
    }

    /// The access gate: `None` to serve, else the refusal (401 with
    /// `WWW-Authenticate`, or 403).
    pub fn gate(
        &self,
        peer: Option<SocketAddr>,
        authorization: Option<&[u8]>,
        query: Option<&str>,
    ) -> Option<Refusal> {
        let decision = self.access.check(&AccessRequest {
            peer,
            authorization,
            query,
        });
        match decision {
            Decision::Allow => None,
            Decision::Unauthorized => Some(Refusal {
                headers: vec![("www-authenticate", "Bearer realm=\"nexus\"")],
                ..Refusal::new(401, "nexus: missing or invalid bearer token\n")
            }),
            Decision::Forbidden => Some(Refusal::new(
                403,
                "nexus: this peer may not access /__nexus\n",
            )),
        }
    }

    /// Decides `GET /__nexus/events`: 400 for a malformed resume point, 403
    /// for a cross-origin WebSocket, 503 once shut down, 429 past the cap;
    /// otherwise the stream (from the resume point, or the whole retained
    /// backlog without one).
    pub fn events(&self, req: EventsRequest<'_>) -> Result<Admitted, Refusal> {
        let since = resume::resume_point(req.last_event_id, req.query)
            .map_err(|e| Refusal::new(400, format!("nexus: {e}\n")))?
            .unwrap_or(0);
        let websocket = req
            .upgrade
            .is_some_and(|v| v.eq_ignore_ascii_case(b"websocket"));
        if websocket && !websocket_origin_allowed(req.origin, req.host, &self.allowed_origins) {
            return Err(Refusal::new(403, "nexus: cross-origin WebSocket refused\n"));
        }
        if self.shutdown.is_triggered() {
            return Err(Refusal {
                headers: vec![("retry-after", "5")],
                ..Refusal::new(503, "nexus: shutting down\n")
            });
        }
        let permit = self.limiter.try_acquire().ok_or_else(|| Refusal {
            headers: vec![("retry-after", "5")],
            ..Refusal::new(429, "nexus: too many event-stream clients\n")
        })?;
        Ok(Admitted {
            bus: self.bus.clone(),
            since,
            format: if websocket {
                Format::WebSocket
            } else {
                Format::Sse
            },
            permit,
            shutdown: self.shutdown.listener(),
            keep_alive: self.keep_alive,
            write_timeout: self.write_timeout,
        })
    }

    /// `GET /__nexus/traces/{trace_id}`: the JSON array, or a 400.
    pub fn trace(&self, trace_id: &str) -> Result<Vec<u8>, Refusal> {
        trace_json(&self.bus, trace_id).map_err(|m| Refusal::new(400, m))
    }

    /// `GET /__nexus/stats`: the counters as JSON.
    pub fn stats(&self) -> String {
        stats_json(&self.bus, &self.limiter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> Option<SocketAddr> {
        Some("127.0.0.1:1".parse().unwrap())
    }

    #[test]
    fn events_decisions() {
        let s = NexusEndpoints::new(Bus::new(4), Access::loopback()).max_streams(1);
        let bad = EventsRequest {
            last_event_id: Some(b"x"),
            ..EventsRequest::default()
        };
        assert_eq!(s.events(bad).unwrap_err().status, 400);
        let cross = EventsRequest {
            upgrade: Some(b"websocket"),
            origin: Some(b"http://evil.example"),
            host: Some(b"127.0.0.1:1"),
            ..EventsRequest::default()
        };
        assert_eq!(s.events(cross).unwrap_err().status, 403);
        let first = s.events(EventsRequest::default()).unwrap();
        assert_eq!(first.format, Format::Sse);
        let full = s.events(EventsRequest::default()).unwrap_err();
        assert_eq!(
            (full.status, full.headers.clone()),
            (429, vec![("retry-after", "5")])
        );
        drop(first);
        assert!(
            s.events(EventsRequest::default()).is_ok(),
            "the place came back"
        );
    }

    #[test]
    fn gate_refusals() {
        let s = NexusEndpoints::new(Bus::new(4), Access::bearer("t").unwrap());
        assert_eq!(s.gate(loopback(), None, None).unwrap().status, 401);
        assert!(s.gate(loopback(), Some(b"Bearer t"), None).is_none());
        let s = NexusEndpoints::new(Bus::new(4), Access::loopback());
        assert_eq!(
            s.gate(Some("10.0.0.1:1".parse().unwrap()), None, None)
                .unwrap()
                .status,
            403
        );
    }
}
