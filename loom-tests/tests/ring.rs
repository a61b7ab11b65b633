//! Loom models of the ring protocol (see `crates/nexus-trace-core/src/ring.rs`).
//!
//! Run with:
//! `RUSTFLAGS="--cfg nexus_loom" CARGO_TARGET_DIR=target-loom cargo test -p nexus-trace-loom-tests --release -- --test-threads=1`
//!
//! Every model asserts in every execution: tiling (delivered ids and `Lagged`
//! ranges cover `[since + 1, last]` exactly, increasing, no duplicate),
//! `event.id == want` (checked inside the ring), no use of a released event
//! and no double release (the checked `Arc` of `loom_support`, which also
//! reuses freed addresses at once and keeps payloads in loom cells), no leak,
//! and no lost wake-up (subscribers block in `recv`; a missed wake is a loom
//! deadlock). Each model also runs under the mutations that must break it,
//! and each of those runs must fail with the message of the property it
//! breaks, not with any panic.
//!
//! Limits: loom explores interleavings and stale loads, but not every C11
//! behaviour: no load-buffering cycles, and read-modify-writes on one
//! location are ordered as they execute. Orderings whose only purpose is to
//! rule those out (the pointer load's Acquire against a later lap's swap, the
//! settle's Release against the claim's Acquire) are argued in `ring.rs`
//! rather than tested here. Exploration is bounded at two preemptions per
//! execution (`LOOM_MAX_PREEMPTIONS`), as is usual for loom suites; every
//! interleaving within that bound is explored.
#![cfg(nexus_loom)]

use loom::future::block_on;
use nexus_trace_core::loom_support::live_objects;
use nexus_trace_core::sync::mutation::{self, Mutation};
use nexus_trace_core::{Bus, Event, RecvError, Subscription, TryRecvError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Event(u64),
    Lagged(u64),
}

/// Spawns a model thread with a stack large enough to unwind a failed
/// assertion (loom's default coroutine stack overflows while panicking).
fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> loom::thread::JoinHandle<T> {
    loom::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(f)
        .expect("spawn a model thread")
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

/// What a broken run must report: a substring of its panic message.
fn expected(m: Mutation) -> &'static [&'static str] {
    match m {
        Mutation::None => &[],
        // A reader takes the payload of a lap it did not check.
        // (With the pointer possibly older than the lap, the reader counts on
        // an event its reservation does not protect.)
        Mutation::PublishRelaxed => &[
            "ring protocol violated",
            "Causality violation",
            "use after free",
        ],
        Mutation::NoAbandonMark => &["ring protocol violated", "do not tile"],
        Mutation::NoSleepFence | Mutation::NoWakeFence => &["deadlock"],
        Mutation::PtrBeforeState | Mutation::BlindReserve => &[
            "use after free",
            "ring protocol violated",
            "Causality violation",
            "double free",
            "leaked events",
        ],
        Mutation::NoPayReservations => &["use after free", "double free"],
        Mutation::NoBatchGuard | Mutation::ReclaimIgnoresReaders => {
            &["use after free", "Causality violation"]
        }
        Mutation::BatchNoRecheck => &["ring protocol violated", "gap or duplicate", "do not tile"],
    }
}

fn panic_message(e: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = e.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = e.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "<non-string panic>".to_string()
    }
}

/// Runs `f` as a loom model under `m`: it must pass with `Mutation::None`
/// and fail under any other mutation with one of that mutation's messages.
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
        (m, Err(e)) => {
            let msg = panic_message(&*e);
            assert!(
                expected(m).iter().any(|want| msg.contains(want)),
                "{m:?} failed for another reason than the one it is named for: {msg}"
            );
        }
    }
}

// ---- models ----

/// A subscriber replays a backlog and continues live, racing a producer.
fn backlog_then_live() {
    let bus = Bus::new(2);
    publish(&bus);
    let mut sub = bus.subscribe(0);
    let producer = bus.clone();
    let p = spawn(move || {
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
    let p = spawn(move || {
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
    let pa = spawn(move || publish(&a));
    let pb = spawn(move || publish(&b));
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
    let p = spawn(move || {
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
    let pa = spawn(move || publish(&a));
    let pb = spawn(move || publish(&b));
    let items = recv_through(&mut sub, 2);
    pa.join().unwrap();
    pb.join().unwrap();
    assert_tiles(0, 2, &items);
}

/// A reader takes the payload while a producer displaces and releases it.
fn reader_racing_displacement() {
    let bus = Bus::new(1);
    publish(&bus);
    let mut sub = bus.subscribe(0);
    let producer = bus.clone();
    let p = spawn(move || {
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
    let p = spawn(move || {
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
    let p = spawn(move || {
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

/// Three subscriptions (two registry chunks under loom): two readers take
/// id 1 while a producer displaces it, so one claim may take and pay two
/// reservations; the third subscription only holds its entry.
fn writer_pays_two_readers() {
    let bus = Bus::new(1);
    publish(&bus);
    let mut a = bus.subscribe(0);
    let mut b = bus.subscribe(0);
    let idle = bus.subscribe(0);
    assert_eq!(bus.counters().subscribers, 3);
    let producer = bus.clone();
    let p = spawn(move || {
        publish(&producer);
    });
    let tb = spawn(move || first_item(&mut b));
    let got_a = first_item(&mut a);
    let got_b = tb.join().unwrap();
    p.join().unwrap();
    for got in [got_a, got_b] {
        assert!(matches!(got, Item::Event(1) | Item::Lagged(1)), "{got:?}");
    }
    drop(idle);
}

fn first_item(sub: &mut Subscription) -> Item {
    match sub.try_recv() {
        Ok(e) => Item::Event(e.id),
        Err(TryRecvError::Lagged(n)) => Item::Lagged(n),
        Err(e) => panic!("unexpected {e:?}"),
    }
}

/// A reader on capacity 1 may be preempted inside a read while two more
/// laps pass; the allocator hands event 1's address to event 3 (the ABA
/// case), and every read must still name the lap it checked.
fn reader_preempted_across_two_laps() {
    let bus = Bus::new(1);
    publish(&bus);
    let mut sub = bus.subscribe(0);
    let producer = bus.clone();
    let p = spawn(move || {
        publish(&producer);
        publish(&producer);
    });
    drop(bus);
    let items = recv_through(&mut sub, 3);
    p.join().unwrap();
    assert_tiles(0, 3, &items);
}

/// Three subscribers: one sleeps in `recv`, one is dropped (its entry
/// released) while the producer scans for sleepers, one subscribes later.
fn release_racing_wake() {
    let bus = Bus::new(2);
    let mut sleeper = bus.subscribe(0);
    let leaving = bus.subscribe(0);
    let producer = bus.clone();
    let p = spawn(move || {
        publish(&producer);
    });
    let l = spawn(move || drop(leaving));
    let items = recv_through(&mut sleeper, 1);
    let late = bus.subscribe(0);
    p.join().unwrap();
    l.join().unwrap();
    assert_tiles(0, 1, &items);
    assert_eq!(bus.counters().subscribers, 2);
    drop(late);
}

/// The last `Bus` handle is dropped while another clone is still
/// publishing: subscribers drain both events, then see `Closed`.
fn close_racing_a_writer() {
    let bus = Bus::new(2);
    let mut sub = bus.subscribe(0);
    let writer = bus.clone();
    let p = spawn(move || {
        publish(&writer);
        drop(writer);
    });
    publish(&bus);
    drop(bus);
    let mut items = Vec::new();
    loop {
        match block_on(sub.recv()) {
            Ok(e) => items.push(Item::Event(e.id)),
            Err(RecvError::Lagged(n)) => items.push(Item::Lagged(n)),
            Err(RecvError::Closed) => break,
        }
    }
    p.join().unwrap();
    assert_tiles(0, 2, &items);
}

/// `subscribe_latest` races a publish: the subscription starts after the
/// head it saw and receives every later event.
fn subscribe_latest_racing_publish() {
    let bus = Bus::new(2);
    let producer = bus.clone();
    let p = spawn(move || {
        publish(&producer);
        publish(&producer);
    });
    let mut sub = bus.subscribe_latest();
    let since = sub.next_id() - 1;
    drop(bus);
    let items = recv_through(&mut sub, 2);
    p.join().unwrap();
    assert_tiles(since, 2, &items);
}

/// A batch read replays a backlog while a producer displaces the events it
/// is reading (capacity 2): the batch guard keeps them alive, the lap re-check
/// turns a replaced slot into lag, and what the batch and the following
/// reads deliver still tiles.
fn batch_read_racing_displacement() {
    let bus = Bus::new(2);
    publish(&bus);
    publish(&bus);
    let mut sub = bus.subscribe(0);
    let producer = bus.clone();
    let p = spawn(move || {
        publish(&producer);
        publish(&producer);
    });
    let mut got = Vec::new();
    let mut items = match sub.try_recv_many(&mut got, 4) {
        Ok(_) => got.iter().map(|e| Item::Event(e.id)).collect(),
        Err(TryRecvError::Lagged(n)) => vec![Item::Lagged(n)],
        Err(e) => panic!("unexpected {e:?}"),
    };
    drop(got);
    p.join().unwrap();
    items.extend(drain_through(&mut sub, 4));
    assert_tiles(0, 4, &items);
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
    backlog_then_live => [PublishRelaxed, PtrBeforeState];
    subscribe_racing_publishes => [NoSleepFence];
    two_producers_capacity_one => [NoAbandonMark];
    no_lost_wakeup => [NoWakeFence];
    no_lost_wakeup_on_abandonment => [NoSleepFence];
    reader_racing_displacement => [BlindReserve, NoPayReservations];
    exact_lag_count => [NoSleepFence];
    teardown_while_reading => [NoSleepFence];
    writer_pays_two_readers => [NoPayReservations, BlindReserve];
    reader_preempted_across_two_laps => [PtrBeforeState, BlindReserve];
    release_racing_wake => [NoWakeFence];
    close_racing_a_writer => [NoSleepFence];
    subscribe_latest_racing_publish => [NoSleepFence];
    batch_read_racing_displacement => [NoBatchGuard, BatchNoRecheck, ReclaimIgnoresReaders];
}
