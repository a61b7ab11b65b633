//! Heap allocations and bytes per request, in process (no sockets), counted
//! by a global allocator: a hello-world app on each adapter, bare, with a
//! pass-through middleware (what any middleware costs the framework), and
//! with the nexus middleware. Deterministic, unlike times on a shared
//! machine.
//!
//! Each app serves `GET /hello/x` (route `/hello/{name}`) with the response
//! body read to the end; the bus has no subscriber. After a warm-up, the
//! counters are read around `REQUESTS` requests and divided. An allocation
//! is a call to `alloc`, `alloc_zeroed` or `realloc`; bytes are the sizes
//! asked for (the new size for `realloc`). The axum router is given its
//! state first, as `axum::serve` does (otherwise axum rebuilds each layered
//! route per request).
//!
//! `cargo bench -p nexus-trace-benches --bench alloc`
//!
//! With `-- --check` it also fails (exit status 1) when a figure the README
//! states is exceeded: nexus's own allocations (3 on axum over the
//! pass-through layer: two events and the `x-trace-id` value; 5 on actix-web
//! over bare, 2 of them actix's `match_pattern()`), actix-web's bytes
//! (the goal of +700 B) and axum's bytes over the pass-through layer (the
//! 896 B measured when this check was written, with some headroom). CI runs
//! it; the counts are deterministic.

use std::alloc::{GlobalAlloc, Layout, System};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::{test, web, App};
use axum::body::Body;
use axum::body::Bytes;
use axum::routing::get;
use axum::Router;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use nexus_trace_actix::NexusTrace;
use nexus_trace_axum::NexusTraceLayer;
use nexus_trace_core::Bus;
use tower::util::MapResponseLayer;
use tower::ServiceExt;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

fn count(size: usize) {
    // Relaxed: plain counters, read by the same thread after the requests.
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    BYTES.fetch_add(size as u64, Ordering::Relaxed);
}

// SAFETY: forwards every call to the system allocator unchanged; it only
// counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller upholds `alloc`'s contract, which is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: `ptr` and `layout` come from this allocator, i.e. System.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` and `layout` come from this allocator, i.e. System.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const WARMUP: u64 = 2_000;
const REQUESTS: u64 = 10_000;

/// Allocations and bytes per request.
#[derive(Clone, Copy)]
struct PerRequest {
    allocs: f64,
    bytes: f64,
}

/// Runs `one` WARMUP times, then counts REQUESTS runs.
async fn measure<F: std::future::Future<Output = ()>>(mut one: impl FnMut() -> F) -> PerRequest {
    for _ in 0..WARMUP {
        one().await;
    }
    let (a0, b0) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    for _ in 0..REQUESTS {
        one().await;
    }
    let (a1, b1) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    PerRequest {
        allocs: (a1 - a0) as f64 / REQUESTS as f64,
        bytes: (b1 - b0) as f64 / REQUESTS as f64,
    }
}

/// The router as `axum::serve` runs it: `with_state` turns each handler
/// into its route once, not per request.
fn axum_router(layered: impl FnOnce(Router) -> Router) -> Router {
    layered(Router::new().route("/hello/{name}", get(|| async { "hello" }))).with_state(())
}

fn axum(app: Router) -> PerRequest {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(measure(|| {
        let app = app.clone();
        async move {
            let req = axum::http::Request::get("/hello/x")
                .body(Body::empty())
                .expect("request");
            let res = app.oneshot(req).await.expect("infallible");
            assert!(res.status().is_success());
            std::hint::black_box(res.into_body().collect().await.expect("body"));
        }
    }))
}

/// A body passed through unchanged (size hint included) in a wrapper of
/// its own type, as a middleware that watches the body (like nexus) does.
struct PassBody(Body);

impl http_body::Body for PassBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

fn pass_body(res: axum::response::Response) -> axum::http::Response<PassBody> {
    res.map(PassBody)
}

#[derive(Clone, Copy)]
enum Actix {
    Bare,
    PassThrough,
    Nexus,
}

fn actix(which: Actix) -> PerRequest {
    actix_web::rt::System::new().block_on(async move {
        let app = || App::new().route("/hello/{name}", web::get().to(|| async { "hello" }));
        match which {
            Actix::Bare => actix_requests(test::init_service(app()).await).await,
            Actix::PassThrough => {
                let pass = |req, srv: &_| Service::call(srv, req);
                actix_requests(test::init_service(app().wrap_fn(pass)).await).await
            }
            Actix::Nexus => {
                let nexus = NexusTrace::new(Bus::new(4096)).service("hello");
                actix_requests(test::init_service(app().wrap(nexus)).await).await
            }
        }
    })
}

async fn actix_requests<S, B>(app: S) -> PerRequest
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    measure(|| async {
        let req = test::TestRequest::get().uri("/hello/x").to_request();
        let res = test::call_service(&app, req).await;
        assert!(res.status().is_success());
        std::hint::black_box(test::read_body(res).await);
    })
    .await
}

/// What `--check` holds the measured rows to: (allocations, bytes) that
/// nexus may add per request over bare (`None`: not checked) and over the
/// pass-through middleware.
struct Bound {
    over_bare: Option<(f64, f64)>,
    over_pass: Option<(f64, f64)>,
}

fn main() {
    // `cargo bench` passes `--bench`; `--check` compares with the bounds.
    let nexus = || NexusTraceLayer::new(Bus::new(4096)).service("hello");
    let bounds = [
        Bound {
            over_bare: None,
            over_pass: Some((3.0, 960.0)),
        },
        Bound {
            over_bare: Some((5.0, 700.0)),
            over_pass: None,
        },
    ];
    let mut exceeded = Vec::new();
    let rows = [
        (
            "axum",
            axum(axum_router(|r| r)),
            axum(axum_router(|r| r.layer(MapResponseLayer::new(pass_body)))),
            axum(axum_router(|r| r.layer(nexus()))),
        ),
        (
            "actix-web",
            actix(Actix::Bare),
            actix(Actix::PassThrough),
            actix(Actix::Nexus),
        ),
    ];
    println!("| adapter | bare | + pass-through | + nexus | nexus adds to bare | nexus adds to pass-through |");
    println!("|---|---|---|---|---|---|");
    for ((name, bare, pass, nexus), bound) in rows.into_iter().zip(bounds) {
        for (base, limit, what) in [
            (bare, bound.over_bare, "bare"),
            (pass, bound.over_pass, "the pass-through layer"),
        ] {
            let Some((allocs, bytes)) = limit else {
                continue;
            };
            let (a, b) = (nexus.allocs - base.allocs, nexus.bytes - base.bytes);
            if a > allocs || b > bytes {
                exceeded.push(format!(
                    "{name}: nexus adds {a:+.1} allocations and {b:+.0} B per request over {what}; \
                     the bound is {allocs} and {bytes} B"
                ));
            }
        }
        let cell = |p: PerRequest| format!("{:.1} allocs, {:.0} B", p.allocs, p.bytes);
        let diff = |p: PerRequest, base: PerRequest| {
            format!(
                "{:+.1} allocs, {:+.0} B",
                p.allocs - base.allocs,
                p.bytes - base.bytes
            )
        };
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            cell(bare),
            cell(pass),
            cell(nexus),
            diff(nexus, bare),
            diff(nexus, pass),
        );
    }
    nexus_trace_benches::finish_check("alloc", &exceeded);
}
