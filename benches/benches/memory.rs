//! Heap bytes per retained event, measured with a counting allocator: fill
//! each structure past its capacity (4096) with 4 subscribers attached, and
//! divide what it holds by the events it retains. The peers hold the same
//! payload; the last two rows are nexus retaining what the adapters
//! publish: `request.start` / `request.end` pairs, with a path that fits in
//! an event's inline text and with one that needs a (shared) heap text.
//!
//! `cargo bench -p nexus-trace-benches --bench memory`
//!
//! With `-- --check` it fails (exit status 1) if nexus retains more than
//! 256 B per event, on the bench payload or on request pairs with a short
//! path (the goal the README reports as met). CI runs it.

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

/// Measures and prints one structure; returns its bytes per retained event.
fn measure(name: &str, f: impl FnOnce() -> Box<dyn std::any::Any>) -> f64 {
    let before = LIVE.load(Ordering::Relaxed);
    let held = f();
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    let per_event = bytes as f64 / CAPACITY as f64;
    println!(
        "memory/{name}: {bytes} bytes for {CAPACITY} retained events = {per_event:.0} bytes/event"
    );
    drop(held);
    per_event
}

/// `--check`'s bound on nexus's bytes per retained event.
const GOAL: f64 = 256.0;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "size_of::<Event>() = {} bytes",
        std::mem::size_of::<nexus_trace_core::Event>()
    );
    let mut over = Vec::new();
    let nexus = measure("nexus", || {
        let bus = Bus::new(CAPACITY);
        let subs: Vec<_> = (0..4).map(|_| bus.subscribe(0)).collect();
        for _ in 0..2 * CAPACITY {
            bus.publish(payload());
        }
        Box::new((bus, subs))
    });
    if nexus > GOAL {
        over.push(format!("nexus: {nexus:.0} B per event, above {GOAL} B"));
    }
    for (name, path) in [
        ("nexus, request.start/end pairs, 8-byte path", "/hello/x"),
        (
            "nexus, request.start/end pairs, 27-byte path",
            "/api/users/12345/orders/678",
        ),
    ] {
        let per_event = measure(name, || {
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
        // A longer path is content (one heap text per request), not overhead.
        if path.len() <= nexus_trace_core::INLINE_CAPACITY && per_event > GOAL {
            over.push(format!(
                "{name}: {per_event:.0} B per event, above {GOAL} B"
            ));
        }
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
    nexus_trace_benches::finish_check("memory", &over);
}
