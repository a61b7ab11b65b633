//! The first overwrite of a bus is logged once, as a warning; later
//! overwrites are only counted.

use std::sync::Mutex;

use nexus_trace_core::{Bus, Event};

static RECORDS: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        RECORDS
            .lock()
            .unwrap()
            .push((record.level(), record.args().to_string()));
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture;

#[test]
fn first_overwrite_warns_once_per_bus() {
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(log::LevelFilter::Trace);

    let bus = Bus::new(4);
    for _ in 0..4 {
        bus.publish(Event::default());
    }
    assert!(
        RECORDS.lock().unwrap().is_empty(),
        "no warning before the ring is full"
    );
    for _ in 0..100 {
        bus.publish(Event::default());
    }
    {
        let records = RECORDS.lock().unwrap();
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0].0, log::Level::Warn);
        assert!(records[0].1.contains("overwritten"), "{}", records[0].1);
        assert!(records[0].1.contains("4 events"), "{}", records[0].1);
    }
    assert_eq!(bus.counters().overwritten, 100);

    let other = Bus::new(2);
    for _ in 0..10 {
        other.publish(Event::default());
    }
    assert_eq!(RECORDS.lock().unwrap().len(), 2, "each bus warns once");
}
