//! The subscriber registry: one entry per live [`Subscription`], each with a
//! waker, grouped in chunks whose `in_use` and `sleeping` words let a
//! producer check 64 subscribers with one load. Producers look here only to
//! wake sleepers; payload reclamation never involves the registry (see
//! `ring.rs`).
//!
//! Chunks are appended lock-free and never freed before the ring, so an entry
//! reference stays valid for as long as the ring's `Arc` is held.
//!
//! [`Subscription`]: crate::Subscription

use std::ptr;

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicPtr, AtomicU64, AtomicWaker, Ordering};

/// Entries per chunk (one bit each in `in_use` and `sleeping`). Loom models
/// use two so that growth is explored too.
#[cfg(not(nexus_loom))]
pub(crate) const CHUNK: usize = 64;
#[cfg(nexus_loom)]
pub(crate) const CHUNK: usize = 2;

/// One subscriber's shared state. Padded: owners register wakers on
/// their own line, so subscribers going to sleep never contend.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Woken by producers when the owner's sleeping bit is set.
    pub(crate) waker: AtomicWaker,
}

#[derive(Debug)]
pub(crate) struct Chunk {
    /// Bit i set while entry i belongs to a subscription.
    pub(crate) in_use: CachePadded<AtomicU64>,
    /// Bit i set while entry i's owner waits for a wake-up.
    pub(crate) sleeping: CachePadded<AtomicU64>,
    pub(crate) entries: Box<[CachePadded<Entry>]>,
    next: AtomicPtr<Chunk>,
}

impl Chunk {
    fn new() -> Self {
        Chunk {
            in_use: CachePadded::new(AtomicU64::new(0)),
            sleeping: CachePadded::new(AtomicU64::new(0)),
            entries: (0..CHUNK)
                .map(|_| {
                    CachePadded::new(Entry {
                        waker: AtomicWaker::new(),
                    })
                })
                .collect(),
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The chunk after this one, if any.
    pub(crate) fn next(&self) -> Option<&Chunk> {
        // Acquire: pairs with the AcqRel CAS that linked the chunk, so its
        // initialised contents are visible.
        let next = self.next.load(Ordering::Acquire);
        // SAFETY: linked chunks are owned by the registry and freed only in
        // its `Drop`, which needs `&mut self`, so not while `&self` lives.
        unsafe { next.as_ref() }
    }
}

/// Where a subscription's entry lives: a chunk and a bit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Handle {
    chunk: *const Chunk,
    index: usize,
}

// SAFETY: the handle points into the registry, which is `Sync`; it is only
// dereferenced while the owning ring is alive (see `Registry::chunk`).
unsafe impl Send for Handle {}
// SAFETY: as above.
unsafe impl Sync for Handle {}

impl Handle {
    pub(crate) fn bit(&self) -> u64 {
        1 << self.index
    }
    pub(crate) fn index(&self) -> usize {
        self.index
    }
}

#[derive(Debug)]
pub(crate) struct Registry {
    head: Chunk,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Registry { head: Chunk::new() }
    }

    /// Iterates over every chunk, head first.
    pub(crate) fn chunks(&self) -> impl Iterator<Item = &Chunk> {
        std::iter::successors(Some(&self.head), |c| c.next())
    }

    /// The chunk a handle refers to.
    pub(crate) fn chunk(&self, h: Handle) -> &Chunk {
        // SAFETY: `h` was returned by `acquire` on this registry; chunks are
        // freed only when the registry is dropped, which cannot happen while
        // `&self` is borrowed.
        unsafe { &*h.chunk }
    }

    /// Takes a free entry, growing the registry when every entry is in use.
    pub(crate) fn acquire(&self) -> Handle {
        let mut chunk = &self.head;
        loop {
            // Relaxed: only a hint; the CAS below decides.
            let used = chunk.in_use.load(Ordering::Relaxed);
            let free = !used & full_mask();
            if free != 0 {
                let bit = free & free.wrapping_neg();
                // Acquire: pairs with the Release in `release`, so the
                // previous owner's last writes to the entry happen before ours.
                if chunk
                    .in_use
                    .compare_exchange_weak(used, used | bit, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Handle {
                        chunk,
                        index: bit.trailing_zeros() as usize,
                    };
                }
                continue;
            }
            chunk = match chunk.next() {
                Some(next) => next,
                None => {
                    let fresh = Box::into_raw(Box::new(Chunk::new()));
                    // AcqRel: Release publishes the new chunk's contents;
                    // Acquire (also on failure) sees the winner's contents.
                    match chunk.next.compare_exchange(
                        ptr::null_mut(),
                        fresh,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        // SAFETY: just linked; lives as long as the registry.
                        Ok(_) => unsafe { &*fresh },
                        Err(winner) => {
                            // SAFETY: `fresh` was never shared; we own it.
                            drop(unsafe { Box::from_raw(fresh) });
                            // SAFETY: linked chunk, lives as long as the registry.
                            unsafe { &*winner }
                        }
                    }
                }
            };
        }
    }

    /// Returns an entry to the free pool.
    pub(crate) fn release(&self, h: Handle) {
        let chunk = self.chunk(h);
        // Relaxed: a stale sleeping bit only causes a spurious wake.
        chunk.sleeping.fetch_and(!h.bit(), Ordering::Relaxed);
        drop(chunk.entries[h.index].waker.take());
        // Release: our last writes to the entry happen before the next
        // owner's Acquire in `acquire`.
        chunk.in_use.fetch_and(!h.bit(), Ordering::Release);
    }

    /// Number of entries currently owned by subscriptions.
    pub(crate) fn live(&self) -> usize {
        self.chunks()
            // Relaxed: a statistic.
            .map(|c| c.in_use.load(Ordering::Relaxed).count_ones() as usize)
            .sum()
    }

    /// Number of entries whose sleeping bit is set: subscriptions registered
    /// for a wake-up (a bit can outlive a wait that timed out).
    pub(crate) fn sleeping(&self) -> usize {
        self.chunks()
            // Relaxed: a statistic.
            .map(|c| c.sleeping.load(Ordering::Relaxed).count_ones() as usize)
            .sum()
    }

    /// Wakes every sleeping subscriber. The caller has issued the `SeqCst`
    /// fence that orders its state change before this scan.
    pub(crate) fn wake_sleepers(&self) {
        for chunk in self.chunks() {
            // Relaxed: ordered after the caller's SeqCst fence; see ring.rs,
            // "Waking sleepers".
            if chunk.sleeping.load(Ordering::Relaxed) == 0 {
                continue;
            }
            // Acquire: the owner registered its waker before setting the bit
            // with Release; whoever clears a bit wakes that entry.
            let mut woken = chunk.sleeping.swap(0, Ordering::Acquire);
            while woken != 0 {
                let i = woken.trailing_zeros() as usize;
                woken &= woken - 1;
                chunk.entries[i].waker.wake();
            }
        }
    }
}

fn full_mask() -> u64 {
    if CHUNK == 64 {
        u64::MAX
    } else {
        (1u64 << CHUNK) - 1
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Relaxed: `&mut self` means no other thread can touch the registry.
        let mut next = self.head.next.load(Ordering::Relaxed);
        while !next.is_null() {
            // SAFETY: every linked chunk came from `Box::into_raw` in
            // `acquire` and is freed exactly once, here.
            let chunk = unsafe { Box::from_raw(next) };
            // Relaxed: as above.
            next = chunk.next.load(Ordering::Relaxed);
        }
    }
}
