//! The ring protocol and its proof.
//!
//! # Layout
//!
//! ```text
//! Ring
//!   next_id   CachePadded<AtomicU64>   last claimed id; ids are dense from 1
//!   slots     [CachePadded<Slot>]      capacity = 2^shift
//!   registry  chunks of subscriber entries: hazard pointer, waker, sleeping bit
//! Slot
//!   state     AtomicU64   lap << 2 | ABANDONED | WRITING
//!   ptr       AtomicPtr<Event>  owns one strong count of an Arc<Event>, or null
//! ```
//!
//! Id `i` lives in slot `i & mask` on lap `(i >> shift) + 1` (lap 0 is the
//! empty initial state). One word per slot decides everything about an id,
//! so no reader or writer ever combines two words.
//!
//! # Publish (never blocks, never takes a lock)
//!
//! 1. The event is built completely and `Arc`-allocated first.
//! 2. `id = next_id.fetch_add(1) + 1`.
//! 3. Claim: read `state = (s, flags)`; with my lap `w`:
//!    * `s >= w`: a later lap already owns the slot. My event is *dropped*
//!      (counted); readers of my id already see a later lap and lag.
//!    * `s < w` and WRITING: an older writer is stalled mid-write. I do not
//!      wait: CAS to `(w, WRITING | ABANDONED)`, count it, wake sleepers. The
//!      stalled writer still owns WRITING and clears it when done; its event
//!      is stale (a later lap is recorded) and never delivered.
//!    * `s < w`, not WRITING: CAS to `(w, WRITING)`.
//! 4. `old = ptr.swap(new)`, then `state.fetch_and(!WRITING)` (Release).
//! 5. One `SeqCst` fence, then pay hazards on `old` and wake sleepers.
//! 6. Release `old`.
//!
//! # Read (`try_read(want)`, lock-free)
//!
//! Load `state` (Acquire) for lap `r` of `want`:
//! * `s < r`, or `s == r` and WRITING (without ABANDONED): **Empty**.
//! * ABANDONED with `s == r`, or `s > r`: the id is gone: **Lagged**. The
//!   cursor jumps to `max(want + 1, head + 1 - capacity)`, the oldest id that
//!   can still be retained; the skipped count is exact by construction.
//! * `s == r`, published: take the payload (below) and check `event.id ==
//!   want`. A larger id means a later writer replaced it after our state load:
//!   loop, and the state now says lagged.
//!
//! Backlog replay and live delivery are the same loop, so there is no seam.
//! Each call either returns the event at the cursor and advances by one, or
//! returns `Lagged(n)` and advances by `n`; hence the delivered ids and
//! lagged ranges of one subscription tile `[since + 1, ∞)` with no duplicate.
//!
//! # Taking the payload (per-subscriber hazard pointer; the writer pays)
//!
//! ```text
//! reader: p = ptr.load(Acquire); hz.store(p); fence(SeqCst);
//!         if ptr.load() != p { give back any paid count; retry }
//!         increment p's count; if hz.swap(null) == null { writer paid: drop one }
//! writer: old = ptr.swap(new); fence(SeqCst);
//!         for each hz == old: add a count, CAS hz old -> null (undo on failure)
//!         then drop the writer's own count of old
//! ```
//!
//! The two fences form a store-buffering pair: either the reader's re-load
//! sees the swap (it retries and never touches `p`), or the writer's scan
//! sees the hazard (it adds a count for the reader *before* releasing its own,
//! so `p` stays alive until the reader holds a count). A reader never
//! dereferences `p`; it only adjusts the count while `p` is protected. An
//! address reused by a new allocation (ABA) is harmless: the protection is
//! for whatever object is installed at that address, and the id check
//! rejects a different event. Writer cost is O(live subscribers), never
//! O(threads in the process).
//!
//! # Waking sleepers (the epoch handshake; no lost wake-up)
//!
//! ```text
//! subscriber: try_read -> Empty; register waker; sleeping |= bit;
//!             fence(SeqCst); try_read again; Empty -> sleep
//! producer:   state change (publish or abandon); fence(SeqCst);
//!             if sleeping != 0 { take the bits, wake each }
//! ```
//!
//! Again a store-buffering pair: either the subscriber's second read sees the
//! new state, or the producer's load sees the sleeping bit. A producer with no
//! sleepers pays one fence and one load, and shares that fence with the
//! hazard scan. Wakers are called outside any critical section.
//!
//! # Known limit
//!
//! A producer preempted between claim and publish holds back subscribers whose
//! cursor reaches its id (never other producers). When the next lap's writer
//! arrives, that id is abandoned and reported as lag.
//!
//! The loom models in `loom-tests/` check every statement above on small
//! rings, each with a deliberately weakened variant that must fail.
//!
//! # Departures from the first design sketch, and why
//!
//! * **Growable registry.** Subscriber entries live in 64-entry chunks
//!   appended lock-free and freed with the ring, instead of one fixed table:
//!   there is no subscriber limit to configure or hit, and a producer still
//!   checks 64 entries with one load of `in_use` / `sleeping`.
//! * **One fence per publish.** The writer's `SeqCst` fence after clearing
//!   WRITING serves both handshakes (hazards and sleepers), so a publish with
//!   no readers mid-read and no sleepers costs one fence and two loads.
//! * **Abandonment moves the lap.** The abandoning writer records its own
//!   lap with ABANDONED while the stalled writer keeps WRITING; the stalled
//!   writer's later `fetch_and` only clears its bit. Readers decide from the
//!   one word without knowing who is stalled.
//! * **Mutations chosen at run time.** The weakened orderings are selected
//!   by `sync::mutation::set` inside one loom build instead of one build per
//!   cfg, so CI builds the loom tests once.
//! * **A checked `Arc` twin under loom** (`loom_support`) instead of a
//!   freed flag inside `Event`: the public type stays free of test fields,
//!   and every count change, not only reads, is checked against release.
//! * **`since` beyond the head is clamped to the head** (documented on
//!   `Bus::subscribe`): a client's id from before a restart would otherwise
//!   wait for ids the new process may never reach.
//! * **Padded slots.** Each slot is cache-line padded so producers claiming
//!   consecutive ids never share a line; it costs 128 bytes per slot of
//!   capacity (see the memory table in `benches/RESULTS.md`).

use std::ptr;

use crossbeam_utils::CachePadded;

use crate::event::Event;
use crate::registry::{Handle, Registry};
use crate::sync::{
    fence, mutated, protocol_assert, Arc, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering,
};

const WRITING: u64 = 0b01;
const ABANDONED: u64 = 0b10;
const LAP_SHIFT: u32 = 2;

fn lap_of(state: u64) -> u64 {
    state >> LAP_SHIFT
}

fn encode(lap: u64, flags: u64) -> u64 {
    (lap << LAP_SHIFT) | flags
}

/// The largest capacity a ring accepts.
pub(crate) const MAX_CAPACITY: usize = 1 << 24;

#[derive(Debug)]
struct Slot {
    state: AtomicU64,
    ptr: AtomicPtr<Event>,
}

/// What one read attempt at the cursor found.
#[derive(Debug)]
pub(crate) enum Read {
    /// The event with the wanted id.
    Event(Arc<Event>),
    /// Ids `[want, next)` are gone; continue at `next`.
    Lagged { next: u64 },
    /// The wanted id is not published yet.
    Empty,
}

/// The shared ring. Held in an `Arc` by every `Bus` and `Subscription`.
#[derive(Debug)]
pub(crate) struct Ring {
    next_id: CachePadded<AtomicU64>,
    slots: Box<[CachePadded<Slot>]>,
    shift: u32,
    mask: u64,
    pub(crate) registry: Registry,
    /// Live `Bus` handles; zero means closed.
    senders: AtomicUsize,
    dropped: CachePadded<AtomicU64>,
    abandoned: AtomicU64,
    /// Set once the first event has been overwritten (warned about once).
    overwrote: AtomicBool,
}

impl Ring {
    /// `capacity` must be a power of two in `1..=MAX_CAPACITY`.
    pub(crate) fn new(capacity: usize) -> Ring {
        debug_assert!(capacity.is_power_of_two() && capacity <= MAX_CAPACITY);
        Ring {
            next_id: CachePadded::new(AtomicU64::new(0)),
            slots: (0..capacity)
                .map(|_| {
                    CachePadded::new(Slot {
                        state: AtomicU64::new(0),
                        ptr: AtomicPtr::new(ptr::null_mut()),
                    })
                })
                .collect(),
            shift: capacity.trailing_zeros(),
            mask: capacity as u64 - 1,
            registry: Registry::new(),
            senders: AtomicUsize::new(1),
            dropped: CachePadded::new(AtomicU64::new(0)),
            abandoned: AtomicU64::new(0),
            overwrote: AtomicBool::new(false),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn slot(&self, id: u64) -> &Slot {
        &self.slots[(id & self.mask) as usize]
    }

    fn lap(&self, id: u64) -> u64 {
        (id >> self.shift) + 1
    }

    /// The last claimed id (0 before the first publish).
    pub(crate) fn head(&self) -> u64 {
        // Relaxed: callers need a recent value, not synchronisation; events
        // are only read through slot states.
        self.next_id.load(Ordering::Relaxed)
    }

    pub(crate) fn dropped(&self) -> u64 {
        // Relaxed: a statistic.
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn abandoned(&self) -> u64 {
        // Relaxed: a statistic.
        self.abandoned.load(Ordering::Relaxed)
    }

    /// Publishes `event` (whose id field is overwritten) and returns its id.
    pub(crate) fn publish(&self, mut event: Event) -> u64 {
        // Relaxed: the id only has to be unique; visibility travels through
        // the slot state (the claim below is a Release).
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        event.id = id;
        let new = Arc::into_raw(Arc::new(event)) as *mut Event;
        let slot = self.slot(id);
        let lap = self.lap(id);

        // Relaxed: a first guess for the CAS loop, which validates it.
        let mut cur = slot.state.load(Ordering::Relaxed);
        loop {
            if lap_of(cur) >= lap {
                // A later lap owns the slot: this event is dropped.
                // Relaxed: a statistic.
                self.dropped.fetch_add(1, Ordering::Relaxed);
                // SAFETY: `new` came from `into_raw` above and was never shared.
                drop(unsafe { Arc::from_raw(new) });
                return id;
            }
            if cur & WRITING != 0 {
                // An older writer is stalled mid-write: abandon my lap, never wait.
                // Release: a reader that sees the abandoned lap also sees
                // `next_id >= id`, so its lag jump covers my id at once.
                let mark = if mutated!(NoAbandonMark) {
                    WRITING
                } else {
                    WRITING | ABANDONED
                };
                match slot.state.compare_exchange_weak(
                    cur,
                    encode(lap, mark),
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // Relaxed: a statistic.
                        self.abandoned.fetch_add(1, Ordering::Relaxed);
                        // SAFETY: `new` was never shared.
                        drop(unsafe { Arc::from_raw(new) });
                        // Liveness, not safety: the stalled writer wakes
                        // everyone when it finishes, but readers of my id
                        // need not wait for that.
                        // SeqCst: the producer half of the wake handshake.
                        fence(Ordering::SeqCst);
                        self.registry.wake_sleepers();
                        return id;
                    }
                    Err(actual) => {
                        cur = actual;
                        continue;
                    }
                }
            }
            // Acquire: pairs with the previous lap's Release (the fetch_and
            // below), so my swap is ordered after its swap and I take its
            // pointer (without it, the two swaps form a load-buffering cycle
            // C11 allows; loom cannot exhibit that, so no mutation tests it).
            // Release: readers that see my lap also see `next_id >= id`.
            let success = Ordering::AcqRel;
            match slot.state.compare_exchange_weak(
                cur,
                encode(lap, WRITING),
                success,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }

        // Release: the event's contents happen before any Acquire load of the
        // pointer. Acquire: we now own `old` and will release it.
        let old = slot.ptr.swap(new, Ordering::AcqRel);
        // Release: a reader that Acquire-loads my published lap sees `new`.
        let publish = if mutated!(PublishRelaxed) {
            Ordering::Relaxed
        } else {
            Ordering::Release
        };
        slot.state.fetch_and(!WRITING, publish);

        if !mutated!(NoWakeFence) {
            // SeqCst: the writer half of both store-buffering handshakes
            // (hazard scan and sleeper scan); see the module docs.
            fence(Ordering::SeqCst);
        }
        if !old.is_null() {
            self.pay_hazards(old);
        }
        self.registry.wake_sleepers();
        if !old.is_null() {
            // SAFETY: the slot owned one count of `old`, transferred to us by
            // the swap; hazards on it have been paid for.
            drop(unsafe { Arc::from_raw(old) });
            // Relaxed: only decides who logs; one load per publish once set.
            if !self.overwrote.load(Ordering::Relaxed)
                && !self.overwrote.swap(true, Ordering::Relaxed)
            {
                log::warn!(
                    "nexus-trace: the bus is full ({} events); the oldest events are now \
                     being overwritten and subscribers that fall behind will see Lagged \
                     (logged once; see Bus::counters)",
                    self.capacity()
                );
            }
        }
        id
    }

    /// Gives a count of `old` to every reader whose hazard names it.
    fn pay_hazards(&self, old: *mut Event) {
        if mutated!(NoHazardScan) {
            return;
        }
        for chunk in self.registry.chunks() {
            // Relaxed: ordered after the SeqCst fence in `publish`.
            let mut used = chunk.in_use.load(Ordering::Relaxed);
            while used != 0 {
                let i = used.trailing_zeros() as usize;
                used &= used - 1;
                let hz = &chunk.entries[i].hazard;
                // Relaxed: ordered after the SeqCst fence in `publish`.
                if hz.load(Ordering::Relaxed) != old {
                    continue;
                }
                // SAFETY: we still own the slot's count of `old`, so it is alive.
                unsafe { Arc::increment_strong_count(old) };
                // Release: the reader that swaps null out of its hazard
                // (Acquire) sees the count we just added.
                if hz
                    .compare_exchange(old, ptr::null_mut(), Ordering::Release, Ordering::Relaxed)
                    .is_err()
                {
                    // The reader cleared it first and holds its own count.
                    // SAFETY: we added this count just above.
                    unsafe { Arc::decrement_strong_count(old) };
                }
            }
        }
    }

    /// One read attempt at `want` on behalf of the subscriber owning `h`.
    pub(crate) fn try_read(&self, want: u64, h: Handle) -> Read {
        let slot = self.slot(want);
        let lap = self.lap(want);
        let hazard = &self.registry.entry(h).hazard;
        loop {
            // Acquire: pairs with the writer's Release fetch_and, so the
            // pointer swap of the lap we see is visible below.
            let state = slot.state.load(Ordering::Acquire);
            let s = lap_of(state);
            if s > lap || (s == lap && state & ABANDONED != 0) {
                let oldest = (self.head() + 1).saturating_sub(self.capacity() as u64);
                return Read::Lagged {
                    next: oldest.max(want + 1),
                };
            }
            if s < lap || state & WRITING != 0 {
                return Read::Empty;
            }

            // Acquire: the event's contents, released by the writer's swap.
            let p = slot.ptr.load(Ordering::Acquire);
            protocol_assert!(!p.is_null(), "published slot with a null pointer");
            // Relaxed: ordered before the re-check by the SeqCst fence.
            hazard.store(p, Ordering::Relaxed);
            if !mutated!(NoReaderFence) {
                // SeqCst: the reader half of the hazard handshake.
                fence(Ordering::SeqCst);
            }
            // Relaxed: only compared with `p`; the fence orders it.
            if slot.ptr.load(Ordering::Relaxed) != p {
                // Acquire: if a writer paid us a count, we see it before
                // giving it back.
                if hazard.swap(ptr::null_mut(), Ordering::Acquire).is_null() {
                    // SAFETY: a writer saw our hazard and added a count for us.
                    unsafe { Arc::decrement_strong_count(p) };
                }
                continue;
            }
            // SAFETY: `p` is protected: a writer that displaces it pays for
            // our hazard before releasing its own count (module docs).
            unsafe { Arc::increment_strong_count(p) };
            // Acquire: see the count a paying writer added before its Release CAS.
            if hazard.swap(ptr::null_mut(), Ordering::Acquire).is_null() {
                // A writer paid a second count for us; give one back.
                // SAFETY: we hold two counts of `p` now.
                unsafe { Arc::decrement_strong_count(p) };
            }
            // SAFETY: we own exactly one count of `p`.
            let event = unsafe { Arc::from_raw(p) };
            if event.id == want {
                return Read::Event(event);
            }
            // A later writer replaced the slot after our state load; the
            // state now shows a later lap. An older event would mean the
            // state/pointer ordering is broken.
            protocol_assert!(
                event.id > want,
                "ring protocol violated: slot for id {want} held older id {}",
                event.id
            );
        }
    }

    pub(crate) fn add_sender(&self) {
        // Relaxed: a new handle is made from an existing one, which keeps the
        // count above zero (the `Arc::clone` argument).
        self.senders.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops one sender; the last one closes the ring and wakes everyone.
    pub(crate) fn remove_sender(&self) {
        // AcqRel: every publish of every handle happens before a reader that
        // Acquire-loads zero (release sequence through this RMW).
        if self.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // SeqCst: the producer half of the wake handshake.
            fence(Ordering::SeqCst);
            self.registry.wake_sleepers();
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        // Acquire: see the note in `remove_sender`.
        self.senders.load(Ordering::Acquire) == 0
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        for slot in self.slots.iter() {
            // Relaxed: `&mut self`, no other thread can observe the ring.
            let p = slot.ptr.swap(ptr::null_mut(), Ordering::Relaxed);
            if !p.is_null() {
                // SAFETY: the slot owns one count of `p`; hazards are all
                // clear because every subscription is gone.
                drop(unsafe { Arc::from_raw(p) });
            }
        }
    }
}
