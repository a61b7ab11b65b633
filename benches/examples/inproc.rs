use axum::{body::Body, routing::get, Router};
use http_body_util::BodyExt;
use nexus_trace_axum::NexusTraceLayer;
use nexus_trace_core::Bus;
use tower::ServiceExt;

async fn run(name: &str, app: Router) {
    let n = 200_000;
    let start = std::time::Instant::now();
    for _ in 0..n {
        let req = axum::http::Request::get("/hello/x").body(Body::empty()).unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let _ = res.into_body().collect().await.unwrap();
    }
    println!("{name}: {:?}/request", start.elapsed() / n);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let base = || Router::new().route("/hello/{name}", get(|| async { "hello" }));
    for _ in 0..2 {
        run("bare", base()).await;
        run("nexus", base().layer(NexusTraceLayer::new(Bus::new(4096)).service("hello"))).await;
    }
}
