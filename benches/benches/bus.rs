//! The nexus bus against its peers, same payload, same groups:
//! `tokio::sync::broadcast`, the upstream Go design (mutex ring + bounded
//! channel per subscriber), a ring of `ArcSwapOption` slots, and the floor.
//!
//! `cargo bench -p nexus-trace-benches --bench bus`

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nexus_trace_benches::{payload, ArcSwapRing, Floor, GoBus};
use nexus_trace_core::{Bus, TryRecvError};

const CAPACITY: usize = 4096;

fn publish_with_idle_subscribers(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish");
    g.throughput(Throughput::Elements(1));
    for subs in [0usize, 1, 4, 16, 64, 256] {
        let bus = Bus::new(CAPACITY);
        let held: Vec<_> = (0..subs).map(|_| bus.subscribe_latest()).collect();
        g.bench_with_input(BenchmarkId::new("nexus", subs), &subs, |b, _| {
            b.iter(|| bus.publish(black_box(payload())))
        });
        drop(held);

        let (tx, _rx0) = tokio::sync::broadcast::channel(CAPACITY);
        let held: Vec<_> = (0..subs).map(|_| tx.subscribe()).collect();
        g.bench_with_input(BenchmarkId::new("tokio-broadcast", subs), &subs, |b, _| {
            b.iter(|| {
                let _ = tx.send(Arc::new(black_box(payload())));
            })
        });
        drop(held);

        let go = GoBus::new(CAPACITY);
        let held: Vec<_> = (0..subs).map(|_| go.subscribe(0, 64)).collect();
        g.bench_with_input(BenchmarkId::new("go-port", subs), &subs, |b, _| {
            b.iter(|| go.publish(black_box(payload())))
        });
        drop(held);

        let ring = ArcSwapRing::new(CAPACITY);
        g.bench_with_input(BenchmarkId::new("arc-swap-ring", subs), &subs, |b, _| {
            b.iter(|| ring.publish(black_box(payload())))
        });

        if subs == 0 {
            let floor = Floor::new(CAPACITY);
            g.bench_with_input(BenchmarkId::new("floor", subs), &subs, |b, _| {
                b.iter(|| floor.publish(black_box(payload())))
            });
        }
    }
    g.finish();
}

/// A subscriber loop for the throughput runs: reads until told to stop.
trait Reader: Send + 'static {
    fn poll(&mut self) -> bool;
}

struct NexusReader(nexus_trace_core::Subscription);
impl Reader for NexusReader {
    fn poll(&mut self) -> bool {
        match self.0.try_recv() {
            Ok(e) => {
                black_box(e);
                true
            }
            Err(TryRecvError::Lagged(_)) => true,
            Err(_) => false,
        }
    }
}

struct TokioReader(tokio::sync::broadcast::Receiver<Arc<nexus_trace_core::Event>>);
impl Reader for TokioReader {
    fn poll(&mut self) -> bool {
        use tokio::sync::broadcast::error::TryRecvError as E;
        match self.0.try_recv() {
            Ok(e) => {
                black_box(e);
                true
            }
            Err(E::Lagged(_)) => true,
            Err(_) => false,
        }
    }
}

struct GoReader(std::sync::mpsc::Receiver<Arc<nexus_trace_core::Event>>);
impl Reader for GoReader {
    fn poll(&mut self) -> bool {
        self.0.try_recv().map(black_box).is_ok()
    }
}

struct ArcSwapReader(Arc<ArcSwapRing>, u64);
impl Reader for ArcSwapReader {
    fn poll(&mut self) -> bool {
        let head = self.0.last_id();
        if self.1 > head {
            return false;
        }
        if head >= self.1 + CAPACITY as u64 {
            self.1 = head + 1 - CAPACITY as u64;
        }
        if let Some(e) = self.0.read(self.1) {
            black_box(e);
        }
        self.1 += 1;
        true
    }
}

/// `producers` threads publish `iters` events in total while 4 readers run.
fn run_mpmc(
    iters: u64,
    producers: u64,
    publish: Arc<dyn Fn() + Send + Sync>,
    readers: Vec<Box<dyn Reader>>,
) -> Duration {
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = readers
        .into_iter()
        .map(|mut r| {
            let stop = stop.clone();
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if !r.poll() {
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();
    let start_line = Arc::new(Barrier::new(producers as usize + 1));
    let handles: Vec<_> = (0..producers)
        .map(|_| {
            let publish = publish.clone();
            let start_line = start_line.clone();
            thread::spawn(move || {
                start_line.wait();
                for _ in 0..iters / producers {
                    publish();
                }
            })
        })
        .collect();
    start_line.wait();
    let start = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    elapsed
}

fn throughput_producers_and_subscribers(c: &mut Criterion) {
    let mut g = c.benchmark_group("throughput-4-subscribers");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    for producers in [1u64, 2] {
        let id = |name| BenchmarkId::new(name, format!("{producers}p"));
        g.bench_function(id("nexus"), |b| {
            b.iter_custom(|iters| {
                let bus = Bus::new(CAPACITY);
                let readers = (0..4)
                    .map(|_| Box::new(NexusReader(bus.subscribe_latest())) as Box<dyn Reader>)
                    .collect();
                run_mpmc(
                    iters,
                    producers,
                    Arc::new(move || {
                        bus.publish(payload());
                    }),
                    readers,
                )
            })
        });
        g.bench_function(id("tokio-broadcast"), |b| {
            b.iter_custom(|iters| {
                let (tx, _) = tokio::sync::broadcast::channel(CAPACITY);
                let readers = (0..4)
                    .map(|_| Box::new(TokioReader(tx.subscribe())) as Box<dyn Reader>)
                    .collect();
                run_mpmc(
                    iters,
                    producers,
                    Arc::new(move || {
                        let _ = tx.send(Arc::new(payload()));
                    }),
                    readers,
                )
            })
        });
        g.bench_function(id("go-port"), |b| {
            b.iter_custom(|iters| {
                let go = Arc::new(GoBus::new(CAPACITY));
                let readers = (0..4)
                    .map(|_| Box::new(GoReader(go.subscribe(u64::MAX, 64).1)) as Box<dyn Reader>)
                    .collect();
                run_mpmc(
                    iters,
                    producers,
                    Arc::new(move || {
                        go.publish(payload());
                    }),
                    readers,
                )
            })
        });
        g.bench_function(id("arc-swap-ring"), |b| {
            b.iter_custom(|iters| {
                let ring = Arc::new(ArcSwapRing::new(CAPACITY));
                let readers = (0..4)
                    .map(|_| Box::new(ArcSwapReader(ring.clone(), 1)) as Box<dyn Reader>)
                    .collect();
                run_mpmc(
                    iters,
                    producers,
                    Arc::new(move || {
                        ring.publish(payload());
                    }),
                    readers,
                )
            })
        });
    }
    g.finish();
}

fn end_to_end_latency(c: &mut Criterion) {
    let mut g = c.benchmark_group("latency-publish-to-receive");
    g.sample_size(20);
    g.bench_function("nexus", |b| {
        b.iter_custom(|iters| {
            let bus = Bus::new(CAPACITY);
            let mut sub = bus.subscribe_latest();
            let ack = Arc::new(AtomicU64::new(0));
            let a = ack.clone();
            let t = thread::spawn(move || {
                while let Ok(e) = sub.recv_timeout(Duration::from_secs(5)) {
                    a.store(e.id, Ordering::Release);
                }
            });
            let start = Instant::now();
            for _ in 0..iters {
                let id = bus.publish(payload());
                while ack.load(Ordering::Acquire) != id {
                    std::hint::spin_loop();
                }
            }
            let elapsed = start.elapsed();
            drop(bus);
            t.join().unwrap();
            elapsed
        })
    });
    g.bench_function("tokio-broadcast", |b| {
        b.iter_custom(|iters| {
            let (tx, mut rx) =
                tokio::sync::broadcast::channel::<Arc<nexus_trace_core::Event>>(CAPACITY);
            let ack = Arc::new(AtomicU64::new(0));
            let a = ack.clone();
            let t = thread::spawn(move || {
                while let Ok(e) = rx.blocking_recv() {
                    a.store(e.id, Ordering::Release);
                }
            });
            let start = Instant::now();
            for i in 1..=iters {
                let mut e = payload();
                e.id = i;
                let _ = tx.send(Arc::new(e));
                while ack.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
            }
            let elapsed = start.elapsed();
            drop(tx);
            t.join().unwrap();
            elapsed
        })
    });
    g.bench_function("go-port", |b| {
        b.iter_custom(|iters| {
            let go = GoBus::new(CAPACITY);
            let (_, rx, key) = go.subscribe(u64::MAX, 64);
            let ack = Arc::new(AtomicU64::new(0));
            let a = ack.clone();
            let t = thread::spawn(move || {
                while let Ok(e) = rx.recv() {
                    a.store(e.id, Ordering::Release);
                }
            });
            let start = Instant::now();
            for _ in 0..iters {
                let id = go.publish(payload());
                while ack.load(Ordering::Acquire) != id {
                    std::hint::spin_loop();
                }
            }
            let elapsed = start.elapsed();
            go.unsubscribe(key);
            t.join().unwrap();
            elapsed
        })
    });
    g.finish();
}

/// Publish with `n` subscribers that actively read: each is a thread blocked
/// in a receive, woken by the publish it then reads (nexus `recv_timeout`,
/// tokio `blocking_recv`, the Go port's channel `recv`). This is the publish
/// cost a dashboard with live clients puts on a request.
fn publish_with_reading_subscribers(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish-reading");
    g.throughput(Throughput::Elements(1));
    for subs in [1usize, 4, 16, 64] {
        let stop = Arc::new(AtomicBool::new(false));

        let bus = Bus::new(CAPACITY);
        let readers: Vec<_> = (0..subs)
            .map(|_| {
                let mut sub = bus.subscribe_latest();
                let stop = stop.clone();
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let _ = black_box(sub.recv_timeout(Duration::from_millis(20)));
                    }
                })
            })
            .collect();
        g.bench_with_input(BenchmarkId::new("nexus", subs), &subs, |b, _| {
            b.iter(|| bus.publish(black_box(payload())))
        });
        stop.store(true, Ordering::Relaxed);
        readers.into_iter().for_each(|t| t.join().unwrap());
        stop.store(false, Ordering::Relaxed);

        let (tx, _rx0) = tokio::sync::broadcast::channel(CAPACITY);
        let readers: Vec<_> = (0..subs)
            .map(|_| {
                let mut rx = tx.subscribe();
                thread::spawn(move || {
                    // Ends when the sender is dropped.
                    loop {
                        match rx.blocking_recv() {
                            Ok(e) => drop(black_box(e)),
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                        }
                    }
                })
            })
            .collect();
        g.bench_with_input(BenchmarkId::new("tokio-broadcast", subs), &subs, |b, _| {
            b.iter(|| {
                let _ = tx.send(Arc::new(black_box(payload())));
            })
        });
        drop(tx);
        drop(_rx0);
        readers.into_iter().for_each(|t| t.join().unwrap());

        let go = Arc::new(GoBus::new(CAPACITY));
        let readers: Vec<_> = (0..subs)
            .map(|_| {
                let (_, rx, _) = go.subscribe(0, 64);
                let stop = stop.clone();
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let _ = black_box(rx.recv_timeout(Duration::from_millis(20)));
                    }
                })
            })
            .collect();
        g.bench_with_input(BenchmarkId::new("go-port", subs), &subs, |b, _| {
            b.iter(|| go.publish(black_box(payload())))
        });
        stop.store(true, Ordering::Relaxed);
        readers.into_iter().for_each(|t| t.join().unwrap());
    }
    g.finish();
}

fn replay_backlog(c: &mut Criterion) {
    let mut g = c.benchmark_group("replay-4096");
    g.throughput(Throughput::Elements(CAPACITY as u64));
    let bus = Bus::new(CAPACITY);
    let go = GoBus::new(CAPACITY);
    let ring = ArcSwapRing::new(CAPACITY);
    for _ in 0..CAPACITY {
        bus.publish(payload());
        go.publish(payload());
        ring.publish(payload());
    }
    g.bench_function("nexus", |b| {
        b.iter(|| {
            let mut sub = bus.subscribe(0);
            let mut n = 0;
            while let Ok(e) = sub.try_recv() {
                black_box(e);
                n += 1;
            }
            assert_eq!(n, CAPACITY);
        })
    });
    g.bench_function("nexus-batch", |b| {
        b.iter(|| {
            // A fresh Vec each time, as the Go port collects its backlog.
            let mut out = Vec::new();
            let mut sub = bus.subscribe(0);
            let n = sub.try_recv_many(&mut out, CAPACITY).unwrap();
            assert_eq!(n, CAPACITY);
            black_box(out);
        })
    });
    g.bench_function("go-port", |b| {
        b.iter(|| {
            let (backlog, rx, key) = go.subscribe(0, 64);
            assert_eq!(backlog.len(), CAPACITY);
            for e in backlog {
                black_box(e);
            }
            go.unsubscribe(key);
            drop(rx);
        })
    });
    g.bench_function("arc-swap-ring", |b| {
        b.iter(|| {
            for id in 1..=CAPACITY as u64 {
                black_box(ring.read(id).unwrap());
            }
        })
    });
    g.finish();
}

/// Publish cost after `n` other threads have used the structure (and stay
/// alive): the thread-count trap.
fn publish_after_many_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish-after-threads");
    g.throughput(Throughput::Elements(1));
    for n in [0usize, 128] {
        let bus = Bus::new(CAPACITY);
        let ring = Arc::new(ArcSwapRing::new(CAPACITY));
        let floor = Arc::new(Floor::new(CAPACITY));
        let done = Arc::new(Barrier::new(n + 1));
        let ready = Arc::new(Barrier::new(n + 1));
        let threads: Vec<_> = (0..n)
            .map(|_| {
                let (bus, ring, floor) = (bus.clone(), ring.clone(), floor.clone());
                let (done, ready) = (done.clone(), ready.clone());
                thread::spawn(move || {
                    bus.publish(payload());
                    ring.publish(payload());
                    floor.publish(payload());
                    let _ = ring.read(1);
                    ready.wait();
                    done.wait();
                })
            })
            .collect();
        ready.wait();
        g.bench_with_input(BenchmarkId::new("nexus", n), &n, |b, _| {
            b.iter(|| bus.publish(black_box(payload())))
        });
        g.bench_with_input(BenchmarkId::new("arc-swap-ring", n), &n, |b, _| {
            b.iter(|| ring.publish(black_box(payload())))
        });
        g.bench_with_input(BenchmarkId::new("floor", n), &n, |b, _| {
            b.iter(|| floor.publish(black_box(payload())))
        });
        done.wait();
        for t in threads {
            t.join().unwrap();
        }
    }
    g.finish();
}

criterion_group!(
    benches,
    publish_with_idle_subscribers,
    publish_with_reading_subscribers,
    throughput_producers_and_subscribers,
    end_to_end_latency,
    replay_backlog,
    publish_after_many_threads
);
criterion_main!(benches);
