use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, Request, State};
use axum::middleware::{self, Next};
#[cfg(feature = "dashboard")]
use axum::response::Redirect;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::StreamExt;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use nexus_trace_core::Bus;
#[cfg(feature = "dashboard")]
use nexus_trace_http::serve::dashboard;
use nexus_trace_http::serve::gate::Access;
use nexus_trace_http::serve::shutdown::Shutdown;
use nexus_trace_http::serve::sse;
use nexus_trace_http::serve::surface::{EventsRequest, NexusEndpoints, Refusal};
use nexus_trace_http::serve::timer::Timer;
use nexus_trace_http::PREFIX;

/// The `/__nexus` routes: the live event stream, traces by id, counters and
/// the dashboard, behind an access gate that must be chosen explicitly.
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
/// * An SSE client that went away is noticed when the server notices, at the
///   latest when the next keep-alive fails to write.
/// * On graceful shutdown, through [`shutdown_handle`](Self::shutdown_handle):
///   WebSocket streams get Close 1001 ("going away"), SSE streams a final
///   `event: shutdown` frame (`{"kind":"shutdown","next":<id>}`, no `id:`
///   line, so `Last-Event-ID` resumes exactly) and the end of the body; new
///   stream requests get 503. Without it, `with_graceful_shutdown` would
///   wait for open SSE streams forever.
///
/// ```no_run
/// use axum::Router;
/// use nexus_trace_axum::{Access, NexusRoutes};
/// use nexus_trace_axum::Bus;
///
/// # async fn run() -> std::io::Result<()> {
/// let bus = Bus::new(4096);
/// let routes = NexusRoutes::new(bus, Access::loopback());
/// let stop = routes.shutdown_handle();
/// let app: Router = routes.into_router();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
///     .with_graceful_shutdown(stop.after(async {
///         tokio::signal::ctrl_c().await.ok();
///     }))
///     .await
/// # }
/// ```
///
/// Every decision is made by the framework-free [`NexusEndpoints`] of the core, and
/// every stream's life by its session there, so the actix-web adapter
/// answers exactly alike.
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
    /// `handle.after(signal)` to `with_graceful_shutdown` (see above), or call
    /// [`Shutdown::trigger`] and await [`Shutdown::closed`] yourself. Clones
    /// of these routes share it.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.surface.shutdown_handle()
    }

    /// Also accept WebSocket connections from this `Origin` (by default only
    /// same-origin pages and non-browser clients are accepted).
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.surface = self.surface.allow_origin(origin);
        self
    }

    /// The router to merge into your app. Serve the app with
    /// `into_make_service_with_connect_info::<SocketAddr>()` when using
    /// [`Access::loopback`], so the peer address is known (without it every
    /// request is refused with 403).
    pub fn into_router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let surface = Arc::new(self.surface);
        let router = Router::new();
        #[cfg(feature = "dashboard")]
        let router = router
            .route(PREFIX, get(|| async { Redirect::permanent("/__nexus/") }))
            .route(&format!("{PREFIX}/"), get(page));
        router
            .route(&format!("{PREFIX}/events"), get(events))
            .route(&format!("{PREFIX}/traces/{{trace_id}}"), get(trace))
            .route(&format!("{PREFIX}/stats"), get(stats))
            .route_layer(middleware::from_fn_with_state(surface.clone(), gate))
            .with_state(surface)
    }
}

fn refusal(r: Refusal) -> Response {
    let mut res = (
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST),
        r.message,
    )
        .into_response();
    for (name, value) in r.headers {
        res.headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    res
}

fn header(headers: &HeaderMap, name: header::HeaderName) -> Option<&[u8]> {
    headers.get(name).map(HeaderValue::as_bytes)
}

async fn gate(State(surface): State<Arc<NexusEndpoints>>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let authorization = header(req.headers(), header::AUTHORIZATION);
    match surface.gate(peer, authorization, req.uri().query()) {
        None => next.run(req).await,
        Some(r) => refusal(r),
    }
}

#[cfg(feature = "dashboard")]
async fn page() -> Response {
    let mut res = dashboard::HTML.into_response();
    for (name, value) in dashboard::HEADERS {
        res.headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    res
}

async fn trace(
    State(surface): State<Arc<NexusEndpoints>>,
    Path(trace_id): Path<String>,
) -> Response {
    match surface.trace(&trace_id) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(r) => refusal(r),
    }
}

async fn stats(State(surface): State<Arc<NexusEndpoints>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        surface.stats(),
    )
        .into_response()
}

async fn events(State(surface): State<Arc<NexusEndpoints>>, req: Request) -> Response {
    let h = req.headers();
    let admitted = surface.events(EventsRequest {
        last_event_id: header(h, header::HeaderName::from_static("last-event-id")),
        query: req.uri().query(),
        // Without the `websocket` feature an upgrade request is served SSE.
        upgrade: if cfg!(feature = "websocket") {
            header(h, header::UPGRADE)
        } else {
            None
        },
        origin: header(h, header::ORIGIN),
        host: header(h, header::HOST),
    });
    let admitted = match admitted {
        Ok(a) => a,
        Err(r) => return refusal(r),
    };
    #[cfg(feature = "websocket")]
    if admitted.format == nexus_trace_http::serve::stream::Format::WebSocket {
        return crate::websocket::upgrade(admitted, req).await;
    }
    let (session, body) = admitted.into_sse(TokioTimer);
    tokio::spawn(session);
    let body = body.map(|chunk| Ok::<_, Infallible>(Bytes::from(chunk)));
    let mut res = Response::new(Body::from_stream(body));
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(sse::CONTENT_TYPE),
    );
    for (name, value) in sse::HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    res
}

/// tokio's clock for the core's stream sessions.
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
