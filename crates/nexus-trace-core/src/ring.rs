//! The ring protocol and its proof.
//!
//! # Layout
//!
//! ```text
//! Ring
//!   next_id   CachePadded<AtomicU64>   last claimed id; ids are dense from 1
//!   groups    [Group]                  capacity = 2^shift slots
//!   registry  chunks of subscriber entries: waker, sleeping bit
//! Group       8 slots, 128-byte aligned (one x86 adjacent-line pair)
//! Slot
//!   state     AtomicU64   lap (40 bits) | readers (22 bits) | ABANDONED | WRITING
//!   ptr       AtomicPtr<Event>  owns one strong count of an Arc<Event>, or null
//! ```
//!
//! Slots are 16 bytes and unpadded, eight to a 128-byte group, and
//! consecutive ids are spread across groups: index `i = id & mask` lives in
//! group `i mod G` at position `i / G` (`G` = the number of groups). So the
//! ids that concurrent writers and readers work on at the same moment
//! (neighbours) are on different cache lines, while the ring costs 16 bytes
//! a slot instead of a padded slot's 128 (4096 slots: 64 KiB, not 512 KiB),
//! and a replay walks memory in eight sequential strides. The mapping is a
//! bijection of `0..capacity`; nothing below depends on which slot an id
//! maps to, only that each id has exactly one.
//!
//! Id `i` lives in slot `slot(i & mask)` on lap `(i >> shift) + 1` (lap 0 is the
//! empty initial state; laps compare modulo 2^40, see "Limits"). One word per
//! slot decides everything about an id, and the same word counts the readers
//! that are taking its payload right now, so no reader or writer ever has to
//! combine two words to know whom it is dealing with.
//!
//! # Publish (never blocks, never takes a lock, O(1) in subscribers)
//!
//! 1. The event is built completely and `Arc`-allocated first, so the claim
//!    window below contains no allocation and no large move.
//! 2. `id = next_id.fetch_add(1) + 1`; the id is written into the still
//!    unshared allocation.
//! 3. Claim: read `state = (s, k, flags)`; with my lap `w`:
//!    * `s >= w`: a later lap already owns the slot. My event is *dropped*
//!      (counted); readers of my id already see a later lap and lag.
//!    * `s < w` and WRITING: an older writer is stalled mid-write. I do not
//!      wait: CAS to `(w, 0, WRITING | ABANDONED)`, count it, wake sleepers.
//!      The stalled writer still owns WRITING and clears it when done; its
//!      event is stale (a later lap is recorded) and never delivered.
//!    * `s < w`, not WRITING, no reader reservation (`k == 0`): CAS to
//!      `(w, 0, WRITING)` (AcqRel). This is the common case.
//!    * `s < w`, not WRITING, `k > 0` readers are taking the old payload
//!      (slow path, `claim_reserved`): reserve like a reader, load `old`,
//!      increment its count once for each *other* reservation, then CAS from
//!      exactly that state to `(w, 0, WRITING)`; a changed reader count
//!      adjusts the prepayment and retries. The claim thus takes exactly the
//!      reservations it prepaid. If another writer claims first, it took (and
//!      prepaid) ours too: give back every count we hold and retry from 3.
//! 4. `old = ptr.swap(new)` (AcqRel), then `state.fetch_and(!WRITING)`
//!    (Release): the event is published.
//! 5. One `SeqCst` fence, then wake sleepers (the only step that looks at
//!    the registry; see "Waking sleepers").
//! 6. Release the slot's own count of `old`.
//!
//! No step looks at any subscriber's state except through the slot's own
//! word, so a publish costs the same with 0 or 10 000 idle subscribers.
//!
//! # Read (`try_read(want)`, lock-free)
//!
//! Load `state` (Acquire) for lap `r` of `want`:
//! * `s < r`, or `s == r` and WRITING (without ABANDONED): **Empty**.
//! * ABANDONED with `s == r`, or `s > r`: the id is gone: **Lagged**. The
//!   cursor jumps to `max(want + 1, head + 1 - capacity)`, the oldest id that
//!   can still be retained; the skipped count is exact by construction.
//! * `s == r`, published: take the payload (below).
//!
//! Backlog replay and live delivery are the same loop, so there is no seam.
//! Each call either returns the event at the cursor and advances by one, or
//! returns `Lagged(n)` and advances by `n`; hence the delivered ids and
//! lagged ranges of one subscription tile `[since + 1, ∞)` with no duplicate.
//!
//! # Taking the payload (split reference count: the reservation lives in the slot word)
//!
//! ```text
//! reader: st = state.load(Acquire)              -- (r, k, published)
//!         p  = ptr.load(Acquire)
//!         CAS state st -> st + READER          -- reserve; fails if the lap moved
//!         increment p's strong count
//!         settle: while state's lap == r { CAS state -1 READER (Release) -> done }
//!                 lap moved (Acquire): the claim prepaid a count for us; drop it
//! writer: k == 0: CAS state (r, 0, published) -> (w, 0, WRITING)
//!         k > 0:  reserve; prepay k counts on p; CAS (r, k + 1) -> (w, 0, WRITING)
//!         old = ptr.swap(new); publish; drop the slot's count of old
//! ```
//!
//! **Claim 1: `p` is the event of lap `r`.** The state load reads lap `r`
//! published, so it synchronises with the Release `fetch_and` of lap `r`'s
//! writer, whose swap installed lap `r`'s event: the pointer load returns that
//! event or a later one (read-read coherence). It cannot return a later one:
//! the next swap is made by the writer whose claim CAS moves the lap past
//! `r`, and our reservation CAS, which succeeded with lap `r`, precedes that
//! claim in the state word's modification order. If our pointer load read
//! that later swap (Release; our load is Acquire), the claim would happen
//! before our reservation (claim →sb swap →sw load →sb reservation), yet
//! follow it in modification order, which coherence forbids. So the pointer
//! we reserve and the lap we checked are the same object, and **address
//! reuse cannot matter**: nothing is re-checked by address. (This ordering
//! rules out a load-buffering cycle, which loom cannot produce; it is argued
//! here. The mutations `PtrBeforeState` and `BlindReserve` are the
//! loom-visible forms of the same mistake: a pointer not tied to the lap
//! the reservation names.)
//!
//! **Claim 2: `p` is alive whenever a reservation on it is outstanding.**
//! Until a claim ends lap `r`, the slot owns a count of `p`. A claim that
//! ends it is a CAS whose expected value holds exactly the `k` reservations
//! present, so the claim takes exactly those, and its writer incremented
//! `p`'s count once per reservation (other than its own) *before* the CAS.
//! Its own reservation protected `p` while it did so. After the claim, each
//! taken reservation is backed by a prepaid count, and the writer drops the
//! slot's count only after its swap. So every increment a reader makes
//! under its reservation finds `p` alive.
//!
//! **Claim 3: every count is released exactly once, and never early.**
//! Settling finds the reservation either still in the word (lap `r`) — our
//! CAS removes it, no writer paid for it, and our own increment is the count
//! we return — or taken by a claim, which prepaid one count for it: we drop
//! that count. The prepayment happens before the claim CAS (Release), and
//! our settle reads the claim or a later value in its release sequence
//! (Acquire), so the prepayment precedes our drop: the count cannot reach
//! zero early. When we settle first, our increment must precede the
//! claimer's release of the slot's count: the settle CAS is Release, the
//! claim CAS that reads its result (or a later RMW in its release sequence)
//! is Acquire, so increment →hb release of the slot's count. A writer whose
//! prepaid claim loses to another claim drops its prepaid counts and the
//! count prepaid for its own reservation, by the same argument.
//!
//! (An earlier draft paid the reservations *after* the claim. loom found the
//! flaw at once: a reader that settles between the claim and the payment
//! drops a count that does not exist yet, and the event is freed under the
//! writer. Prepaying under the writer's own reservation closes it.)
//!
//! The reservation CAS validates the exact state we decided on; when it
//! fails only because another reader changed the count, it retries without
//! reloading the pointer (the lap, hence the pointer, is unchanged).
//!
//! # Batch reads (one protection for a whole replay)
//!
//! A reservation costs two compare-and-swaps per event; a subscriber that
//! replays a backlog can instead protect a whole batch at once
//! (`Subscription::try_recv_many`):
//!
//! ```text
//! reader: batch_readers += 1; fence(SeqCst)
//!         for each id: state (Acquire) decides as above; p = ptr (Acquire);
//!                      state's lap unchanged ? increment p, deliver : decide again
//!         batch_readers -= 1 (Release); the last one out reclaims
//! writer: ... swap, publish, fence(SeqCst) (the same fence as for sleepers)
//!         batch_readers (Acquire) == 0 ? release old : push old on `retired`
//! reclaim: take `retired` whole (AcqRel); fence(SeqCst);
//!          batch_readers (Acquire) == 0 ? release them all : push them back
//! ```
//!
//! **Claim 4: a batch reader never touches a released event.** The fences
//! form a store-buffering pair: for a writer's swap of `old`, either the
//! writer's guard load sees the reader's increment (it retires `old`
//! instead of releasing it), or the reader's pointer load sees the swap
//! (it never loads `old`). A retired event is released only by a reclaimer
//! that took it off the stack and then saw no batch reader. Its swap of the
//! stack reads the retiring writer's push (Release), so the writer's fence
//! precedes the reclaimer's in the fences' total order; a reader that
//! loaded `old` has its fence before the writer's (it did not see the swap),
//! hence before the reclaimer's, so the reclaimer's guard load sees that
//! reader's increment until the reader's Release decrement, which also
//! orders the reader's last use before the release (Acquire). A pointer
//! from a later lap's swap is caught by re-loading the state after the
//! pointer (as in Claim 1, the later claim happens before that load): the
//! reader decides again, and the state now says lagged. A reclaimer that sees readers pushes the events back; the last
//! reader out reclaims them. (A push that races the last reader's exit
//! can wait for the next batch or the ring's drop: bounded by the events
//! displaced during that race.)
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
//! A store-buffering pair: either the subscriber's second read sees the new
//! state, or the producer's load sees the sleeping bit (or a later value of
//! the word, written by a producer that took the bit and wakes it). A
//! producer with no sleepers pays one fence and one load per 64 registry
//! entries ever allocated (chunks are never freed before the ring).
//!
//! Why fences and not `SeqCst` accesses: on x86 a `SeqCst` publishing
//! `fetch_and` and a `SeqCst` load of the bits would make the producer's
//! fence (a `lock or`, about a sixth of `publish`'s own time in a `perf
//! annotate` of the 0-subscriber bench) unnecessary. But loom models
//! `SeqCst` loads, stores and read-modify-writes as acquire/release only
//! (it reports store buffering with `SeqCst` accesses as possible,
//! tokio-rs/loom#180), while it models `SeqCst` fences; with accesses, this
//! handshake could no longer be checked. The fence stays.
//!
//! Wakers run inline on the publishing thread, outside any critical
//! section: a thread waker is a futex wake (a syscall, only when that
//! subscriber is asleep), a tokio waker pushes the task to a run queue (from
//! a non-worker thread, tokio's injection queue takes a mutex). A publish
//! that wakes nobody does no I/O and no syscall.
//!
//! # What "lock-free" covers
//!
//! `publish` and `try_read` never wait for another thread: every loop
//! retries only because another thread made progress (a claim, a
//! reservation, a settle); a writer's claim retries at most twice per
//! reader per lap of its slot. Waking is the exception above: it calls the
//! wakers that subscribers registered. The first overwrite logs one warning
//! through `log` (once per bus).
//!
//! # Limits
//!
//! * A producer preempted between claim and publish holds back subscribers
//!   whose cursor reaches its id (never other producers). When the next
//!   lap's writer arrives, that id is abandoned and reported as lag; until
//!   the stalled writer finishes, it costs one id per lap, every one of them
//!   counted in `abandoned`.
//! * Laps are 40 bits and compare modulo 2^40: a producer or reader must
//!   not sleep across 2^39 laps of its slot between loading and using a lap
//!   (at least 2^39 × capacity events).
//! * The reader count is 22 bits: at most 2^22 − 1 threads may be inside
//!   `try_read` on one slot at once. Linux's `PID_MAX_LIMIT` is 2^22, so no
//!   Linux process can have that many threads.
//!
//! The loom models in `loom-tests/` check the protocol on small rings with
//! three or more subscriptions and an allocator that reuses addresses at
//! once; each has a deliberately weakened variant that must fail with its
//! own message.
//!
//! How this design came about (the departures from the first sketch, and
//! why): `docs/ring-history.md` in the repository.

use std::ptr;

use crossbeam_utils::CachePadded;

use crate::event::Event;
use crate::registry::Registry;
use crate::sync::{
    fence, mutated, protocol_assert, set_unshared_id, Arc, AtomicBool, AtomicPtr, AtomicU64,
    AtomicUsize, Ordering,
};

const WRITING: u64 = 0b01;
const ABANDONED: u64 = 0b10;
const FLAGS: u64 = WRITING | ABANDONED;
/// One reader reservation.
const READER: u64 = 1 << 2;
const READER_BITS: u32 = 22;
const READERS: u64 = ((1 << READER_BITS) - 1) * READER;
const LAP_SHIFT: u32 = 2 + READER_BITS;
const LAP_BITS: u32 = 64 - LAP_SHIFT;
const LAP_MASK: u64 = (1 << LAP_BITS) - 1;

fn lap_of(state: u64) -> u64 {
    state >> LAP_SHIFT
}

fn readers_of(state: u64) -> u64 {
    (state & READERS) / READER
}

fn encode(lap: u64, flags: u64) -> u64 {
    ((lap & LAP_MASK) << LAP_SHIFT) | flags
}

/// What a slot's state says about the id of lap `lap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A later lap owns the slot, or this lap was abandoned: the id is lost.
    Gone,
    /// The lap has not been published yet.
    Pending,
    /// The lap's event is in the slot.
    Published,
}

fn phase(state: u64, lap: u64) -> Phase {
    let s = lap_of(state);
    if lap_before(lap, s) || (s == lap && state & ABANDONED != 0) {
        Phase::Gone
    } else if s != lap || state & WRITING != 0 {
        Phase::Pending
    } else {
        Phase::Published
    }
}

/// `a` is strictly before `b`, comparing laps modulo 2^40.
fn lap_before(a: u64, b: u64) -> bool {
    let d = b.wrapping_sub(a) & LAP_MASK;
    d != 0 && d < 1 << (LAP_BITS - 1)
}

/// The largest capacity a ring accepts.
pub(crate) const MAX_CAPACITY: usize = 1 << 24;

#[derive(Debug)]
struct Slot {
    state: AtomicU64,
    ptr: AtomicPtr<Event>,
}

/// Slots per [`Group`].
const GROUP: usize = 8;

/// Eight slots on one 128-byte-aligned block (an x86 adjacent-line
/// prefetch pair), so that slots of different groups never share a line.
#[derive(Debug)]
#[repr(align(128))]
struct Group([Slot; GROUP]);

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

/// Fields that every publish reads and nothing writes after construction.
#[derive(Debug)]
struct Shape {
    groups: Box<[Group]>,
    shift: u32,
    mask: u64,
    /// `log2` of the number of groups (0 for a ring of at most 8 slots).
    group_shift: u32,
}

/// The shared ring. Held in an `Arc` by every `Bus` and `Subscription`.
#[derive(Debug)]
pub(crate) struct Ring {
    next_id: CachePadded<AtomicU64>,
    shape: CachePadded<Shape>,
    pub(crate) registry: Registry,
    /// Live `Bus` handles; zero means closed. Written by every `Bus` clone
    /// and drop (per request in the adapters), so it has its own line.
    senders: CachePadded<AtomicUsize>,
    /// Statistics, written only on the rare paths (drop, abandon, first
    /// overwrite); read on every publish once `overwrote` is set.
    dropped: AtomicU64,
    abandoned: AtomicU64,
    /// Set once the first event has been overwritten (warned about once).
    overwrote: AtomicBool,
    /// Readers inside a batch read ("Batch reads"). Written twice per batch;
    /// read by every publish that displaces an event.
    batch_readers: CachePadded<AtomicUsize>,
    /// Displaced events whose release waits for batch readers to leave: a
    /// Treiber stack, only pushed and taken whole (so no ABA).
    retired: AtomicPtr<Retired>,
}

/// A displaced event waiting for the batch readers that may hold it.
struct Retired {
    event: *mut Event,
    next: *mut Retired,
}

/// Why a batch read stopped.
#[derive(Debug)]
pub(crate) enum BatchEnd {
    /// It took as many events as asked.
    Full,
    /// The next id is gone; continue at `next`.
    Lagged { next: u64 },
    /// The next id is not published yet.
    Empty,
}

impl Ring {
    /// `capacity` must be a power of two in `1..=MAX_CAPACITY`.
    pub(crate) fn new(capacity: usize) -> Ring {
        debug_assert!(capacity.is_power_of_two() && capacity <= MAX_CAPACITY);
        Ring {
            next_id: CachePadded::new(AtomicU64::new(0)),
            shape: CachePadded::new(Shape {
                groups: (0..capacity.div_ceil(GROUP))
                    .map(|_| {
                        Group(std::array::from_fn(|_| Slot {
                            state: AtomicU64::new(0),
                            ptr: AtomicPtr::new(ptr::null_mut()),
                        }))
                    })
                    .collect(),
                shift: capacity.trailing_zeros(),
                mask: capacity as u64 - 1,
                group_shift: capacity
                    .trailing_zeros()
                    .saturating_sub(GROUP.trailing_zeros()),
            }),
            registry: Registry::new(),
            senders: CachePadded::new(AtomicUsize::new(1)),
            dropped: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            overwrote: AtomicBool::new(false),
            batch_readers: CachePadded::new(AtomicUsize::new(0)),
            retired: AtomicPtr::new(ptr::null_mut()),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        (self.shape.mask + 1) as usize
    }

    /// The slot of `id`: index `i = id & mask` in group `i mod G`, at
    /// position `i / G` (see "Layout"), so neighbouring ids are on
    /// different groups.
    fn slot(&self, id: u64) -> &Slot {
        let i = (id & self.shape.mask) as usize;
        let g = self.shape.group_shift;
        &self.shape.groups[i & ((1 << g) - 1)].0[i >> g]
    }

    fn lap(&self, id: u64) -> u64 {
        ((id >> self.shape.shift) + 1) & LAP_MASK
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
    pub(crate) fn publish(&self, event: Event) -> u64 {
        // Step 1: allocate before claiming anything.
        let new = Arc::into_raw(Arc::new(event)) as *mut Event;
        // Relaxed: the id only has to be unique; visibility travels through
        // the slot state (the publishing fetch_and below is a Release).
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        // SAFETY: `new` came from `into_raw` just above and no other thread
        // has seen it yet.
        unsafe { set_unshared_id(new, id) };
        let slot = self.slot(id);
        let lap = self.lap(id);

        // Relaxed: a first guess for the CAS loop, which validates it.
        let mut cur = slot.state.load(Ordering::Relaxed);
        loop {
            if !lap_before(lap_of(cur), lap) {
                // A later lap owns the slot: this event is dropped.
                // Relaxed: a statistic.
                self.dropped.fetch_add(1, Ordering::Relaxed);
                // SAFETY: `new` came from `into_raw` above and was never shared.
                drop(unsafe { Arc::from_raw(new) });
                return id;
            }
            if cur & WRITING != 0 {
                // An older writer is stalled mid-write: abandon my lap, never wait.
                // (No reader reserves a WRITING slot, so there is nothing to take.)
                protocol_assert!(readers_of(cur) == 0, "reservation on a slot being written");
                let mark = if mutated!(NoAbandonMark) {
                    WRITING
                } else {
                    WRITING | ABANDONED
                };
                // Release: a reader that sees the abandoned lap also sees
                // `next_id >= id`, so its lag jump covers my id at once.
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
            if readers_of(cur) != 0 && cur & ABANDONED == 0 {
                // Readers are taking the payload: prepay them (slow path).
                match self.claim_reserved(slot, cur, lap) {
                    Ok(()) => break,
                    Err(actual) => {
                        cur = actual;
                        continue;
                    }
                }
            }
            // Fast path: no reservation to take.
            // Acquire: pairs with the previous lap's Release (its publishing
            // fetch_and, and every reader's settling CAS in its release
            // sequence): my swap follows its swap, and each settled reader's
            // count increment precedes my release of the old event (Claim 3).
            // Release: the claim must carry no reservation, which the
            // expected value (zero readers) ensures; AcqRel is the weakest
            // success ordering with Acquire for a CAS.
            match slot.state.compare_exchange_weak(
                cur,
                encode(lap, WRITING),
                Ordering::AcqRel,
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
            // SeqCst: the writer half of the sleeper handshake (module docs).
            fence(Ordering::SeqCst);
        }
        self.registry.wake_sleepers();
        if !old.is_null() {
            // Acquire: a batch reader's Release exit, so what it did with
            // `old` happens before we release it. Ordered after the SeqCst
            // fence above: the writer half of the batch handshake.
            if self.batch_readers.load(Ordering::Acquire) == 0 || mutated!(NoBatchGuard) {
                // SAFETY: the slot owned one count of `old`, transferred to us
                // by the swap; the reservations the claim took were prepaid;
                // no batch reader can hold `old` (handshake).
                drop(unsafe { Arc::from_raw(old) });
            } else {
                self.retire(old);
            }
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

    /// Claims a published slot that readers hold reservations on (`cur` has
    /// lap `r`, no flags, `k > 0` readers). The writer first reserves like a
    /// reader, which protects the old event, then prepays one count for each
    /// other reservation and claims with a CAS that expects exactly the
    /// reservations it paid for. On success every reservation the claim takes
    /// is paid for *before* the claim is visible (Claim 2). When another
    /// writer's claim takes the reservations instead (ours included, prepaid
    /// by that writer), this gives back everything and returns the new state.
    fn claim_reserved(&self, slot: &Slot, mut cur: u64, lap: u64) -> Result<(), u64> {
        let r = lap_of(cur);
        let same_lap = |s: u64| lap_of(s) == r && s & FLAGS == 0;
        loop {
            // Acquire: our `cur` came from a Relaxed load, so this CAS is what
            // synchronises with lap `r`'s publishing fetch_and (through the
            // readers' RMWs in its release sequence): the pointer load below
            // then sees lap `r`'s swap. (loom found the Relaxed version: the
            // load returned the slot's initial null.)
            match slot.state.compare_exchange_weak(
                cur,
                cur + READER,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) if same_lap(actual) && readers_of(actual) != 0 => cur = actual,
                Err(actual) => return Err(actual),
            }
        }
        cur += READER;
        // Acquire: as the reader's pointer load (Claim 1): lap `r`'s event.
        let old = slot.ptr.load(Ordering::Acquire);
        let mut paid = 0;
        loop {
            let others = if mutated!(NoPayReservations) {
                0
            } else {
                readers_of(cur) - 1
            };
            while paid < others {
                // SAFETY: our reservation keeps `old` alive (Claim 2).
                unsafe { Arc::increment_strong_count(old) };
                paid += 1;
            }
            while paid > others {
                // SAFETY: a count we added above; our reservation still
                // keeps `old` alive.
                unsafe { Arc::decrement_strong_count(old) };
                paid -= 1;
            }
            // Release: the prepaid counts happen before a reader that sees
            // the claim (Acquire) drops one. Acquire: as the fast path's claim.
            // Failure Acquire: a competing claim prepaid our reservation.
            match slot.state.compare_exchange_weak(
                cur,
                encode(lap, WRITING),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                // The claim took our own reservation too; it needs no payment.
                Ok(_) => return Ok(()),
                Err(actual) if same_lap(actual) => cur = actual,
                Err(actual) => {
                    // Another claim took every reservation and prepaid ours:
                    // drop what we paid and the count it paid for us.
                    for _ in 0..=paid {
                        // SAFETY: counts we own (ours, and the one prepaid for
                        // our reservation before that claim, seen via Acquire).
                        unsafe { Arc::decrement_strong_count(old) };
                    }
                    return Err(actual);
                }
            }
        }
    }

    /// One read attempt at `want`.
    pub(crate) fn try_read(&self, want: u64) -> Read {
        let slot = self.slot(want);
        let lap = self.lap(want);
        'retry: loop {
            // The broken order of the `PtrBeforeState` mutation: a pointer
            // loaded first may belong to an older lap.
            // Acquire: as below.
            let early = mutated!(PtrBeforeState).then(|| slot.ptr.load(Ordering::Acquire));
            // Acquire: pairs with the writer's Release fetch_and, so the
            // pointer swap of the lap we see is visible below.
            let mut state = slot.state.load(Ordering::Acquire);
            match phase(state, lap) {
                Phase::Gone => {
                    return Read::Lagged {
                        next: self.oldest_after(want),
                    }
                }
                Phase::Pending => return Read::Empty,
                Phase::Published => {}
            }
            // Acquire: the event's contents, released by the writer's swap;
            // and Claim 1 (this load cannot read a later lap's swap).
            let p = early.unwrap_or_else(|| slot.ptr.load(Ordering::Acquire));
            protocol_assert!(!p.is_null(), "published slot with a null pointer");

            // Reserve: one RMW that checks the lap we decided on and counts us.
            loop {
                protocol_assert!(
                    readers_of(state) < readers_of(READERS),
                    "reader count overflow"
                );
                if mutated!(BlindReserve) {
                    // The broken form: counts us on whatever lap is there now.
                    // Relaxed: as below.
                    slot.state.fetch_add(READER, Ordering::Relaxed);
                    break;
                }
                // Relaxed: the reservation only has to be in the word before
                // any claim that ends the lap (RMW atomicity); the payload's
                // visibility came from the Acquire state load.
                match slot.state.compare_exchange_weak(
                    state,
                    state + READER,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    // Another reader reserved or settled: same lap, same pointer.
                    Err(actual) if lap_of(actual) == lap && actual & FLAGS == 0 => state = actual,
                    Err(_) => continue 'retry,
                }
            }

            // SAFETY: `p` is lap `lap`'s event (Claim 1) and alive: the slot
            // or the writer that takes our reservation holds a count (Claim 2).
            unsafe { Arc::increment_strong_count(p) };
            self.settle(slot, lap, p, state + READER);
            // SAFETY: we own exactly one count of `p` (Claim 3).
            let event = unsafe { Arc::from_raw(p) };
            protocol_assert!(
                event.id == want,
                "ring protocol violated: slot for id {want} held id {}",
                event.id
            );
            return Read::Event(event);
        }
    }

    /// Gives back a reservation on `p` taken on `lap` (Claim 3).
    ///
    /// `guess` is the state our reservation wrote, the usual current value;
    /// every later value is read by a CAS failure (Acquire).
    fn settle(&self, slot: &Slot, lap: u64, p: *mut Event, guess: u64) {
        let mut cur = guess;
        while lap_of(cur) == lap {
            protocol_assert!(
                readers_of(cur) > 0 && cur & FLAGS == 0,
                "reservation missing from its lap"
            );
            // Release: our count increment happens before the claim (Acquire)
            // that finds our reservation gone and so does not pay for it
            // (loom cannot reorder RMWs on one count, so this is argued, not
            // tested).
            // Failure Acquire: if it shows a later lap, the claim that took
            // our reservation prepaid its count before its Release CAS.
            match slot.state.compare_exchange_weak(
                cur,
                cur - READER,
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
        // A claim took our reservation and prepaid one count for it before
        // its Release CAS, which our Acquire load read: that count is ours.
        // SAFETY: we own it (and our own increment), so `p` stays alive.
        unsafe { Arc::decrement_strong_count(p) };
    }

    /// Reads up to `max` consecutive events from `want` into `out` under one
    /// protection for the whole batch ("Batch reads"). Returns the next id
    /// to read and why it stopped.
    pub(crate) fn try_read_many(
        &self,
        mut want: u64,
        max: usize,
        out: &mut Vec<Arc<Event>>,
    ) -> (u64, BatchEnd) {
        // Room for what is published now (capped by `max`), so a replay
        // into a fresh Vec does not regrow it a dozen times.
        let published = self.head().saturating_sub(want).saturating_add(1);
        out.reserve(max.min(usize::try_from(published).unwrap_or(max)));
        // Relaxed: ordered before the pointer loads by the fence below.
        self.batch_readers.fetch_add(1, Ordering::Relaxed);
        // SeqCst: the reader half of the batch handshake: either a writer's
        // guard load after its swap sees us, or our pointer loads see its swap.
        fence(Ordering::SeqCst);
        let mut taken = 0;
        let end = loop {
            if taken == max {
                break BatchEnd::Full;
            }
            let slot = self.slot(want);
            let lap = self.lap(want);
            // Acquire: as in `try_read`.
            let state = slot.state.load(Ordering::Acquire);
            match phase(state, lap) {
                Phase::Gone => {
                    break BatchEnd::Lagged {
                        next: self.oldest_after(want),
                    }
                }
                Phase::Pending => break BatchEnd::Empty,
                Phase::Published => {}
            }
            // Acquire: the event's contents, released by the writer's swap;
            // and it orders the re-check below after this load.
            let p = slot.ptr.load(Ordering::Acquire);
            protocol_assert!(!p.is_null(), "published slot with a null pointer");
            // Relaxed: if `p` came from a later lap's swap, that lap's claim
            // happens before this load (claim →sb swap →sw our Acquire load),
            // so this load sees the later lap. Same lap: `p` is lap `lap`'s
            // event. (The slot's line is in cache; the event's is not.)
            let again = slot.state.load(Ordering::Relaxed);
            if lap_of(again) != lap && !mutated!(BatchNoRecheck) {
                // A later lap replaced it: decide again (it now says lagged).
                continue;
            }
            // SAFETY: as above: alive while we are a batch reader.
            unsafe { Arc::increment_strong_count(p) };
            // SAFETY: the count we just took.
            let event = unsafe { Arc::from_raw(p) };
            protocol_assert!(
                event.id == want,
                "ring protocol violated: batch read of id {want} got id {}",
                event.id
            );
            out.push(event);
            taken += 1;
            want += 1;
        };
        // Release: our uses of displaced events happen before the release
        // of those events by whoever sees the count drop (Acquire).
        if self.batch_readers.fetch_sub(1, Ordering::Release) == 1 {
            self.reclaim();
        }
        (want, end)
    }

    /// Defers the release of `old` until no batch reader may hold it.
    fn retire(&self, old: *mut Event) {
        let node = Box::into_raw(Box::new(Retired {
            event: old,
            next: ptr::null_mut(),
        }));
        self.push_retired(node, node);
        self.reclaim();
    }

    /// Pushes the chain `first ..= last` onto the retired stack.
    fn push_retired(&self, first: *mut Retired, last: *mut Retired) {
        // Relaxed: the CAS below validates it.
        let mut head = self.retired.load(Ordering::Relaxed);
        loop {
            // SAFETY: `last` is ours until the CAS publishes it.
            unsafe { (*last).next = head };
            // Release: the chain's contents, for the Acquire swap in `reclaim`.
            match self.retired.compare_exchange_weak(
                head,
                first,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => head = actual,
            }
        }
    }

    /// Releases every retired event if no batch reader is active; otherwise
    /// puts them back for the last batch reader to leave.
    fn reclaim(&self) {
        // Relaxed: a hint that saves the swap when there is nothing to do.
        if self.retired.load(Ordering::Relaxed).is_null() {
            return;
        }
        // AcqRel: Acquire sees every pushed node (and the retiring writer's
        // fence before its push, see the module docs); Release is for a
        // later reclaimer that takes what we put back.
        let list = self.retired.swap(ptr::null_mut(), Ordering::AcqRel);
        if list.is_null() {
            return;
        }
        // SeqCst: after taking the list, so every writer that retired one of
        // these events has its own fence ordered before ours.
        fence(Ordering::SeqCst);
        // Acquire: the last batch reader's Release exit.
        if self.batch_readers.load(Ordering::Acquire) != 0 && !mutated!(ReclaimIgnoresReaders) {
            let mut last = list;
            // SAFETY: the chain is ours since the swap.
            while !unsafe { (*last).next }.is_null() {
                // SAFETY: as above.
                last = unsafe { (*last).next };
            }
            self.push_retired(list, last);
            return;
        }
        free_retired(list);
    }

    /// Where a reader whose id `want` is gone continues: the oldest id the
    /// ring can still hold, and never before `want + 1`.
    fn oldest_after(&self, want: u64) -> u64 {
        let oldest = (self.head() + 1).saturating_sub(self.capacity() as u64);
        oldest.max(want + 1)
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
        for slot in self.shape.groups.iter().flat_map(|g| g.0.iter()) {
            // Relaxed: `&mut self`, no other thread can observe the ring.
            let p = slot.ptr.swap(ptr::null_mut(), Ordering::Relaxed);
            if !p.is_null() {
                // SAFETY: the slot owns one count of `p`; no reservation is
                // outstanding because every subscription is gone.
                drop(unsafe { Arc::from_raw(p) });
            }
        }
        // Relaxed: `&mut self`, as above; no batch reader is left.
        free_retired(self.retired.swap(ptr::null_mut(), Ordering::Relaxed));
    }
}

/// Frees a chain of retired nodes and releases their events.
fn free_retired(mut node: *mut Retired) {
    while !node.is_null() {
        // SAFETY: every node came from `Box::into_raw` in `retire` and is
        // owned by whoever took it off the stack.
        let retired = unsafe { Box::from_raw(node) };
        node = retired.next;
        // SAFETY: the node owns the slot count its writer took by swapping;
        // no batch reader can hold the event any more.
        drop(unsafe { Arc::from_raw(retired.event) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laps_compare_modulo_their_width() {
        assert!(lap_before(0, 1));
        assert!(!lap_before(1, 1));
        assert!(!lap_before(2, 1));
        // Across the wrap: LAP_MASK is just before 0.
        assert!(lap_before(LAP_MASK, 0));
        assert!(!lap_before(0, LAP_MASK));
        assert_eq!(lap_of(encode(LAP_MASK + 3, WRITING)), 2);
    }

    #[test]
    fn the_reader_count_does_not_touch_the_lap_or_flags() {
        let s = encode(7, 0) + 5 * READER;
        assert_eq!((lap_of(s), readers_of(s), s & FLAGS), (7, 5, 0));
        let full = encode(7, ABANDONED) | READERS;
        assert_eq!(lap_of(full), 7);
        assert_eq!(full & FLAGS, ABANDONED);
    }
}
