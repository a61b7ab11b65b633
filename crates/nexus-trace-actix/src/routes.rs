use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::StreamExt;
use nexus_trace_core::Bus;
#[cfg(feature = "dashboard")]
use nexus_trace_http::serve::dashboard;
use nexus_trace_http::serve::gate::Access;
use nexus_trace_http::serve::shutdown::Shutdown;
use nexus_trace_http::serve::sse;
use nexus_trace_http::serve::surface::{EventsRequest, NexusEndpoints, Refusal};
use nexus_trace_http::serve::timer::Timer;
use nexus_trace_http::PREFIX;

/// The `/__nexus` routes: the live event stream, traces by id, and the
/// dashboard, behind an access gate that must be chosen explicitly.
///
/// * `GET /__nexus/events`: WebSocket when the request asks to upgrade
///   (`?since=N`, one JSON event per text message; feature `websocket`),
///   otherwise Server-Sent Events (`id:` = event id; `Last-Event-ID` beats
///   `?since=`). Without
///   either, the retained backlog is replayed first. Lag is reported as a
///   `lagged` frame. Past [`max_streams`](Self::max_streams) clients: 429.
/// * `GET /__nexus/traces/{trace_id}`: the retained events of one trace.
/// * `GET /__nexus/stats`: the bus's counters and the stream cap's,
///   including `streams.ended.{client_close, disconnected, write_timeout,
///   shutdown, source_closed}`.
/// * `GET /__nexus/`: the dashboard (feature `dashboard`).
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
            #[cfg(feature = "dashboard")]
            dashboard_routes(cfg, &shared);
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

/// `GET /__nexus` (a redirect) and `GET /__nexus/` (the page).
#[cfg(feature = "dashboard")]
fn dashboard_routes(cfg: &mut web::ServiceConfig, shared: &Arc<NexusEndpoints>) {
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

#[cfg(feature = "dashboard")]
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
        // Without the `websocket` feature an upgrade request is served SSE.
        upgrade: if cfg!(feature = "websocket") {
            raw(req, header::UPGRADE)
        } else {
            None
        },
        origin: raw(req, header::ORIGIN),
        host: raw(req, header::HOST),
    });
    let admitted = match admitted {
        Ok(a) => a,
        Err(r) => return refusal(r),
    };
    #[cfg(feature = "websocket")]
    if admitted.format == nexus_trace_http::serve::stream::Format::WebSocket {
        return crate::websocket::upgrade(admitted, req, payload);
    }
    #[cfg(not(feature = "websocket"))]
    drop(payload);
    let (session, body) = admitted.into_sse(TokioTimer);
    actix_web::rt::spawn(session);
    let mut res = HttpResponse::Ok();
    res.content_type(sse::CONTENT_TYPE);
    for (name, value) in sse::HEADERS {
        res.insert_header((name, value));
    }
    res.streaming(body.map(|chunk| Ok::<_, Infallible>(Bytes::from(chunk))))
}

/// tokio's clock (actix-web runs on tokio) for the core's stream sessions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokioTimer;

impl Timer for TokioTimer {
    type Sleep = tokio::time::Sleep;

    fn sleep(&self, after: Duration) -> tokio::time::Sleep {
        tokio::time::sleep(after)
    }

    fn reset(&self, sleep: Pin<&mut tokio::time::Sleep>, after: Duration) {
        sleep.reset(tokio::time::Instant::now() + after);
    }
}
