//! The one place that names std or loom synchronisation primitives.
//!
//! Under the private cfg `nexus_loom` every atomic, fence and payload `Arc`
//! the ring uses comes from loom (or from `loom_support`), so the loom
//! models in `loom-tests/` explore the real protocol code, not a copy.

#[cfg(nexus_loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(not(nexus_loom))]
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering,
};

/// The reference-counted pointer that carries events to subscribers.
///
/// It is `std::sync::Arc` in every normal build; loom models substitute a
/// checked twin that detects use-after-free and leaks.
#[cfg(not(nexus_loom))]
pub use std::sync::Arc;

#[cfg(nexus_loom)]
pub use crate::loom_support::Arc;

#[cfg(not(nexus_loom))]
pub(crate) use atomic_waker::AtomicWaker;

#[cfg(nexus_loom)]
pub(crate) use loom_waker::AtomicWaker;

#[cfg(nexus_loom)]
mod loom_waker {
    use std::task::Waker;

    /// Adapts loom's `AtomicWaker` to the `atomic-waker` API used in normal builds.
    #[derive(Debug, Default)]
    pub(crate) struct AtomicWaker(loom::future::AtomicWaker);

    impl AtomicWaker {
        pub(crate) fn new() -> Self {
            Self(loom::future::AtomicWaker::new())
        }
        pub(crate) fn register(&self, waker: &Waker) {
            self.0.register_by_ref(waker);
        }
        pub(crate) fn wake(&self) {
            self.0.wake();
        }
        pub(crate) fn take(&self) -> Option<Waker> {
            self.0.take_waker()
        }
    }
}

/// Deliberate protocol weakenings, compiled only into loom builds.
///
/// Each loom model runs once with [`Mutation::None`] (it must pass) and once
/// with the mutation that breaks the property it checks (loom must find the
/// failure). A model that cannot fail under its mutation explores nothing.
#[cfg(nexus_loom)]
pub mod mutation {
    use std::sync::atomic::{AtomicU8, Ordering};

    /// A single weakened step of the protocol.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[repr(u8)]
    pub enum Mutation {
        /// The real protocol.
        None = 0,
        /// The writer clears WRITING with `Relaxed` instead of `Release`:
        /// readers can see "published" before the new pointer.
        PublishRelaxed = 1,
        /// The sleeping subscriber skips the `SeqCst` fence between setting
        /// its sleeping bit and re-reading the ring.
        NoSleepFence = 5,
        /// An abandoning writer records its lap without the ABANDONED flag:
        /// readers then take the stalled writer's event for the abandoned id.
        NoAbandonMark = 2,
        /// The writer skips the `SeqCst` fence it issues after publishing,
        /// before scanning sleepers.
        NoWakeFence = 6,
        /// The reader loads the slot's pointer before its state, so the
        /// pointer may belong to an older lap than the one it reserves.
        PtrBeforeState = 7,
        /// The reader reserves with a blind `fetch_add` instead of a CAS
        /// from the state it decided on, so it may count itself on a later
        /// lap while holding the old lap's pointer.
        BlindReserve = 8,
        /// The claiming writer ignores the reservations it took: readers
        /// that settle after the claim release a count nobody paid.
        NoPayReservations = 9,
        /// The writer releases a displaced event without looking for batch
        /// readers that may hold it.
        NoBatchGuard = 10,
        /// A batch reader takes whatever event is in the slot without
        /// re-checking the lap after loading the pointer.
        BatchNoRecheck = 11,
        /// Retired events are released while a batch reader is active.
        ReclaimIgnoresReaders = 12,
    }

    static CURRENT: AtomicU8 = AtomicU8::new(0);

    /// Selects the mutation for the next models run by this process.
    pub fn set(m: Mutation) {
        CURRENT.store(m as u8, Ordering::SeqCst);
    }

    pub(crate) fn is(m: Mutation) -> bool {
        CURRENT.load(Ordering::SeqCst) == m as u8
    }
}

/// Is the given protocol weakening active? Always `false` outside loom builds,
/// so the optimiser removes every branch that asks.
#[cfg(nexus_loom)]
macro_rules! mutated {
    ($m:ident) => {
        $crate::sync::mutation::is($crate::sync::mutation::Mutation::$m)
    };
}
#[cfg(not(nexus_loom))]
macro_rules! mutated {
    ($m:ident) => {
        false
    };
}
pub(crate) use mutated;

/// An invariant of the ring protocol: always checked in loom builds (which
/// run optimised), checked in debug builds, free in release builds.
#[cfg(nexus_loom)]
macro_rules! protocol_assert {
    ($($t:tt)*) => { assert!($($t)*) };
}
#[cfg(not(nexus_loom))]
macro_rules! protocol_assert {
    ($($t:tt)*) => { debug_assert!($($t)*) };
}
pub(crate) use protocol_assert;

/// Writes the id of an event allocated by the caller and not yet shared.
///
/// # Safety
/// `event` comes from [`Arc::into_raw`] on an `Arc` with one strong count,
/// and no other thread has seen the pointer.
#[cfg(not(nexus_loom))]
pub(crate) unsafe fn set_unshared_id(event: *const crate::event::Event, id: u64) {
    // SAFETY: the allocation is unique (caller), and `into_raw` keeps the
    // pointer's write permission (it comes from the allocation, not from a
    // shared reference).
    unsafe { (*(event as *mut crate::event::Event)).id = id };
}

/// Writes the id of an event allocated by the caller and not yet shared.
///
/// # Safety
/// As in normal builds.
#[cfg(nexus_loom)]
pub(crate) unsafe fn set_unshared_id(event: *const crate::event::Event, id: u64) {
    // SAFETY: forwarded from the caller.
    unsafe { crate::loom_support::Arc::with_unshared(event, |e| e.id = id) };
}
