//! A checked twin of `std::sync::Arc` for loom models (cfg `nexus_loom` only).
//!
//! loom's own `Arc` does not notice a reference count taken on an object that
//! was already released, and a real use-after-free in a model process is
//! undefined behaviour, not a test failure. This twin:
//!
//! * marks an object freed when its count reaches zero and panics on any
//!   later count change or access while it stays freed;
//! * **recycles freed allocations at once** (last freed, first reused), so
//!   a stale pointer soon names a *new* object at the same address: the ABA
//!   case that allocators with per-thread caches produce in real programs;
//! * keeps the value in a loom `UnsafeCell`, so a read of an event's fields
//!   without a happens-before edge to their writes (including the writes of
//!   a newer object at a reused address) is reported by loom;
//! * counts live objects, so a model can assert that nothing leaked.
//!
//! The count itself is a loom atomic, so loom explores its orderings.

use std::alloc::Layout;
use std::cell::RefCell;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicIsize};

use loom::cell::UnsafeCell;
use loom::sync::atomic::{fence, AtomicUsize, Ordering};

/// Objects created and not yet released, across the whole process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    /// Freed allocations, reused last-in first-out (loom runs every model
    /// thread on the thread that called `model`).
    static POOL: RefCell<Vec<(Layout, usize)>> = const { RefCell::new(Vec::new()) };
}

/// Number of payload objects currently alive. A model that ends with every
/// handle dropped must see zero (no leak).
pub fn live_objects() -> isize {
    LIVE.load(std::sync::atomic::Ordering::SeqCst)
}

struct Inner<T> {
    value: UnsafeCell<ManuallyDrop<T>>,
    count: AtomicUsize,
    freed: AtomicBool,
}

/// Checked reference-counted pointer used in loom builds.
pub struct Arc<T> {
    ptr: NonNull<Inner<T>>,
}

// SAFETY: the same bounds as std's `Arc`: the value is shared between threads.
unsafe impl<T: Send + Sync> Send for Arc<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for Arc<T> {}

fn is_freed<T>(inner: &Inner<T>) -> bool {
    inner.freed.load(std::sync::atomic::Ordering::SeqCst)
}

impl<T> Arc<T> {
    /// Allocates a new object with one strong count, at the address of the
    /// most recently freed one when there is one.
    pub fn new(value: T) -> Self {
        LIVE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let layout = Layout::new::<Inner<T>>();
        let reused = POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            let at = pool.iter().rposition(|(l, _)| *l == layout)?;
            Some(pool.remove(at).1 as *mut Inner<T>)
        });
        let raw = reused.unwrap_or_else(|| {
            // SAFETY: `Inner<T>` is not zero-sized (it holds two atomics).
            let p = unsafe { std::alloc::alloc(layout) } as *mut Inner<T>;
            assert!(!p.is_null(), "allocation failed");
            p
        });
        // SAFETY: `raw` is a live allocation for `Inner<T>` that no handle
        // refers to (fresh, or freed and taken from the pool). The previous
        // occupant's fields are loom handles with nothing to drop.
        unsafe {
            raw.write(Inner {
                value: UnsafeCell::new(ManuallyDrop::new(value)),
                count: AtomicUsize::new(1),
                freed: AtomicBool::new(false),
            })
        };
        Arc {
            // SAFETY: non-null, checked or taken from the pool above.
            ptr: unsafe { NonNull::new_unchecked(raw) },
        }
    }

    fn inner(&self) -> &Inner<T> {
        // SAFETY: allocations are never returned to the system allocator.
        unsafe { self.ptr.as_ref() }
    }

    /// Gives up the handle without changing the count. The pointer is
    /// opaque: only this type's functions may use it.
    pub fn into_raw(this: Self) -> *const T {
        let p = this.ptr.as_ptr() as *const T;
        std::mem::forget(this);
        p
    }

    /// Re-creates a handle from [`Arc::into_raw`].
    ///
    /// # Safety
    /// `ptr` must come from `into_raw` and carry one count.
    pub unsafe fn from_raw(ptr: *const T) -> Self {
        let arc = Arc {
            // SAFETY: `ptr` came from `into_raw`, so it is non-null.
            ptr: unsafe { NonNull::new_unchecked(ptr as *mut Inner<T>) },
        };
        assert!(
            !is_freed(arc.inner()),
            "use after free: from_raw on a released event"
        );
        arc
    }

    /// Runs `f` on the value of an object no other thread has seen yet.
    ///
    /// # Safety
    /// `ptr` comes from `into_raw` and the caller holds the only handle.
    pub unsafe fn with_unshared<R>(ptr: *const T, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: allocations are never returned to the system allocator.
        let inner = unsafe { &*(ptr as *const Inner<T>) };
        assert!(
            !is_freed(inner),
            "use after free: write to a released event"
        );
        // SAFETY: unique access (caller); loom checks it.
        inner.value.with_mut(|v| f(unsafe { &mut **v }))
    }

    /// Adds one count to the object behind `ptr`.
    ///
    /// # Safety
    /// `ptr` must come from `into_raw`; the protocol must guarantee liveness.
    pub unsafe fn increment_strong_count(ptr: *const T) {
        // SAFETY: allocations are never returned to the system allocator.
        let inner = unsafe { &*(ptr as *const Inner<T>) };
        assert!(
            !is_freed(inner),
            "use after free: count taken on a released event"
        );
        let old = inner.count.fetch_add(1, Ordering::Relaxed);
        assert!(old > 0, "use after free: count taken on a released event");
    }

    /// Removes one count from the object behind `ptr`.
    ///
    /// # Safety
    /// `ptr` must come from `into_raw` and the caller must own one count.
    pub unsafe fn decrement_strong_count(ptr: *const T) {
        // SAFETY: forwarded from the caller.
        drop(unsafe { Self::from_raw(ptr) });
    }
}

impl<T> Clone for Arc<T> {
    fn clone(&self) -> Self {
        let old = self.inner().count.fetch_add(1, Ordering::Relaxed);
        assert!(old > 0, "clone of a released event");
        Arc { ptr: self.ptr }
    }
}

impl<T> Drop for Arc<T> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A model already failed; a second panic would abort the run.
            return;
        }
        let inner = self.inner();
        assert!(!is_freed(inner), "double free of an event");
        let old = inner.count.fetch_sub(1, Ordering::Release);
        assert!(old > 0, "double free of an event (count underflow)");
        if old != 1 {
            return;
        }
        fence(Ordering::Acquire);
        // SAFETY: the count reached zero, so this is the last handle; loom
        // reports any access to the value not ordered before this write.
        inner
            .value
            .with_mut(|v| unsafe { ManuallyDrop::drop(&mut *v) });
        inner.freed.store(true, std::sync::atomic::Ordering::SeqCst);
        LIVE.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        let layout = Layout::new::<Inner<T>>();
        POOL.with(|pool| pool.borrow_mut().push((layout, self.ptr.as_ptr() as usize)));
    }
}

impl<T> Deref for Arc<T> {
    type Target = T;
    fn deref(&self) -> &T {
        let inner = self.inner();
        assert!(
            !is_freed(inner),
            "use after free: deref of a released event"
        );
        // SAFETY: we hold a count, so the value is alive; loom records this
        // read and checks it against the value's writes.
        inner.value.with(|v| unsafe { &**v })
    }
}

impl<T: fmt::Debug> fmt::Debug for Arc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
