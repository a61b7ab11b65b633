//! Hello-world axum server for the HTTP overhead runs (`benches/http.sh`).
//! `hello_axum <port> bare|nexus|tower-http`; port 0 lets the system pick one.
//! Prints `listening on <addr>` once it accepts connections.
use axum::{routing::get, Router};
use nexus_trace_axum::NexusTraceLayer;
use nexus_trace_core::Bus;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).expect("port");
    let mode = args.next().unwrap_or_else(|| "bare".into());
    let app = Router::new().route("/hello/{name}", get(|| async { "hello" }));
    let app = match mode.as_str() {
        "bare" => app,
        "nexus" => app.layer(NexusTraceLayer::new(Bus::new(4096)).service("hello")),
        "tower-http" => {
            tracing_subscriber::fmt()
                .with_writer(std::io::sink)
                .with_max_level(tracing::Level::DEBUG)
                .init();
            app.layer(tower_http::trace::TraceLayer::new_for_http())
        }
        other => panic!("unknown mode {other}"),
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    println!("listening on {}", listener.local_addr().expect("bound"));
    axum::serve(listener, app).await.expect("serve");
}
