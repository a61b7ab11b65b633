//! Middleware cost per request, in process (no sockets): an axum hello-world
//! router bare, with `NexusTraceLayer`, and with tower-http's `TraceLayer`
//! feeding a tracing-subscriber that formats into a sink. Complements the
//! wrk runs of `benches/http.sh`, whose loopback networking is noisier.
//!
//! `cargo bench -p nexus-trace-benches --bench middleware`

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http_body_util::BodyExt;
use nexus_trace_axum::NexusTraceLayer;
use nexus_trace_core::Bus;
use tower::ServiceExt;

const CAP: usize = 4096;

fn router() -> Router {
    Router::new().route("/hello/{name}", get(|| async { "hello" }))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_writer(std::io::sink)
            .with_max_level(tracing::Level::DEBUG)
            .finish(),
    );
    let mut g = c.benchmark_group("middleware-per-request");
    g.throughput(Throughput::Elements(1));
    let apps = [
        ("bare", router()),
        (
            "nexus",
            router().layer(NexusTraceLayer::new(Bus::new(CAP)).service("hello")),
        ),
        (
            "tower-http-trace",
            router().layer(tower_http::trace::TraceLayer::new_for_http()),
        ),
    ];
    for (name, app) in apps {
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let app = app.clone();
                async move {
                    let req = axum::http::Request::get("/hello/x")
                        .body(Body::empty())
                        .expect("request");
                    let res = app.oneshot(req).await.expect("infallible");
                    res.into_body().collect().await.expect("body")
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
