//! The adapter's runtime clock, as the event-stream session needs it: the
//! core has no runtime of its own.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;

/// Sleeps on the adapter's runtime (tokio's `sleep` in both adapters).
pub trait Timer {
    /// A sleep that can be moved to a new deadline.
    type Sleep: Future<Output = ()>;

    /// A sleep ending `after` from now.
    fn sleep(&self, after: Duration) -> Self::Sleep;

    /// Moves `sleep` to end `after` from now (it may have ended already).
    fn reset(&self, sleep: Pin<&mut Self::Sleep>, after: Duration);
}

/// A sleep that is armed and disarmed repeatedly, allocated once.
pub(crate) struct Deadline<T: Timer> {
    sleep: Option<Pin<Box<T::Sleep>>>,
    armed: bool,
}

impl<T: Timer> Deadline<T> {
    pub(crate) fn new() -> Self {
        Deadline {
            sleep: None,
            armed: false,
        }
    }

    /// Starts the countdown unless it is running.
    pub(crate) fn arm(&mut self, timer: &T, after: Duration) {
        if self.armed {
            return;
        }
        self.armed = true;
        match &mut self.sleep {
            Some(sleep) => timer.reset(sleep.as_mut(), after),
            None => self.sleep = Some(Box::pin(timer.sleep(after))),
        }
    }

    /// Stops the countdown.
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }

    /// Ready when armed and expired.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match (&mut self.sleep, self.armed) {
            (Some(sleep), true) => sleep.as_mut().poll(cx),
            _ => Poll::Pending,
        }
    }
}

impl<T: Timer> std::fmt::Debug for Deadline<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deadline")
            .field("armed", &self.armed)
            .finish_non_exhaustive()
    }
}

/// Keep-alive ticks every `period` (the first after one period); a late
/// poll yields one tick, not a burst of missed ones.
pub struct Ticks<T: Timer> {
    timer: T,
    period: Duration,
    sleep: Pin<Box<T::Sleep>>,
}

impl<T: Timer> Ticks<T> {
    /// Ticks from `timer` every `period`.
    pub fn new(timer: T, period: Duration) -> Self {
        let sleep = Box::pin(timer.sleep(period));
        Ticks {
            timer,
            period,
            sleep,
        }
    }
}

impl<T: Timer> std::fmt::Debug for Ticks<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticks")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl<T: Timer + Unpin> Stream for Ticks<T> {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        // Unpin: the sleep is boxed.
        let this = self.get_mut();
        match this.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.timer.reset(this.sleep.as_mut(), this.period);
                Poll::Ready(Some(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
