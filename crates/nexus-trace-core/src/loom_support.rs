//! A checked twin of `std::sync::Arc` for loom models (cfg `nexus_loom` only).
//!
//! loom's own `Arc` does not notice a reference count taken on an object that
//! was already released, and a real use-after-free in a model process is
//! undefined behaviour, not a test failure. This twin never returns memory to
//! the allocator while a model runs; it drops the value when the count reaches
//! zero, marks the object freed, and panics on any later count change. The
//! count itself is a loom atomic, so loom explores its orderings.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicIsize};

use loom::sync::atomic::{fence, AtomicUsize, Ordering};

/// Objects created and not yet released, across the whole process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

/// Number of payload objects currently alive. A model that ends with every
/// handle dropped must see zero (no leak).
pub fn live_objects() -> isize {
    LIVE.load(std::sync::atomic::Ordering::SeqCst)
}

#[repr(C)]
struct Inner<T> {
    // First field, so a pointer to `Inner<T>` is a pointer to `T`.
    value: ManuallyDrop<T>,
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

impl<T> Arc<T> {
    /// Allocates a new object with one strong count.
    pub fn new(value: T) -> Self {
        LIVE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let inner = Box::new(Inner {
            value: ManuallyDrop::new(value),
            count: AtomicUsize::new(1),
            freed: AtomicBool::new(false),
        });
        Arc {
            ptr: NonNull::from(Box::leak(inner)),
        }
    }

    fn inner(&self) -> &Inner<T> {
        // SAFETY: the allocation is never returned to the allocator.
        unsafe { self.ptr.as_ref() }
    }

    /// Gives up the handle without changing the count.
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
            !arc.inner().freed.load(std::sync::atomic::Ordering::SeqCst),
            "use after free: from_raw on a released event"
        );
        arc
    }

    /// Adds one count to the object behind `ptr`.
    ///
    /// # Safety
    /// `ptr` must come from `into_raw`; the protocol must guarantee liveness.
    pub unsafe fn increment_strong_count(ptr: *const T) {
        // SAFETY: the allocation is never freed during a model.
        let inner = unsafe { &*(ptr as *const Inner<T>) };
        assert!(
            !inner.freed.load(std::sync::atomic::Ordering::SeqCst),
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
        let inner = self.inner();
        assert!(
            !inner.freed.load(std::sync::atomic::Ordering::SeqCst),
            "double free of an event"
        );
        if inner.count.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        inner.freed.store(true, std::sync::atomic::Ordering::SeqCst);
        LIVE.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        // SAFETY: the count reached zero, so this is the last handle; the
        // value is dropped once (freed is now set and checked by every entry).
        unsafe { ManuallyDrop::drop(&mut (*self.ptr.as_ptr()).value) };
    }
}

impl<T> Deref for Arc<T> {
    type Target = T;
    fn deref(&self) -> &T {
        assert!(
            !self.inner().freed.load(std::sync::atomic::Ordering::SeqCst),
            "use after free: deref of a released event"
        );
        &self.inner().value
    }
}

impl<T: fmt::Debug> fmt::Debug for Arc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
