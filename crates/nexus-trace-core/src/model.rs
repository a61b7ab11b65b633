//! The delivery contract as a sequential reference model.
//!
//! [`RingModel`] is what a [`Bus`](crate::Bus) does when operations happen
//! one at a time: a deque of retained ids and one cursor per subscriber. The
//! property tests and the `bus_model` fuzz target run random operation
//! sequences against both and require identical answers, including every
//! `Lagged(n)`.

use std::collections::VecDeque;

use crate::TryRecvError;

/// A single-threaded specification of the ring.
#[derive(Debug, Clone)]
pub struct RingModel {
    capacity: u64,
    retained: VecDeque<u64>,
    head: u64,
}

impl RingModel {
    /// A model of a bus created with `Bus::new(capacity)` (rounded up alike).
    pub fn new(capacity: usize) -> RingModel {
        RingModel {
            capacity: capacity.max(1).next_power_of_two() as u64,
            retained: VecDeque::new(),
            head: 0,
        }
    }

    /// Publishes one event and returns its id.
    pub fn publish(&mut self) -> u64 {
        self.head += 1;
        self.retained.push_back(self.head);
        if self.retained.len() as u64 > self.capacity {
            self.retained.pop_front();
        }
        self.head
    }

    /// The last published id.
    pub fn last_id(&self) -> u64 {
        self.head
    }

    /// The cursor a subscription from `since` starts at.
    pub fn subscribe(&self, since: u64) -> u64 {
        since.min(self.head) + 1
    }

    /// What `try_recv` returns for a subscriber at `cursor` (which it moves).
    /// `Ok` carries the delivered id.
    pub fn try_recv(&self, cursor: &mut u64) -> Result<u64, TryRecvError> {
        if *cursor > self.head {
            return Err(TryRecvError::Empty);
        }
        let oldest = self.retained.front().copied().unwrap_or(self.head + 1);
        if *cursor < oldest {
            let n = oldest - *cursor;
            *cursor = oldest;
            return Err(TryRecvError::Lagged(n));
        }
        let id = *cursor;
        *cursor += 1;
        Ok(id)
    }
}
