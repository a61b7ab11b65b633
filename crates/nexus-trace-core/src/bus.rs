//! The public publishing handle.

use std::fmt;
use std::time::SystemTime;

use crate::event::Event;
use crate::ring::{Ring, MAX_CAPACITY};
use crate::subscription::Subscription;

/// A bounded, lock-free, multi-producer broadcast ring of [`Event`]s.
///
/// `Bus` is a cheap handle (one `Arc` clone); clones share the ring. Producers
/// call [`publish`](Bus::publish), which never blocks, never takes a lock and
/// never waits for a subscriber. Subscribers read the ring through their own
/// cursor ([`subscribe`](Bus::subscribe)); a subscriber that falls more than
/// [`capacity`](Bus::capacity) events behind is told exactly how many it
/// missed with [`Lagged`](crate::TryRecvError::Lagged).
///
/// When every `Bus` handle is dropped, subscribers drain what the ring still
/// holds and then see `Closed`.
///
/// ```
/// use nexus_trace_core::{Bus, Event};
///
/// let bus = Bus::new(1024);
/// let mut sub = bus.subscribe(0);
/// let id = bus.publish(Event::log("hello"));
/// let got = sub.try_recv().unwrap();
/// assert_eq!((got.id, got.message.as_str()), (id, "hello"));
/// ```
pub struct Bus {
    ring: std::sync::Arc<Ring>,
}

/// The requested capacity is zero or larger than [`Bus::MAX_CAPACITY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityError {
    /// The capacity that was asked for.
    pub requested: usize,
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bus capacity must be between 1 and {} events, got {}",
            Bus::MAX_CAPACITY,
            self.requested
        )
    }
}

impl std::error::Error for CapacityError {}

/// A snapshot of a bus's counters. Every field is monotonic except `subscribers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Events published so far (ids are dense, so this is the last id).
    pub published: u64,
    /// Events displaced from the ring by newer ones (`published - retained`,
    /// including dropped and abandoned ones).
    pub overwritten: u64,
    /// Events whose slot had already been taken by a later lap when their
    /// producer arrived (the producer was preempted for a whole lap).
    pub dropped: u64,
    /// Ids given up because an older producer was still writing their slot.
    pub abandoned: u64,
    /// Live subscriptions.
    pub subscribers: usize,
    /// Subscriptions registered for a wake-up: blocked in `recv`,
    /// `recv_timeout` or the `Stream` (a wait that timed out may still be
    /// counted until that subscription reads again).
    pub sleeping: usize,
}

impl Bus {
    /// The largest capacity [`Bus::new`] accepts: 2^24 events.
    pub const MAX_CAPACITY: usize = MAX_CAPACITY;

    /// Creates a bus retaining the last `capacity` events, rounded **up** to
    /// the next power of two (3 becomes 4, 257 becomes 512; 1 stays 1).
    ///
    /// # Panics
    /// When `capacity` is 0 or above [`Bus::MAX_CAPACITY`]; use
    /// [`Bus::try_new`] to get an error instead.
    pub fn new(capacity: usize) -> Bus {
        match Bus::try_new(capacity) {
            Ok(bus) => bus,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`Bus::new`], but returns an error for a zero or oversized capacity.
    pub fn try_new(capacity: usize) -> Result<Bus, CapacityError> {
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(CapacityError {
                requested: capacity,
            });
        }
        Ok(Bus {
            ring: std::sync::Arc::new(Ring::new(capacity.next_power_of_two())),
        })
    }

    /// Publishes an event and returns the id it was given.
    ///
    /// The id field of `event` is overwritten; a timestamp left at its default
    /// (`UNIX_EPOCH`) is set to now. Never blocks and never waits for a
    /// subscriber: a full ring overwrites its oldest event.
    pub fn publish(&self, mut event: Event) -> u64 {
        if event.timestamp == SystemTime::UNIX_EPOCH {
            event.timestamp = SystemTime::now();
        }
        self.ring.publish(event)
    }

    /// Subscribes from just after `since_id`: the first item is the event
    /// with id `since_id + 1`, or `Lagged(n)` if the ring no longer holds it.
    ///
    /// `since_id = 0` replays everything retained. A `since_id` beyond the
    /// last published id (for instance a client's `Last-Event-ID` from before
    /// a restart) is treated as the last published id, so the subscriber
    /// sees every new event rather than waiting for ids it may never reach.
    pub fn subscribe(&self, since_id: u64) -> Subscription {
        Subscription::new(self.ring.clone(), since_id)
    }

    /// Subscribes to events published from now on (no backlog).
    pub fn subscribe_latest(&self) -> Subscription {
        self.subscribe(u64::MAX)
    }

    /// The id of the last event claimed by a producer (0 if none yet).
    pub fn last_id(&self) -> u64 {
        self.ring.head()
    }

    /// The number of events the ring retains (a power of two).
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// A snapshot of the bus's counters.
    pub fn counters(&self) -> Counters {
        let published = self.ring.head();
        Counters {
            published,
            overwritten: published.saturating_sub(self.ring.capacity() as u64),
            dropped: self.ring.dropped(),
            abandoned: self.ring.abandoned(),
            subscribers: self.ring.registry.live(),
            sleeping: self.ring.registry.sleeping(),
        }
    }
}

impl Clone for Bus {
    fn clone(&self) -> Bus {
        self.ring.add_sender();
        Bus {
            ring: self.ring.clone(),
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        self.ring.remove_sender();
    }
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus")
            .field("capacity", &self.capacity())
            .field("last_id", &self.last_id())
            .finish_non_exhaustive()
    }
}
