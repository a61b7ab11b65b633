use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::connect_info::ConnectInfo;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use nexus_trace_core::web::gate::{Access, AccessRequest, Decision};
use nexus_trace_core::web::limit::{StreamLimiter, StreamPermit};
use nexus_trace_core::web::stream::{EventStream, Format, Frame};
use nexus_trace_core::web::{
    dashboard, resume, sse, stats_json, trace_json, websocket_origin_allowed, PREFIX,
};
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
#[derive(Debug, Clone)]
pub struct NexusRoutes {
    bus: Bus,
    access: Access,
    max_streams: usize,
    keep_alive: Duration,
    allowed_origins: Vec<String>,
}

#[derive(Debug)]
struct Shared {
    bus: Bus,
    access: Access,
    limiter: Arc<StreamLimiter>,
    keep_alive: Duration,
    allowed_origins: Vec<String>,
}

impl NexusRoutes {
    /// Routes over `bus`, gated by `access` (e.g. [`Access::loopback`] or
    /// `Access::bearer(token)?`; an empty token is refused there).
    pub fn new(bus: Bus, access: Access) -> Self {
        NexusRoutes {
            bus,
            access,
            max_streams: 32,
            keep_alive: Duration::from_secs(15),
            allowed_origins: Vec::new(),
        }
    }

    /// Most concurrent event-stream clients (default 32); more get 429.
    pub fn max_streams(mut self, n: usize) -> Self {
        self.max_streams = n;
        self
    }

    /// Period of SSE keep-alive comments and WebSocket pings (default 15 s).
    pub fn keep_alive(mut self, period: Duration) -> Self {
        self.keep_alive = period.max(Duration::from_millis(10));
        self
    }

    /// Also accept WebSocket connections from this `Origin` (by default only
    /// same-origin pages and non-browser clients are accepted).
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.allowed_origins.push(origin.into());
        self
    }

    /// The router to merge into your app. Serve the app with
    /// `into_make_service_with_connect_info::<SocketAddr>()` when using
    /// [`Access::loopback`], so the peer address is known (without it every
    /// request is refused with 403).
    pub fn into_router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let shared = Arc::new(Shared {
            limiter: StreamLimiter::new(self.max_streams),
            bus: self.bus,
            access: self.access,
            keep_alive: self.keep_alive,
            allowed_origins: self.allowed_origins,
        });
        Router::new()
            .route(PREFIX, get(|| async { Redirect::permanent("/__nexus/") }))
            .route(&format!("{PREFIX}/"), get(page))
            .route(&format!("{PREFIX}/events"), get(events))
            .route(&format!("{PREFIX}/traces/{{trace_id}}"), get(trace))
            .route(&format!("{PREFIX}/stats"), get(stats))
            .route_layer(middleware::from_fn_with_state(shared.clone(), gate))
            .with_state(shared)
    }
}

async fn gate(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let decision = shared.access.check(&AccessRequest {
        peer,
        authorization: req
            .headers()
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
        query: req.uri().query(),
    });
    match decision {
        Decision::Allow => next.run(req).await,
        Decision::Unauthorized => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"nexus\"")],
            "nexus: missing or invalid bearer token\n",
        )
            .into_response(),
        Decision::Forbidden => (
            StatusCode::FORBIDDEN,
            "nexus: this peer may not access /__nexus\n",
        )
            .into_response(),
    }
}

async fn page() -> Response {
    let mut res = dashboard::HTML.into_response();
    for (name, value) in dashboard::HEADERS {
        res.headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    res
}

async fn trace(State(shared): State<Arc<Shared>>, Path(trace_id): Path<String>) -> Response {
    match trace_json(&shared.bus, &trace_id) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(reason) => (StatusCode::BAD_REQUEST, reason).into_response(),
    }
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        stats_json(&shared.bus, &shared.limiter),
    )
        .into_response()
}

async fn events(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let since = match resume::resume_point(
        req.headers()
            .get("last-event-id")
            .map(HeaderValue::as_bytes),
        req.uri().query(),
    ) {
        Ok(since) => since.unwrap_or(0),
        Err(e) => return (StatusCode::BAD_REQUEST, format!("nexus: {e}\n")).into_response(),
    };
    let websocket = wants_websocket(req.headers());
    let origin = req.headers().get(header::ORIGIN).map(HeaderValue::as_bytes);
    let host = req.headers().get(header::HOST).map(HeaderValue::as_bytes);
    if websocket && !websocket_origin_allowed(origin, host, &shared.allowed_origins) {
        return (
            StatusCode::FORBIDDEN,
            "nexus: cross-origin WebSocket refused\n",
        )
            .into_response();
    }
    let Some(permit) = shared.limiter.try_acquire() else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "5")],
            "nexus: too many event-stream clients\n",
        )
            .into_response();
    };
    if websocket {
        let (mut parts, _) = req.into_parts();
        return match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(upgrade) => {
                let stream = event_stream(&shared, since, Format::WebSocket, permit);
                upgrade.on_upgrade(move |socket| serve_websocket(socket, stream))
            }
            Err(rejection) => rejection.into_response(),
        };
    }
    let stream = event_stream(&shared, since, Format::Sse, permit).map(|frame| {
        Ok::<_, Infallible>(match frame {
            Frame::Data(bytes) => Bytes::from(bytes),
            Frame::KeepAlive => Bytes::from_static(sse::KEEP_ALIVE),
        })
    });
    let mut res = Response::new(Body::from_stream(stream));
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

fn event_stream(
    shared: &Shared,
    since: u64,
    format: Format,
    permit: StreamPermit,
) -> EventStream<Ticks> {
    EventStream::new(
        shared.bus.subscribe(since),
        format,
        Ticks::new(shared.keep_alive),
        Some(permit),
    )
}

fn wants_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

async fn serve_websocket(socket: WebSocket, mut stream: EventStream<Ticks>) {
    let (mut tx, mut rx) = socket.split();
    loop {
        tokio::select! {
            frame = stream.next() => {
                let message = match frame {
                    Some(Frame::Data(bytes)) => match String::from_utf8(bytes) {
                        Ok(text) => Message::Text(text.into()),
                        Err(_) => continue,
                    },
                    Some(Frame::KeepAlive) => Message::Ping(Bytes::new()),
                    None => {
                        let _ = tx.send(Message::Close(None)).await;
                        return;
                    }
                };
                if tx.send(message).await.is_err() {
                    return;
                }
            }
            incoming = rx.next() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Keep-alive ticks from a tokio interval (the first one after one period).
#[derive(Debug)]
pub(crate) struct Ticks(tokio::time::Interval);

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
