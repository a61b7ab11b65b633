//! Hello-world actix-web server for the HTTP overhead runs (`benches/http.sh`).
//! `hello_actix <port> bare|nexus|logger`; port 0 lets the system pick one.
//! Prints `listening on <addr>` once it accepts connections.
use actix_web::middleware::{Condition, Logger};
use actix_web::{web, App, HttpServer};
use nexus_trace_actix::NexusTrace;
use nexus_trace_core::Bus;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).expect("port");
    let mode = args.next().unwrap_or_else(|| "bare".into());
    if mode == "logger" {
        // The usual setup: env_logger-style output, here into a sink.
        log::set_max_level(log::LevelFilter::Info);
        log::set_logger(&SINK).expect("logger");
    }
    let bus = Bus::new(4096);
    let (nexus, logger) = (mode == "nexus", mode == "logger");
    let server = HttpServer::new(move || {
        App::new()
            .route("/hello/{name}", web::get().to(|| async { "hello" }))
            .wrap(Condition::new(
                nexus,
                NexusTrace::new(bus.clone()).service("hello"),
            ))
            .wrap(Condition::new(logger, Logger::default()))
    })
    .workers(std::thread::available_parallelism().map_or(1, |n| n.get()))
    .bind(("127.0.0.1", port))?;
    println!("listening on {}", server.addrs()[0]);
    server.run().await
}

static SINK: Sink = Sink;

/// A logger that formats each record (as a real one would) and discards it.
struct Sink;

impl log::Log for Sink {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        use std::io::Write;
        let _ = writeln!(std::io::sink(), "{} {}", record.level(), record.args());
    }
    fn flush(&self) {}
}
