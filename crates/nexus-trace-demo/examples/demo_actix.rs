//! The nexus-trace demo on actix-web: the same shop, routes and flags as the
//! axum demo, with the actix adapter.
//!
//! ```text
//! cargo run --release --example demo-actix [-- --addr 127.0.0.1:8080] [--no-traffic] [--otlp]
//! ```

use std::net::SocketAddr;

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer, ResponseError};
use nexus_trace_actix::{NexusRoutes, NexusTrace, RequestTrace};
use nexus_trace_core::Bus;
use nexus_trace_demo::{self as demo, Args, NewOrder, Shop, ShopError};
use serde_json::Value;

#[derive(Debug)]
struct Error(ShopError);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.status_and_body().1["error"])
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status_and_body().0)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(self.0.status_and_body().1)
    }
}

async fn user(shop: web::Data<Shop>, id: web::Path<i64>) -> Result<web::Json<Value>, Error> {
    shop.user(id.into_inner())
        .await
        .map(web::Json)
        .map_err(Error)
}

async fn order(
    shop: web::Data<Shop>,
    RequestTrace(trace): RequestTrace,
    order: web::Json<NewOrder>,
) -> Result<HttpResponse, Error> {
    let body = shop
        .order(&trace, order.into_inner())
        .await
        .map_err(Error)?;
    Ok(HttpResponse::Created().json(body))
}

async fn fail(shop: web::Data<Shop>) -> Result<HttpResponse, Error> {
    Err(Error(shop.fail().await))
}

async fn panic() -> &'static str {
    demo::panic_on_purpose()
}

async fn charge(body: web::Json<Value>) -> HttpResponse {
    let (status, body) = demo::charge(&body).await;
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK)).json(body)
}

fn exit(message: String) -> ! {
    eprintln!("demo: {message}");
    std::process::exit(1);
}

#[actix_web::main]
async fn main() {
    let args = Args::from_env().unwrap_or_else(|e| demo::exit_usage(&e));
    let (access, token) = demo::access_from_env().unwrap_or_else(|e| demo::exit_usage(&e));
    let bus = Bus::new(args.capacity);
    demo::quiet_intentional_panics();
    if let Err(e) = demo::install_tracing(&bus) {
        eprintln!("demo: {e}");
    }
    let otlp = args.otlp.then(|| {
        demo::start_otlp(&bus).unwrap_or_else(|e| demo::exit_usage(&format!("--otlp: {e}")))
    });

    // The payments service, on its own loopback port, traced into the same bus.
    let payments_bus = bus.clone();
    let payments = HttpServer::new(move || {
        App::new()
            .route("/charge", web::post().to(charge))
            .wrap(NexusTrace::new(payments_bus.clone()).service("payments"))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap_or_else(|e| exit(format!("cannot bind the payments service: {e}")));
    let payments_addr = payments.addrs()[0];
    actix_web::rt::spawn(payments.run());

    let shop = Shop::open(format!("http://{payments_addr}/charge"))
        .unwrap_or_else(|e| exit(format!("cannot create the SQLite database: {e}")));
    let shop = web::Data::new(shop);
    // One gate and one stream cap for all workers: build the config once.
    let routes = NexusRoutes::new(bus.clone(), access);
    // Ends live event streams (Close 1001 / a final SSE frame) on Ctrl-C or SIGTERM.
    let stop = routes.shutdown_handle();
    let nexus = routes.config();
    let server = HttpServer::new(move || {
        App::new().configure(nexus.clone()).service(
            web::scope("")
                .app_data(shop.clone())
                .route("/users/{id}", web::get().to(user))
                .route("/orders", web::post().to(order))
                .route("/fail", web::get().to(fail))
                .route("/panic", web::get().to(panic))
                .wrap(NexusTrace::new(bus.clone()).service("shop")),
        )
    })
    // Notice clients that go away at once (see the nexus-trace-actix docs).
    .h1_allow_half_closed(false)
    // Answer a WebSocket Close without waiting on Nagle's algorithm.
    .tcp_nodelay(true)
    .shutdown_signal(stop.after(demo::stop_signal()))
    .bind(args.addr)
    .unwrap_or_else(|e| {
        exit(format!(
            "cannot listen on {}: {e} (try --addr 127.0.0.1:0)",
            args.addr
        ))
    });
    let addr: SocketAddr = server.addrs()[0];
    demo::banner(
        "actix-web",
        addr,
        token.as_deref(),
        args.traffic,
        otlp.as_ref().map(|o| o.traces_url()),
    );
    if args.traffic {
        actix_web::rt::spawn(demo::traffic(format!("http://{addr}")));
    }
    let served = server.run().await;
    if let Some(otlp) = otlp {
        demo::stop_otlp(otlp).await;
    }
    if let Err(e) = served {
        exit(format!("server error: {e}"));
    }
}
