//! Differential: random operation sequences on a `Bus` and on the sequential
//! `RingModel` give the same answers, including every `Lagged(n)`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use nexus_trace_core::model::RingModel;
use nexus_trace_core::{Bus, Event, Subscription};

#[derive(Arbitrary, Debug)]
enum Op {
    Publish(u8),
    Subscribe(u64),
    SubscribeLatest,
    TryRecv(u8),
    Drop(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    capacity: u8,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let capacity = usize::from(input.capacity % 64) + 1;
    let bus = Bus::new(capacity);
    let mut model = RingModel::new(capacity);
    assert_eq!(bus.capacity() as u64, capacity.next_power_of_two() as u64);
    let mut subs: Vec<(Subscription, u64)> = Vec::new();
    for op in input.ops.into_iter().take(4096) {
        match op {
            Op::Publish(n) => {
                for _ in 0..n % 16 {
                    assert_eq!(bus.publish(Event::default()), model.publish());
                }
            }
            Op::Subscribe(since) if subs.len() < 64 => {
                subs.push((bus.subscribe(since), model.subscribe(since)));
            }
            Op::SubscribeLatest if subs.len() < 64 => {
                subs.push((bus.subscribe_latest(), model.subscribe(u64::MAX)));
            }
            Op::TryRecv(i) if !subs.is_empty() => {
                let i = usize::from(i) % subs.len();
                let (sub, cursor) = &mut subs[i];
                let got = sub.try_recv().map(|e| e.id);
                assert_eq!(got, model.try_recv(cursor));
                assert_eq!(sub.next_id(), *cursor);
            }
            Op::Drop(i) if !subs.is_empty() => {
                let i = usize::from(i) % subs.len();
                subs.swap_remove(i);
            }
            _ => {}
        }
        assert_eq!(bus.last_id(), model.last_id());
    }
    assert_eq!(bus.counters().subscribers, subs.len());
});
