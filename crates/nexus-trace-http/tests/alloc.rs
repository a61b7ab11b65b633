//! Heap allocations of recording a request, counted by a global allocator (per
//! thread, so tests running in parallel do not disturb each other).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use nexus_trace_core::{Bus, Text};
use nexus_trace_http::record::request::{Outcome, RequestInfo, RequestRecording, TraceConfig};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the thread-local may be gone while the thread exits.
    let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: forwards every call to the system allocator unchanged; it only
// counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller upholds `alloc`'s contract, which is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
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

/// Allocations made by `f` on this thread.
fn allocations<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = ALLOCS.with(Cell::get);
    let r = f();
    (ALLOCS.with(Cell::get) - before, r)
}

fn info(path: &str) -> RequestInfo<'_> {
    RequestInfo {
        tracestate: None,
        method: "GET",
        path,
        query: None,
        route: Some("/api/v1/accounts/{account}/orders/{order}"),
        traceparent: Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    }
}

#[test]
fn a_request_allocates_its_two_events_and_a_long_path() {
    let bus = Bus::new(64);
    let config = TraceConfig {
        service: Text::from_static("shop"),
        ..TraceConfig::default()
    };
    // The first request of a long route puts its template in the cache.
    drop(RequestRecording::start(&bus, &config, info("/")));
    for (path, expected) in [
        ("/api/v1/accounts/7/orders/9", 3), // longer than 16 bytes: shared
        ("/orders/9", 2),                   // inline
    ] {
        let (n, _) = allocations(|| {
            let mut trace = RequestRecording::start(&bus, &config, info(path));
            trace.set_status(200);
            trace.finish(Outcome::Completed { status: 200 });
            trace.trace_id_hex()
        });
        assert_eq!(n, expected, "{path}");
    }
    // Ends that are not a plain success add no text of their own.
    let (n, _) = allocations(|| {
        let mut trace = RequestRecording::start(&bus, &config, info("/orders/9"));
        trace.finish(Outcome::Completed { status: 503 });
    });
    assert_eq!(n, 2, "HTTP 503 is inline");
    let (n, _) = allocations(|| drop(RequestRecording::start(&bus, &config, info("/orders/9"))));
    assert_eq!(
        n, 3,
        "an aborted end: its events and the `aborted` attribute"
    );
}
