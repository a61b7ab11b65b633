//! Bounded memory: the live heap of a bus with stalled subscribers does not
//! grow with the number of events published.
//!
//! A counting global allocator (this file is its own test binary, with a
//! single test, so nothing else allocates while it measures) tracks the
//! bytes allocated and not yet freed. Publishing ten ring's worth of events
//! with four subscribers that never catch up must leave that figure where it
//! was once the ring had filled: at most `SLACK` bytes more, whatever the
//! number of events.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::Arc;

use nexus_trace_core::{Bus, Event, TryRecvError};

/// Bytes allocated and not freed, and allocations made, by the whole process.
static LIVE: AtomicIsize = AtomicIsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: every call is forwarded to `System` with the caller's arguments
// unchanged; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Relaxed: counters, read after the work they count on this thread.
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from this allocator, that is from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System`; the caller upholds the rest.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

const CAPACITY: usize = if cfg!(miri) { 64 } else { 1024 };
/// A 64-byte message, too long to be stored inline: built at run time, each
/// event's copy lives on the heap beyond the event's own `Arc`.
const MESSAGE: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// What the live heap may exceed its value after the first two ring's worth:
/// room for a few events in flight, nothing that scales with the count.
const SLACK: isize = 4096;

fn event() -> Event {
    Event::log(MESSAGE.to_owned())
}

#[test]
fn live_heap_is_flat_across_ten_capacities_with_stalled_subscribers() {
    let before_bus = live();
    let bus = Bus::new(CAPACITY);
    // Four subscribers that fall behind and stay behind: one that never
    // reads, one that never reads and joined at the head, one that keeps the
    // first event it got, and one that reads a single event now and then
    // (lagging in between).
    let never = bus.subscribe(0);
    let mut holding = bus.subscribe(0);
    let mut occasional = bus.subscribe(0);

    let mut held: Option<Arc<Event>> = None;
    let mut lagged = 0u64;
    let mut publish_ring = |bus: &Bus| {
        for _ in 0..CAPACITY {
            bus.publish(event());
        }
        match occasional.try_recv() {
            Ok(_) => {}
            Err(TryRecvError::Lagged(n)) => lagged += n,
            Err(e) => panic!("{e}"),
        }
    };

    // Fill the ring twice, so every slot holds an event and every kind of
    // subscriber has been lapped once.
    publish_ring(&bus);
    held.get_or_insert_with(|| holding.try_recv().expect("the first event"));
    let head = bus.subscribe_latest();
    publish_ring(&bus);
    let full = live();
    let allocations_full = ALLOCATIONS.load(Ordering::Relaxed);

    // Eight more ring's worth: the live heap is sampled after each.
    let mut peak = full;
    for _ in 2..10 {
        publish_ring(&bus);
        peak = peak.max(live());
    }
    let after = live();
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations_full;

    assert_eq!(bus.last_id(), 10 * CAPACITY as u64);
    assert!(lagged > 0, "the occasional reader was lapped");
    let bus_bytes = full - before_bus;
    eprintln!(
        "live heap: {bus_bytes} B for the bus, its full ring of {CAPACITY} and the \
         subscribers ({} B/event, size_of::<Event>() = {} B); then {} B more after \
         10 × capacity (peak {} B more); {allocations} allocations for the last {} events",
        bus_bytes / CAPACITY as isize,
        std::mem::size_of::<Event>(),
        after - full,
        peak - full,
        8 * CAPACITY,
    );
    // What a full ring costs, loosely: per event its `Arc` allocation (two
    // counts and the `Event`), its message (plus 32 B in case it is a shared
    // string with counts of its own) and 160 B for its slot (16 B, eight to a
    // 128-B group) with room to spare; plus 32 KiB for the bus and its
    // subscribers. This test is about the heap staying flat; the tight
    // figure (at most 256 B per retained event) is CI's memory bench check,
    // `cargo bench --bench memory -- --check`.
    let per_event_bound =
        2 * std::mem::size_of::<usize>() + std::mem::size_of::<Event>() + MESSAGE.len() + 32 + 160;
    let bound = (CAPACITY * per_event_bound + 32 * 1024) as isize;
    assert!(
        bus_bytes <= bound,
        "a full ring of {CAPACITY} costs {bus_bytes} B, more than the stated {bound} B"
    );
    assert!(
        peak - full <= SLACK,
        "the live heap grew by {} B while publishing 8 × {CAPACITY} more events \
         (bound: {SLACK} B, independent of the count)",
        peak - full
    );
    assert!(
        after - full <= SLACK,
        "the live heap grew by {} B",
        after - full
    );
    drop((never, holding, occasional, head, held));
}
