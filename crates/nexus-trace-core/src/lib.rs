//! A lock-free, bounded event bus for request-lifecycle tracing, with
//! exactly-once replay for reconnecting subscribers.
//!
//! Request handlers [`publish`](Bus::publish) [`Event`]s (request start and
//! end, downstream calls, logs) into a fixed ring; live subscribers such as a
//! dashboard read it through their own cursor.
//!
//! # Guarantees
//!
//! * **Producers never wait.** `publish` takes no lock, does no I/O and never
//!   waits for a subscriber; a full ring overwrites its oldest event. Its cost
//!   grows with the number of live subscribers (a few loads), never with the
//!   number of threads in the process.
//! * **Exactly once, or counted.** Ids are dense, start at 1 and follow claim
//!   order. A subscription from `since` yields events and `Lagged(n)` items
//!   that tile `[since + 1, ∞)`: strictly increasing, no id twice, every id
//!   either delivered or counted in exactly one `Lagged(n)`. Reconnecting with
//!   the last id you saw (`subscribe(last_seen)`) gives no gap and no duplicate
//!   for everything still retained.
//! * **Bounded memory.** The ring holds `capacity` events; a subscription
//!   holds none of its own.
//! * **No lost wake-ups.** A waiting subscriber is woken by the publish that
//!   makes its next item available, and by the close of the bus.
//!
//! The protocol and its proof are in the source of `ring.rs`; the loom models
//! in the repository's `loom-tests/` check it.
//!
//! ```
//! use nexus_trace_core::{Bus, Event, TryRecvError};
//!
//! let bus = Bus::new(4);
//! for i in 0..6 {
//!     bus.publish(Event::log(format!("m{i}")));
//! }
//! let mut sub = bus.subscribe(0); // replay from the start
//! assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Lagged(2)); // ids 1, 2 are gone
//! assert_eq!(sub.try_recv().unwrap().id, 3);
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod bus;
pub mod context;
mod event;
#[cfg(nexus_loom)]
#[doc(hidden)]
pub mod loom_support;
#[cfg(feature = "test-oracle")]
pub mod model;
mod registry;
mod ring;
mod subscription;
// Public only for the repository's loom models (`sync::mutation`); not part
// of the API.
#[doc(hidden)]
pub mod sync;
mod traceparent;
pub mod tree;

pub use bus::{Bus, CapacityError, Counters};
pub use context::{SpanBuilder, SpanContext, SpanGuard, SpanKind, TraceContext};
pub use event::{
    Attrs, Event, EventKind, EventParseError, GoFormatter, Method, Text, Value, W3cId, WireId,
    INLINE_CAPACITY,
};
pub use subscription::{RecvError, RecvTimeoutError, Subscription, TryRecvError};
pub use traceparent::{
    tracestate_is_valid, SpanId, TraceId, TraceParent, TraceParentError, MAX_TRACEPARENT_LEN,
    MAX_TRACESTATE_LEN,
};
pub use tree::TraceTree;
