use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use futures_util::{Sink, Stream, StreamExt};
use nexus_trace_core::Bus;
use nexus_trace_http::serve::gate::Access;
use nexus_trace_http::serve::session::{Incoming, Outgoing};
use nexus_trace_http::serve::shutdown::Shutdown;
use nexus_trace_http::serve::stream::Format;
use nexus_trace_http::serve::surface::{EventsRequest, NexusEndpoints, Refusal};
use nexus_trace_http::serve::timer::Timer;
use nexus_trace_http::serve::{dashboard, sse};
use nexus_trace_http::PREFIX;

/// The `/__nexus` routes: the live event stream, traces by id, and the
/// dashboard, behind an access gate that must be chosen explicitly.
///
/// * `GET /__nexus/events`: WebSocket when the request asks to upgrade
///   (`?since=N`, one JSON event per text message), otherwise Server-Sent
///   Events (`id:` = event id; `Last-Event-ID` beats `?since=`). Without
///   either, the retained backlog is replayed first. Lag is reported as a
///   `lagged` frame. Past [`max_streams`](Self::max_streams) clients: 429.
/// * `GET /__nexus/traces/{trace_id}`: the retained events of one trace.
/// * `GET /__nexus/stats`: the bus's counters and the stream cap's,
///   including `streams.ended.{client_close, disconnected, write_timeout,
///   shutdown, source_closed}`.
/// * `GET /__nexus/`: the dashboard.
///
/// # How event streams end
///
/// * A WebSocket client's Close is answered with a Close at once, also
///   mid-burst; pings are answered with pongs.
/// * A write that makes no progress for [`write_timeout`](Self::write_timeout)
///   (a client that stopped reading) ends the stream and frees its place.
///   actix-web keeps the TCP connection until its own write completes or
///   fails; the stream holds no place and no cursor meanwhile.
/// * An SSE client that went away is noticed when actix-web notices, at the
///   latest when the next keep-alive fails to write (at once with
///   `HttpServer::h1_allow_half_closed(false)`).
/// * On graceful shutdown, through [`shutdown_handle`](Self::shutdown_handle):
///   WebSocket streams get Close 1001 ("going away"), SSE streams a final
///   `event: shutdown` frame (`{"kind":"shutdown","next":<id>}`, no `id:`
///   line, so `Last-Event-ID` resumes exactly) and the end of the body; new
///   stream requests get 503. Without it, a graceful stop waits for open
///   SSE streams until `shutdown_timeout` and then drops them.
///
/// Mount them with `App::configure(routes.config())`. `HttpServer` builds
/// one `App` per worker: make the configuration once, outside the app
/// factory, and clone it in, so that all workers share one stream cap:
///
/// ```no_run
/// use actix_web::{App, HttpServer};
/// use nexus_trace_actix::{Access, NexusRoutes, NexusTrace};
/// use nexus_trace_actix::Bus;
///
/// # async fn run() -> std::io::Result<()> {
/// let bus = Bus::new(4096);
/// let routes = NexusRoutes::new(bus.clone(), Access::loopback());
/// let stop = routes.shutdown_handle();
/// let nexus = routes.config();
/// HttpServer::new(move || {
///     App::new()
///         .wrap(NexusTrace::new(bus.clone()).service("users"))
///         .configure(nexus.clone())
/// })
/// // Replaces actix-web's own signal handling: stop on Ctrl-C, after
/// // every event stream said goodbye.
/// .shutdown_signal(stop.after(async {
///     actix_web::rt::signal::ctrl_c().await.ok();
/// }))
/// .bind(("127.0.0.1", 8080))?
/// .run()
/// .await
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct NexusRoutes {
    surface: NexusEndpoints,
}

impl NexusRoutes {
    /// Routes over `bus`, gated by `access` (e.g. [`Access::loopback`] or
    /// `Access::bearer(token)?`; an empty token is refused there).
    pub fn new(bus: Bus, access: Access) -> Self {
        NexusRoutes {
            surface: NexusEndpoints::new(bus, access),
        }
    }

    /// Most concurrent event-stream clients (default 32); more get 429.
    pub fn max_streams(mut self, n: usize) -> Self {
        self.surface = self.surface.max_streams(n);
        self
    }

    /// Period of SSE keep-alive comments and WebSocket pings (default 15 s).
    pub fn keep_alive(mut self, period: Duration) -> Self {
        self.surface = self.surface.keep_alive(period);
        self
    }

    /// Bound on one write to an event-stream client (default 10 s): a frame
    /// that cannot be handed to the connection, or a flush that makes no
    /// progress, for this long ends the stream (a client that stopped
    /// reading) and frees its place. Also bounds each goodbye on shutdown.
    pub fn write_timeout(mut self, bound: Duration) -> Self {
        self.surface = self.surface.write_timeout(bound);
        self
    }

    /// The switch that ends every event stream on graceful shutdown: pass
    /// `handle.after(signal)` to `HttpServer::shutdown_signal` (see above),
    /// or call [`Shutdown::trigger`] and await [`Shutdown::closed`] before
    /// stopping the server yourself. Clones of these routes share it.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.surface.shutdown_handle()
    }

    /// Also accept WebSocket connections from this `Origin` (by default only
    /// same-origin pages and non-browser clients are accepted).
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.surface = self.surface.allow_origin(origin);
        self
    }

    /// The configuration to pass to `App::configure`. Clones share one
    /// stream cap, so make it once and clone it into the `HttpServer`
    /// factory. The access gate sees the TCP peer (`HttpRequest::peer_addr`),
    /// never `X-Forwarded-For`.
    pub fn config(self) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + Sync + 'static {
        let shared = Arc::new(self.surface);
        move |cfg: &mut web::ServiceConfig| {
            let s = shared.clone();
            cfg.route(
                PREFIX,
                web::get().to(move |req: HttpRequest| {
                    let s = s.clone();
                    async move {
                        gated(&s, &req).unwrap_or_else(|| {
                            HttpResponse::PermanentRedirect()
                                .insert_header((header::LOCATION, "/__nexus/"))
                                .finish()
                        })
                    }
                }),
            );
            let s = shared.clone();
            cfg.route(
                &format!("{PREFIX}/"),
                web::get().to(move |req: HttpRequest| {
                    let s = s.clone();
                    async move { gated(&s, &req).unwrap_or_else(page) }
                }),
            );
            let s = shared.clone();
            cfg.route(
                &format!("{PREFIX}/events"),
                web::get().to(move |req: HttpRequest, payload: web::Payload| {
                    let s = s.clone();
                    async move {
                        match gated(&s, &req) {
                            Some(refused) => refused,
                            None => events(&s, &req, payload),
                        }
                    }
                }),
            );
            let s = shared.clone();
            cfg.route(
                &format!("{PREFIX}/traces/{{trace_id}}"),
                web::get().to(move |req: HttpRequest, id: web::Path<String>| {
                    let s = s.clone();
                    async move { gated(&s, &req).unwrap_or_else(|| trace(&s, &id)) }
                }),
            );
            let s = shared.clone();
            cfg.route(
                &format!("{PREFIX}/stats"),
                web::get().to(move |req: HttpRequest| {
                    let s = s.clone();
                    async move { gated(&s, &req).unwrap_or_else(|| stats(&s)) }
                }),
            );
        }
    }
}

fn refusal(r: Refusal) -> HttpResponse {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut res = HttpResponse::build(status);
    for header in r.headers {
        res.insert_header(header);
    }
    res.content_type("text/plain; charset=utf-8")
        .body(r.message)
}

fn raw(req: &HttpRequest, name: header::HeaderName) -> Option<&[u8]> {
    req.headers().get(name).map(HeaderValue::as_bytes)
}

/// The access gate: `None` to serve the request, else the refusal.
fn gated(surface: &NexusEndpoints, req: &HttpRequest) -> Option<HttpResponse> {
    surface
        .gate(
            req.peer_addr(),
            raw(req, header::AUTHORIZATION),
            req.uri().query(),
        )
        .map(refusal)
}

fn page() -> HttpResponse {
    let mut res = HttpResponse::Ok();
    for (name, value) in dashboard::HEADERS {
        res.insert_header((name, value));
    }
    res.body(dashboard::HTML)
}

fn trace(surface: &NexusEndpoints, trace_id: &str) -> HttpResponse {
    match surface.trace(trace_id) {
        Ok(json) => HttpResponse::Ok()
            .content_type("application/json")
            .body(json),
        Err(r) => refusal(r),
    }
}

fn stats(surface: &NexusEndpoints) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(surface.stats())
}

fn events(surface: &NexusEndpoints, req: &HttpRequest, payload: web::Payload) -> HttpResponse {
    let admitted = surface.events(EventsRequest {
        last_event_id: raw(req, header::HeaderName::from_static("last-event-id")),
        query: req.uri().query(),
        upgrade: raw(req, header::UPGRADE),
        origin: raw(req, header::ORIGIN),
        host: raw(req, header::HOST),
    });
    let admitted = match admitted {
        Ok(a) => a,
        Err(r) => return refusal(r),
    };
    if admitted.format == Format::WebSocket {
        return match actix_ws::handle(req, payload) {
            Ok((response, session, incoming)) => {
                let session =
                    admitted.into_session(TokioTimer, WsSink::new(session), WsIncoming(incoming));
                actix_web::rt::spawn(session);
                response
            }
            Err(e) => e.as_response_error().error_response(),
        };
    }
    let (session, body) = admitted.into_sse(TokioTimer);
    actix_web::rt::spawn(session);
    let mut res = HttpResponse::Ok();
    res.content_type(sse::CONTENT_TYPE);
    for (name, value) in sse::HEADERS {
        res.insert_header((name, value));
    }
    res.streaming(body.map(|chunk| Ok::<_, Infallible>(Bytes::from(chunk))))
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

/// tokio's clock (actix-web runs on tokio) for the core's stream sessions.
#[derive(Debug, Clone, Copy)]
struct TokioTimer;

impl Timer for TokioTimer {
    type Sleep = tokio::time::Sleep;

    fn sleep(&self, after: Duration) -> tokio::time::Sleep {
        tokio::time::sleep(after)
    }

    fn reset(&self, sleep: Pin<&mut tokio::time::Sleep>, after: Duration) {
        sleep.reset(tokio::time::Instant::now() + after);
    }
}
