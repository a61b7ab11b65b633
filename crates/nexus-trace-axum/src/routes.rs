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
use nexus_trace_core::web::gate::Access;
use nexus_trace_core::web::stream::{EventStream, Format, Frame};
use nexus_trace_core::web::surface::{EventsRequest, Refusal, Surface};
use nexus_trace_core::web::{dashboard, sse, PREFIX};
use nexus_trace_core::Bus;

/// The `/__nexus` routes: the live event stream, traces by id, counters and
/// the dashboard, behind an access gate that must be chosen explicitly.
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
/// Every decision is made by the framework-free [`Surface`] of the core, so
/// the actix-web adapter answers exactly alike.
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

    /// The router to merge into your app. Serve the app with
    /// `into_make_service_with_connect_info::<SocketAddr>()` when using
    /// [`Access::loopback`], so the peer address is known (without it every
    /// request is refused with 403).
    pub fn into_router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let surface = Arc::new(self.surface);
        Router::new()
            .route(PREFIX, get(|| async { Redirect::permanent("/__nexus/") }))
            .route(&format!("{PREFIX}/"), get(page))
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

async fn gate(State(surface): State<Arc<Surface>>, req: Request, next: Next) -> Response {
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

async fn page() -> Response {
    let mut res = dashboard::HTML.into_response();
    for (name, value) in dashboard::HEADERS {
        res.headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    res
}

async fn trace(State(surface): State<Arc<Surface>>, Path(trace_id): Path<String>) -> Response {
    match surface.trace(&trace_id) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(r) => refusal(r),
    }
}

async fn stats(State(surface): State<Arc<Surface>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        surface.stats(),
    )
        .into_response()
}

async fn events(State(surface): State<Arc<Surface>>, req: Request) -> Response {
    let h = req.headers();
    let admitted = surface.events(EventsRequest {
        last_event_id: header(h, header::HeaderName::from_static("last-event-id")),
        query: req.uri().query(),
        upgrade: header(h, header::UPGRADE),
        origin: header(h, header::ORIGIN),
        host: header(h, header::HOST),
    });
    let admitted = match admitted {
        Ok(a) => a,
        Err(r) => return refusal(r),
    };
    let ticks = Ticks::new(surface.keep_alive_period());
    if admitted.format == Format::WebSocket {
        let (mut parts, _) = req.into_parts();
        return match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(upgrade) => {
                let stream = admitted.into_stream(ticks);
                upgrade.on_upgrade(move |socket| serve_websocket(socket, stream))
            }
            Err(rejection) => rejection.into_response(),
        };
    }
    let stream = admitted.into_stream(ticks).map(|frame| {
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
