//! Loom models of the ring protocol (see `crates/nexus-trace-core/src/ring.rs`).
//!
//! Run with:
//! `RUSTFLAGS="--cfg nexus_loom" CARGO_TARGET_DIR=target-loom cargo test -p nexus-trace-loom-tests --release -- --test-threads=1`
//!
//! Every model asserts in every execution: tiling (delivered ids and `Lagged`
//! ranges cover `[since + 1, last]` exactly, increasing, no duplicate),
//! `event.id == want` (checked inside the ring), no use of a released event
//! and no double release (the checked `Arc` of `loom_support`), no leak, and
//! no lost wake-up (subscribers block in `recv`; a missed wake is a loom
//! deadlock). Each model also runs under the mutation that must break it.
//!
//! Limits: loom explores interleavings and stale loads, but not every C11
//! behaviour (no load-buffering cycles, SeqCst accesses treated as AcqRel),
//! so orderings whose only purpose is to rule out load buffering (the slot
//! claim's Acquire) are argued in `ring.rs` rather than tested here.
#![cfg(nexus_loom)]

use loom::future::block_on;
use loom::thread;
use nexus_trace_core::loom_support::live_objects;
use nexus_trace_core::sync::mutation::{self, Mutation};
use nexus_trace_core::{Bus, Event, RecvError, Subscription, TryRecvError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Event(u64),
    Lagged(u64),
}

fn publish(bus: &Bus) -> u64 {
    bus.publish(Event::default())
}

/// Blocks (in loom) until the cursor passes `last` or the bus closes.
fn recv_through(sub: &mut Subscription, last: u64) -> Vec<Item> {
    let mut items = Vec::new();
    while sub.next_id() <= last {
        match block_on(sub.recv()) {
            Ok(e) => items.push(Item::Event(e.id)),
            Err(RecvError::Lagged(n)) => items.push(Item::Lagged(n)),
            Err(RecvError::Closed) => break,
        }
    }
    items
}

/// Reads without blocking until the cursor passes `last` (producers must be done).
fn drain_through(sub: &mut Subscription, last: u64) -> Vec<Item> {
    let mut items = Vec::new();
    while sub.next_id() <= last {
        match sub.try_recv() {
            Ok(e) => items.push(Item::Event(e.id)),
            Err(TryRecvError::Lagged(n)) => items.push(Item::Lagged(n)),
            Err(e) => panic!("{e:?} with cursor {} <= last {last}", sub.next_id()),
        }
    }
    items
}

/// The delivery contract: items tile `[since + 1, last]` exactly.
fn assert_tiles(since: u64, last: u64, items: &[Item]) {
    let mut next = since + 1;
    for item in items {
        match *item {
            Item::Event(id) => {
                assert_eq!(id, next, "gap or duplicate in {items:?} (since {since})");
                next += 1;
            }
            Item::Lagged(n) => {
                assert!(n > 0, "empty lag in {items:?}");
                next += n;
            }
        }
    }
    assert_eq!(
        next,
        last + 1,
        "items {items:?} do not tile ({since}, {last}]"
    );
}

/// Runs `f` as a loom model under `m`: it must pass with `Mutation::None`
/// and fail with any other mutation.
fn check(m: Mutation, f: impl Fn() + Sync + Send + 'static) {
    mutation::set(m);
    let f = std::sync::Arc::new(f);
    let run = {
        let f = f.clone();
        move || {
            let mut builder = loom::model::Builder::new();
            builder.preemption_bound = Some(2);
            builder.check(move || {
                let base = live_objects();
                f();
                assert_eq!(live_objects(), base, "leaked events");
            });
        }
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
    mutation::set(Mutation::None);
    match (m, result) {
        (Mutation::None, Err(e)) => std::panic::resume_unwind(e),
        (Mutation::None, Ok(())) => {}
        (m, Ok(())) => panic!("loom did not catch {m:?}: the model explores too little"),
        (_, Err(_)) => {}
    }
}

// ---- models ----

/// A subscriber replays a backlog and continues live, racing a producer.
fn backlog_then_live() {
    let bus = Bus::new(2);
    publish(&bus);
    let mut sub = bus.subscribe(0);
    let producer = bus.clone();
    let p = thread::spawn(move || {
        publish(&producer);
        publish(&producer);
    });
    drop(bus);
    let items = recv_through(&mut sub, 3);
    p.join().unwrap();
    assert_tiles(0, 3, &items);
}

/// `subscribe(since)` races publishes: whatever since it captures, it tiles.
fn subscribe_racing_publishes() {
    let bus = Bus::new(2);
    let producer = bus.clone();
    let p = thread::spawn(move || {
        publish(&producer);
        publish(&producer);
    });
    let since = bus.last_id();
    let mut sub = bus.subscribe(since);
    drop(bus);
    let items = recv_through(&mut sub, 2);
    p.join().unwrap();
    assert_tiles(since, 2, &items);
}

/// Two producers on capacity 1 (overwrite, drop and abandonment) with a
/// concurrent reader; afterwards the counters explain every missing id.
fn two_producers_capacity_one() {
    let bus = Bus::new(1);
    let mut sub = bus.subscribe(0);
    let a = bus.clone();
    let b = bus.clone();
    let pa = thread::spawn(move || publish(&a));
    let pb = thread::spawn(move || publish(&b));
    let first = match sub.try_recv() {
        Ok(e) => vec![Item::Event(e.id)],
        Err(TryRecvError::Lagged(n)) => vec![Item::Lagged(n)],
        Err(_) => vec![],
    };
    pa.join().unwrap();
    pb.join().unwrap();
    let mut items = first;
    items.extend(drain_through(&mut sub, 2));
    assert_tiles(0, 2, &items);
    let c = bus.counters();
    assert!(c.dropped + c.abandoned <= 1, "{c:?}");
    if c.dropped + c.abandoned == 1 {
        assert!(!items.contains(&Item::Event(2)) || !items.contains(&Item::Event(1)));
    }
}

/// A subscriber blocks before the producer publishes: it must be woken.
fn no_lost_wakeup() {
    let bus = Bus::new(2);
    let mut sub = bus.subscribe(0);
    let producer = bus.clone();
    let p = thread::spawn(move || {
        publish(&producer);
    });
    let items = recv_through(&mut sub, 1);
    p.join().unwrap();
    drop(bus);
    assert_tiles(0, 1, &items);
}

/// The subscriber waits on a slot two producers fight over (capacity 1); the
/// abandonment path must not strand it.
fn no_lost_wakeup_on_abandonment() {
    let bus = Bus::new(1);
    let mut sub = bus.subscribe(0);
    let a = bus.clone();
    let b = bus.clone();
    drop(bus);
    let pa = thread::spawn(move || publish(&a));
    let pb = thread::spawn(move || publish(&b));
    let items = recv_through(&mut sub, 2);
    pa.join().unwrap();
    pb.join().unwrap();
    assert_tiles(0, 2, &items);
}

/// A reader takes the payload while a producer displaces and releases it.
fn hazard_reclaim() {
    let bus = Bus::new(1);
    publish(&bus);
    let mut sub = bus.subscribe(0);
    let producer = bus.clone();
    let p = thread::spawn(move || {
        publish(&producer);
    });
    let got = sub.try_recv();
    p.join().unwrap();
    match got {
        Ok(e) => assert_eq!(e.id, 1),
        Err(TryRecvError::Lagged(1)) => {}
        Err(e) => panic!("unexpected {e:?}"),
    }
}

/// A reader on capacity 1 falls behind a burst: every lag count is exact.
fn exact_lag_count() {
    let bus = Bus::new(1);
    let mut sub = bus.subscribe(0);
    let producer = bus.clone();
    let p = thread::spawn(move || {
        for _ in 0..3 {
            publish(&producer);
        }
    });
    drop(bus);
    let items = recv_through(&mut sub, 3);
    p.join().unwrap();
    assert_tiles(0, 3, &items);
}

/// The last bus handle goes away while a subscriber reads: it drains what is
/// retained, then sees `Closed`; nothing leaks.
fn teardown_while_reading() {
    let bus = Bus::new(2);
    let mut sub = bus.subscribe(0);
    let p = thread::spawn(move || {
        publish(&bus);
        drop(bus);
    });
    let mut items = Vec::new();
    loop {
        match block_on(sub.recv()) {
            Ok(e) => items.push(Item::Event(e.id)),
            Err(RecvError::Lagged(n)) => items.push(Item::Lagged(n)),
            Err(RecvError::Closed) => break,
        }
    }
    p.join().unwrap();
    assert_tiles(0, 1, &items);
}

// ---- each model passes, and fails under the weakening it exists to catch ----

macro_rules! models {
    ($($name:ident => [$($broken:ident),+];)+) => {
        mod correct {
            $(#[test] fn $name() { crate::check(crate::Mutation::None, crate::$name); })+
        }
        mod broken {
            $(mod $name {
                $(
                    #[test]
                    #[allow(non_snake_case)]
                    fn $broken() { crate::check(crate::Mutation::$broken, crate::$name); }
                )+
            })+
        }
    };
}

models! {
    backlog_then_live => [PublishRelaxed];
    subscribe_racing_publishes => [NoSleepFence];
    two_producers_capacity_one => [NoAbandonMark];
    no_lost_wakeup => [NoWakeFence];
    no_lost_wakeup_on_abandonment => [NoSleepFence];
    hazard_reclaim => [NoReaderFence, NoHazardScan];
    exact_lag_count => [NoWakeFence];
    teardown_while_reading => [NoSleepFence];
}
