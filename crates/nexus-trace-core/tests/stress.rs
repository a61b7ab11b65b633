//! Multi-threaded stress with a history checker.
//!
//! Several producers publish concurrently while subscribers read: one fast,
//! some resubscribing from their last seen id at random moments, one that
//! stalls. Every subscriber's history is checked: ids strictly increasing,
//! every gap covered by exactly one `Lagged(n)` of that size, every payload
//! equal to what the producer published under that id.
//!
//! Size: `NEXUS_STRESS_EVENTS` (default 2 000 000 in release builds, 100 000
//! in debug builds, 300 under Miri). Run the full size with
//! `cargo test --release -p nexus-trace-core --test stress`.

use std::thread;
use std::time::Duration;

use nexus_trace_core::{Bus, Event, EventKind, RecvTimeoutError, Subscription, TryRecvError};

const PRODUCERS: u64 = 4;

fn total_events() -> u64 {
    if let Some(n) = std::env::var("NEXUS_STRESS_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    if cfg!(miri) {
        300
    } else if cfg!(debug_assertions) {
        100_000
    } else {
        2_000_000
    }
}

/// A tiny deterministic RNG (xorshift64*), enough to pick moments.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn payload(producer: u64, seq: u64) -> u64 {
    (producer << 40) | seq
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Fast,
    Resubscribing,
    Stalled,
    /// Reads in batches of up to 64 (`try_recv_many`), waiting when empty.
    Batching,
}

#[derive(Default)]
struct History {
    delivered: Vec<(u64, u64)>,
    lagged: u64,
    lag_items: u64,
    resubscribes: u64,
}

fn subscriber(bus: Bus, total: u64, behaviour: Behaviour, seed: u64) -> History {
    let mut rng = Rng(seed);
    let mut sub: Subscription = bus.subscribe(0);
    let mut expected = 1u64;
    let mut h = History::default();
    while expected <= total {
        match behaviour {
            Behaviour::Resubscribing if rng.next().is_multiple_of(5_000) => {
                // Reconnect with the last id we saw: no gap, no duplicate.
                sub = bus.subscribe(expected - 1);
                h.resubscribes += 1;
            }
            Behaviour::Stalled if rng.next().is_multiple_of(50_000) => {
                thread::sleep(Duration::from_millis(20));
            }
            _ => {}
        }
        if behaviour == Behaviour::Batching {
            let mut batch = Vec::new();
            match sub.try_recv_many(&mut batch, 64) {
                Ok(_) => {
                    for e in batch {
                        assert_eq!(e.id, expected, "gap or duplicate in a batch");
                        h.delivered.push((e.id, e.duration_ns));
                        expected += 1;
                    }
                    continue;
                }
                Err(TryRecvError::Lagged(n)) => {
                    assert!(n > 0, "Lagged(0)");
                    expected += n;
                    h.lagged += n;
                    h.lag_items += 1;
                    continue;
                }
                Err(TryRecvError::Empty) => {}
                Err(e) => panic!("batching subscriber stuck at {expected}/{total}: {e}"),
            }
        }
        match sub.recv_timeout(Duration::from_secs(30)) {
            Ok(e) => {
                assert_eq!(
                    e.id, expected,
                    "gap or duplicate: got {}, want {expected}",
                    e.id
                );
                h.delivered.push((e.id, e.duration_ns));
                expected += 1;
            }
            Err(RecvTimeoutError::Lagged(n)) => {
                assert!(n > 0, "Lagged(0)");
                expected += n;
                h.lagged += n;
                h.lag_items += 1;
            }
            Err(e) => panic!("subscriber stuck at {expected}/{total}: {e}"),
        }
    }
    assert_eq!(expected, total + 1, "lag overshot the last id");
    h
}

#[test]
fn producers_and_subscribers_keep_the_delivery_contract() {
    let total = total_events();
    let per_producer = total / PRODUCERS;
    let total = per_producer * PRODUCERS;
    let bus = Bus::new(if cfg!(miri) { 16 } else { 1024 });

    let behaviours = [
        Behaviour::Fast,
        Behaviour::Resubscribing,
        Behaviour::Resubscribing,
        Behaviour::Stalled,
        Behaviour::Batching,
    ];
    let subs: Vec<_> = behaviours
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let bus = bus.clone();
            thread::spawn(move || subscriber(bus, total, b, 0x9E37_79B9 + i as u64))
        })
        .collect();

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let bus = bus.clone();
            thread::spawn(move || {
                (0..per_producer)
                    .map(|seq| {
                        let mut event = Event::new(EventKind::Log);
                        event.duration_ns = payload(p, seq);
                        bus.publish(event)
                    })
                    .collect::<Vec<u64>>()
            })
        })
        .collect();

    // Which payload each id carries, from the producers' own records.
    let mut payload_of = vec![u64::MAX; total as usize + 1];
    for (p, handle) in producers.into_iter().enumerate() {
        let ids = handle.join().unwrap();
        let mut last = 0;
        for (seq, id) in ids.into_iter().enumerate() {
            assert!(id > last, "a producer's ids must increase");
            last = id;
            payload_of[id as usize] = payload(p as u64, seq as u64);
        }
    }
    assert!(
        payload_of[1..].iter().all(|&p| p != u64::MAX),
        "ids are dense"
    );
    let counters = bus.counters();
    assert_eq!(counters.published, total);

    for (handle, behaviour) in subs.into_iter().zip(behaviours) {
        let h = handle.join().unwrap();
        for &(id, got) in &h.delivered {
            assert_eq!(got, payload_of[id as usize], "payload mismatch for id {id}");
        }
        assert_eq!(h.delivered.len() as u64 + h.lagged, total);
        if let Behaviour::Fast = behaviour {
            eprintln!(
                "fast subscriber: {} delivered, {} lagged in {} lag items",
                h.delivered.len(),
                h.lagged,
                h.lag_items
            );
        } else {
            eprintln!(
                "subscriber: {} delivered, {} lagged in {} items, {} resubscribes",
                h.delivered.len(),
                h.lagged,
                h.lag_items,
                h.resubscribes
            );
        }
    }
    eprintln!("counters: {counters:?}");
}

#[test]
fn producers_finish_when_every_subscriber_is_stalled() {
    let total = total_events() / 4;
    let bus = Bus::new(64);
    // Subscriptions that never read, and one blocked reader that is never woken
    // by anything but the close at the very end.
    let idle: Vec<_> = (0..8).map(|_| bus.subscribe(0)).collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            let bus = bus.clone();
            thread::spawn(move || {
                for _ in 0..total / PRODUCERS {
                    bus.publish(Event::default());
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(bus.counters().subscribers, idle.len());
    assert_eq!(bus.last_id(), total / PRODUCERS * PRODUCERS);
    // The stalled subscriptions are lagged, not buffered: one item says so.
    let mut first = bus.subscribe(0);
    drop(idle);
    match first.try_recv() {
        Err(nexus_trace_core::TryRecvError::Lagged(n)) => {
            assert_eq!(n, bus.last_id() - 64)
        }
        other => panic!("expected a lag, got {other:?}"),
    }
}
