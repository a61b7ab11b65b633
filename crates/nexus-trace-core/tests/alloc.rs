//! Heap allocations of the hot paths, counted by a global allocator (per
//! thread, so tests running in parallel do not disturb each other).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use nexus_trace_core::{Bus, Event, EventKind, SpanContext, Text, TraceContext};

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

#[test]
fn publishing_a_prepared_event_allocates_once() {
    let bus = Bus::new(8);
    let _sub = bus.subscribe(0);
    let ctx = TraceContext::new(bus.clone(), SpanContext::new("shop", "GET /orders/{id}"));
    for _ in 0..20 {
        // Past the ring's capacity too: an overwrite frees, never allocates.
        let event = ctx.event(EventKind::Log).attr("user", 7);
        let (n, _) = allocations(|| bus.publish(event));
        assert_eq!(n, 1, "the event's Arc only");
    }
    let (n, _) = allocations(|| ctx.event(EventKind::Downstream));
    assert_eq!(n, 0, "an event from a context copies no string");
    let (n, _) = allocations(|| ctx.record("db.orders.get", std::time::Instant::now(), None));
    assert_eq!(n, 1, "a downstream call with a static name: its Arc only");
    let (n, _) = allocations(|| ctx.log("a static message"));
    assert_eq!(n, 1);
}

#[test]
fn cloning_an_event_copies_no_string() {
    let mut event = Event::downstream("db.get", Duration::from_millis(1));
    event.message = Text::from("x".repeat(100));
    let (n, copy) = allocations(|| event.clone());
    assert_eq!((n, copy), (0, event));
}
