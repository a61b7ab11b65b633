use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use actix_ws::{Message, MessageStream, Session};
use futures_util::StreamExt;
use nexus_trace_core::web::gate::Access;
use nexus_trace_core::web::stream::{EventStream, Format, Frame};
use nexus_trace_core::web::surface::{EventsRequest, Refusal, Surface};
use nexus_trace_core::web::{dashboard, sse, PREFIX};
use nexus_trace_core::Bus;

/// The `/__nexus` routes: the live event stream, traces by id, and the
/// dashboard, behind an access gate that must be chosen explicitly.
///
/// * `GET /__nexus/events`: WebSocket when the request asks to upgrade
///   (`?since=N`, one JSON event per text message), otherwise Server-Sent
///   Events (`id:` = event id; `Last-Event-ID` beats `?since=`). Without
///   either, the retained backlog is replayed first. Lag is reported as a
///   `lagged` frame. Past [`max_streams`](Self::max_streams) clients: 429.
/// * `GET /__nexus/traces/{trace_id}`: the retained events of one trace.
/// * `GET /__nexus/stats`: the bus's counters and the stream cap's.
/// * `GET /__nexus/`: the dashboard.
///
/// Mount them with `App::configure(routes.config())`. `HttpServer` builds
/// one `App` per worker: make the configuration once, outside the app
/// factory, and clone it in, so that all workers share one stream cap:
///
/// ```no_run
/// use actix_web::{App, HttpServer};
/// use nexus_trace_actix::{Access, NexusRoutes, NexusTrace};
/// use nexus_trace_core::Bus;
///
/// # async fn run() -> std::io::Result<()> {
/// let bus = Bus::new(4096);
/// let nexus = NexusRoutes::new(bus.clone(), Access::loopback()).config();
/// HttpServer::new(move || {
///     App::new()
///         .wrap(NexusTrace::new(bus.clone()).service("users"))
///         .configure(nexus.clone())
/// })
/// .bind(("127.0.0.1", 8080))?
/// .run()
/// .await
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct NexusRoutes {
    surface: Surface,
}

impl NexusRoutes {
    /// Routes over `bus`, gated by `access` (e.g. [`Access::loopback`] or
    /// `Access::bearer(token)?`; an empty token is refused there).
    pub fn new(bus: Bus, access: Access) -> Self {
        NexusRoutes {
            surface: Surface::new(bus, access),
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
fn gated(surface: &Surface, req: &HttpRequest) -> Option<HttpResponse> {
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

fn trace(surface: &Surface, trace_id: &str) -> HttpResponse {
    match surface.trace(trace_id) {
        Ok(json) => HttpResponse::Ok()
            .content_type("application/json")
            .body(json),
        Err(r) => refusal(r),
    }
}

fn stats(surface: &Surface) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(surface.stats())
}

fn events(surface: &Surface, req: &HttpRequest, payload: web::Payload) -> HttpResponse {
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
    let ticks = Ticks::new(surface.keep_alive_period());
    if admitted.format == Format::WebSocket {
        return match actix_ws::handle(req, payload) {
            Ok((response, session, incoming)) => {
                let stream = admitted.into_stream(ticks);
                actix_web::rt::spawn(serve_websocket(session, incoming, stream));
                response
            }
            Err(e) => e.as_response_error().error_response(),
        };
    }
    let stream = admitted.into_stream(ticks).map(|frame| {
        Ok::<_, Infallible>(match frame {
            Frame::Data(bytes) => Bytes::from(bytes),
            Frame::KeepAlive => Bytes::from_static(sse::KEEP_ALIVE),
        })
    });
    let mut res = HttpResponse::Ok();
    res.content_type(sse::CONTENT_TYPE);
    for (name, value) in sse::HEADERS {
        res.insert_header((name, value));
    }
    res.streaming(stream)
}

async fn serve_websocket(
    mut session: Session,
    mut incoming: MessageStream,
    mut stream: EventStream<Ticks>,
) {
    loop {
        tokio::select! {
            frame = stream.next() => {
                let sent = match frame {
                    Some(Frame::Data(bytes)) => match String::from_utf8(bytes) {
                        Ok(text) => session.text(text).await,
                        Err(_) => continue,
                    },
                    Some(Frame::KeepAlive) => session.ping(b"").await,
                    None => {
                        let _ = session.close(None).await;
                        return;
                    }
                };
                if sent.is_err() {
                    return;
                }
            }
            message = incoming.recv() => match message {
                Some(Ok(Message::Close(reason))) => {
                    // Answer the close handshake, then stop.
                    let _ = session.close(reason).await;
                    return;
                }
                Some(Ok(Message::Ping(bytes))) => {
                    if session.pong(&bytes).await.is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
        }
    }
}

/// Keep-alive ticks from a tokio interval (the first one after one period).
#[derive(Debug)]
struct Ticks(tokio::time::Interval);

impl Ticks {
    fn new(period: Duration) -> Ticks {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ticks(interval)
    }
}

impl futures_util::Stream for Ticks {
    type Item = ();

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.0.poll_tick(cx).map(|_| Some(()))
    }
}
