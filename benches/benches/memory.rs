//! Heap bytes per retained event, measured with a counting allocator: fill
//! each structure past its capacity (4096) with 4 subscribers attached, and
//! divide what it holds by the events it retains. The peers hold the same
//! payload; the last two rows are nexus retaining what the adapters
//! publish: `request.start` / `request.end` pairs, with a path that fits in
//! an event's inline text and with one that needs a (shared) heap text.
//!
//! `cargo bench -p nexus-trace-benches --bench memory`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use nexus_trace_benches::{payload, ArcSwapRing, GoBus};
use nexus_trace_core::Bus;
use nexus_trace_http::record::request::{Outcome, RequestInfo, RequestRecording, TraceConfig};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CAPACITY: usize = 4096;

fn measure(name: &str, f: impl FnOnce() -> Box<dyn std::any::Any>) {
    let before = LIVE.load(Ordering::Relaxed);
    let held = f();
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "memory/{name}: {bytes} bytes for {CAPACITY} retained events = {:.0} bytes/event",
        bytes as f64 / CAPACITY as f64
    );
    drop(held);
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "size_of::<Event>() = {} bytes",
        std::mem::size_of::<nexus_trace_core::Event>()
    );
    measure("nexus", || {
        let bus = Bus::new(CAPACITY);
        let subs: Vec<_> = (0..4).map(|_| bus.subscribe(0)).collect();
        for _ in 0..2 * CAPACITY {
            bus.publish(payload());
        }
        Box::new((bus, subs))
    });
    for (name, path) in [
        ("nexus, request.start/end pairs, 8-byte path", "/hello/x"),
        (
            "nexus, request.start/end pairs, 27-byte path",
            "/api/users/12345/orders/678",
        ),
    ] {
        measure(name, || {
            let bus = Bus::new(CAPACITY);
            let subs: Vec<_> = (0..4).map(|_| bus.subscribe(0)).collect();
            let config = TraceConfig {
                service: "shop".into(),
                ..TraceConfig::default()
            };
            let info = RequestInfo {
                method: "GET",
                path,
                query: None,
                route: Some("/api/users/{id}/orders/{order}"),
                traceparent: None,
                tracestate: None,
            };
            for _ in 0..CAPACITY {
                let mut request = RequestRecording::start(&bus, &config, info);
                request.set_status(200);
                request.finish(Outcome::Completed { status: 200 });
            }
            Box::new((bus, subs, config))
        });
    }
    measure("tokio-broadcast", || {
        let (tx, rx) = tokio::sync::broadcast::channel(CAPACITY);
        let subs: Vec<_> = (0..4).map(|_| tx.subscribe()).collect();
        for _ in 0..2 * CAPACITY {
            let _ = tx.send(Arc::new(payload()));
        }
        Box::new((tx, rx, subs))
    });
    measure("go-port (4 subscribers, 64-slot channels)", || {
        let go = GoBus::new(CAPACITY);
        let subs: Vec<_> = (0..4).map(|_| go.subscribe(0, 64)).collect();
        for _ in 0..2 * CAPACITY {
            go.publish(payload());
        }
        Box::new((go, subs))
    });
    measure("arc-swap-ring", || {
        let ring = ArcSwapRing::new(CAPACITY);
        for _ in 0..2 * CAPACITY {
            ring.publish(payload());
        }
        Box::new(ring)
    });
}
