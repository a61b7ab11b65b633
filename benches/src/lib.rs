//! The peers the nexus bus is measured against, on the same `Arc<Event>`
//! payload. Only benchmarks use this crate.
#![allow(missing_docs)]

use std::collections::VecDeque;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use nexus_trace_core::{Event, EventKind};
use parking_lot::Mutex;

/// Ends a deterministic bench run with `--check` on its command line: says
/// that every bound held, or prints each failure and exits with status 1.
/// Without `--check` it does nothing.
pub fn finish_check(bench: &str, failures: &[String]) {
    if !std::env::args().any(|a| a == "--check") {
        return;
    }
    if failures.is_empty() {
        println!("{bench} check: every bound holds");
        return;
    }
    for f in failures {
        eprintln!("{bench} check failed: {f}");
    }
    std::process::exit(1);
}

/// The payload every implementation publishes: an event with no heap
/// fields and a preset timestamp, so only the bus's own work is measured.
pub fn payload() -> Event {
    let mut event = Event::new(EventKind::Log);
    event.status = 200;
    event.timestamp = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
    event
}

/// The upstream Go design, ported faithfully: one mutex around a ring and
/// the subscriber list; every publish tries to send to every subscriber's
/// bounded channel and drops the event for a subscriber whose channel is full.
pub struct GoBus {
    inner: Mutex<GoInner>,
}

struct GoInner {
    ring: VecDeque<Arc<Event>>,
    capacity: usize,
    next_id: u64,
    subscribers: Vec<(u64, SyncSender<Arc<Event>>)>,
    next_sub: u64,
}

impl GoBus {
    pub fn new(capacity: usize) -> GoBus {
        GoBus {
            inner: Mutex::new(GoInner {
                ring: VecDeque::with_capacity(capacity),
                capacity,
                next_id: 0,
                subscribers: Vec::new(),
                next_sub: 0,
            }),
        }
    }

    pub fn publish(&self, mut event: Event) -> u64 {
        let mut inner = self.inner.lock();
        inner.next_id += 1;
        event.id = inner.next_id;
        let event = Arc::new(event);
        if inner.ring.len() == inner.capacity {
            inner.ring.pop_front();
        }
        inner.ring.push_back(event.clone());
        for (_, tx) in &inner.subscribers {
            match tx.try_send(event.clone()) {
                Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
            }
        }
        event.id
    }

    /// Backlog after `since` plus a channel for what follows.
    pub fn subscribe(
        &self,
        since: u64,
        buffer: usize,
    ) -> (Vec<Arc<Event>>, Receiver<Arc<Event>>, u64) {
        let (tx, rx) = sync_channel(buffer);
        let mut inner = self.inner.lock();
        let backlog = inner
            .ring
            .iter()
            .filter(|e| e.id > since)
            .cloned()
            .collect();
        inner.next_sub += 1;
        let key = inner.next_sub;
        inner.subscribers.push((key, tx));
        (backlog, rx, key)
    }

    pub fn unsubscribe(&self, key: u64) {
        self.inner.lock().subscribers.retain(|(k, _)| *k != key);
    }
}

/// A ring of `ArcSwapOption` slots: sound, lock-free, but every store walks
/// arc-swap's debt list, whose length grows with the threads that used it.
pub struct ArcSwapRing {
    next_id: AtomicU64,
    slots: Box<[ArcSwapOption<Event>]>,
    mask: u64,
}

impl ArcSwapRing {
    pub fn new(capacity: usize) -> ArcSwapRing {
        let capacity = capacity.next_power_of_two();
        ArcSwapRing {
            next_id: AtomicU64::new(0),
            slots: (0..capacity).map(|_| ArcSwapOption::empty()).collect(),
            mask: capacity as u64 - 1,
        }
    }

    pub fn publish(&self, mut event: Event) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        event.id = id;
        self.slots[(id & self.mask) as usize].store(Some(Arc::new(event)));
        id
    }

    pub fn read(&self, id: u64) -> Option<Arc<Event>> {
        self.slots[(id & self.mask) as usize]
            .load_full()
            .filter(|e| e.id == id)
    }

    pub fn last_id(&self) -> u64 {
        self.next_id.load(Ordering::Relaxed)
    }
}

/// The floor: allocate the `Arc`, one `fetch_add`, one pointer swap (and
/// release what it displaced). No subscriber can read this safely.
pub struct Floor {
    next_id: AtomicU64,
    slots: Box<[AtomicPtr<Event>]>,
    mask: u64,
}

impl Floor {
    pub fn new(capacity: usize) -> Floor {
        let capacity = capacity.next_power_of_two();
        Floor {
            next_id: AtomicU64::new(0),
            slots: (0..capacity)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
            mask: capacity as u64 - 1,
        }
    }

    pub fn publish(&self, mut event: Event) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        event.id = id;
        let new = Arc::into_raw(Arc::new(event)) as *mut Event;
        let old = self.slots[(id & self.mask) as usize].swap(new, Ordering::AcqRel);
        if !old.is_null() {
            // SAFETY: every pointer in a slot came from `Arc::into_raw` and
            // the swap transferred its count to us.
            drop(unsafe { Arc::from_raw(old) });
        }
        id
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        for slot in self.slots.iter() {
            let p = slot.swap(ptr::null_mut(), Ordering::AcqRel);
            if !p.is_null() {
                // SAFETY: as in `publish`.
                drop(unsafe { Arc::from_raw(p) });
            }
        }
    }
}
