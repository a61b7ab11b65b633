//! The shared conformance suite against the actix-web adapter.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use actix_web::body::BoxBody;
use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError};
use nexus_trace_actix::{Access, NexusRoutes, NexusTrace, RequestTrace, Shutdown};
use nexus_trace_conformance::{conformance_tests, Harness, Opts, Server, Stop};
use nexus_trace_core::{context, Bus};

struct Actix;

fn chunks(n: usize, every: Duration) -> HttpResponse {
    let stream = futures_util::stream::unfold(0, move |i| async move {
        if i == n {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(every).await;
        }
        Some((
            Ok::<_, std::io::Error>(Bytes::from(format!("chunk {i}\n"))),
            i + 1,
        ))
    });
    HttpResponse::Ok().streaming(stream)
}

fn deep_repository_call() {
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(2));
    context::record("db.deep", start, None).expect("inside a request");
}

#[derive(Debug)]
struct AppError(&'static str);

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl ResponseError for AppError {
    fn error_response(&self) -> HttpResponse<BoxBody> {
        HttpResponse::InternalServerError().body(self.0)
    }
}

fn traced_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ok", web::get().to(|| async { "ok" }))
        .route(
            "/status/{code}",
            web::get().to(|code: web::Path<String>| async move {
                let status = code
                    .parse()
                    .ok()
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .unwrap_or(StatusCode::BAD_REQUEST);
                HttpResponse::build(status).finish()
            }),
        )
        .route(
            "/error",
            web::get().to(|| async { Err::<HttpResponse, _>(AppError("database unavailable")) }),
        )
        .route(
            "/panic",
            web::get().to(|| async {
                if std::hint::black_box(true) {
                    panic!("handler panicked on purpose");
                }
                "unreachable"
            }),
        )
        .route(
            "/stream",
            web::get().to(|| async { chunks(3, Duration::from_millis(50)) }),
        )
        .route(
            "/slow",
            web::get().to(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "slow"
            }),
        )
        .route(
            "/slow-body",
            web::get().to(|| async { chunks(50, Duration::from_millis(100)) }),
        )
        .route(
            "/deep",
            web::get().to(|| async {
                deep_repository_call();
                "deep"
            }),
        )
        .route(
            "/spawned",
            web::get().to(|| async {
                tokio::spawn(context::propagate(async {
                    let start = Instant::now();
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    context::record("spawned.call", start, None);
                }))
                .await
                .unwrap();
                "spawned"
            }),
        )
        .route(
            "/extract",
            web::get()
                .to(|RequestTrace(ctx): RequestTrace| async move { ctx.trace_id().to_string() }),
        )
        .route(
            "/orders",
            web::get().to(|req: HttpRequest| async move {
                let host = req.connection_info().host().to_owned();
                nexus_trace_conformance::tree::orders(&host).await
            }),
        );
}

/// A second service with its own middleware, on the same bus.
fn payments_routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/charge",
        web::get().to(|req: HttpRequest| async move {
            let header = |name: &str| req.headers().get(name).and_then(|h| h.to_str().ok());
            nexus_trace_conformance::tree::charge(header("traceparent"), header("tracestate")).await
        }),
    );
}

type Started = (u16, ServerHandle, Option<Shutdown>);

fn serve(bus: Bus, opts: Opts, stop: Stop, port_tx: tokio::sync::oneshot::Sender<Started>) {
    let routes = opts.mount.then(|| {
        let access = match (&opts.access, &opts.token) {
            (Some(access), _) => access.clone(),
            (None, Some(t)) => Access::bearer(t).unwrap(),
            (None, None) => Access::loopback(),
        };
        NexusRoutes::new(bus.clone(), access)
            .max_streams(opts.max_streams)
            .keep_alive(opts.keep_alive)
            .write_timeout(opts.write_timeout)
    });
    let shutdown = routes.as_ref().map(NexusRoutes::shutdown_handle);
    // The wiring the docs give: the routes' goodbyes, then actix-web's own
    // graceful stop.
    let signal: Pin<Box<dyn Future<Output = ()> + Send>> = match &shutdown {
        Some(s) => Box::pin(s.after(stop.signal())),
        None => Box::pin(stop.signal()),
    };
    let nexus = routes.map(NexusRoutes::config);
    actix_rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            let mut app = App::new()
                .route(
                    "/no-layer",
                    web::get().to(|RequestTrace(ctx): RequestTrace| async move {
                        ctx.trace_id().to_string()
                    }),
                )
                .route(
                    "/no-layer-optional",
                    web::get().to(|t: Option<RequestTrace>| async move {
                        if t.is_some() {
                            "some"
                        } else {
                            "none"
                        }
                    }),
                );
            if let Some(nexus) = &nexus {
                app = app.configure(nexus.clone());
            }
            app.service(
                web::scope("/payments")
                    .wrap(NexusTrace::new(bus.clone()).service("payments"))
                    .configure(payments_routes),
            )
            .service(
                web::scope("")
                    .wrap(NexusTrace::new(bus.clone()).service("conformance"))
                    .configure(traced_routes)
                    .default_service(web::to(HttpResponse::NotFound)),
            )
        })
        .workers(2)
        // Drop a request when its client goes away (hyper's default), so
        // that the handler future is dropped and the end marked aborted.
        .h1_allow_half_closed(false)
        .disable_signals()
        .shutdown_signal(signal)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        port_tx.send((port, server.handle(), shutdown)).ok();
        server.await.unwrap();
        stop.finished();
    });
}

impl Harness for Actix {
    async fn spawn(&self, opts: Opts) -> Server {
        let bus = Bus::new(opts.capacity);
        let token = opts.token.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let server_bus = bus.clone();
        let stop = Stop::default();
        let server_stop = stop.clone();
        // actix's HttpServer is not Send: it runs on its own thread and
        // actix System; the listener is bound before the port comes back.
        std::thread::spawn(move || serve(server_bus, opts, server_stop, tx));
        let (port, handle, shutdown) = rx.await.expect("actix server started");
        Server {
            port,
            bus,
            token,
            shutdown,
            stop,
            guard: Box::new(StopOnDrop(handle)),
        }
    }
}

struct StopOnDrop(ServerHandle);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        // The stop command is sent at once; its completion is not awaited.
        drop(self.0.stop(false));
    }
}

conformance_tests!(Actix);
