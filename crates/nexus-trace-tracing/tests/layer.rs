//! `tracing` events and spans land on the request they happened in.

use std::sync::Arc;
use std::time::Duration;

use futures::executor::block_on;
use nexus_trace_core::{context, Bus, Event, EventKind, SpanContext, Subscription, TraceContext};
use nexus_trace_tracing::{NexusTracingLayer, OffRequest};
use tracing::field::Empty;
use tracing_subscriber::layer::SubscriberExt;

fn request(bus: &Bus) -> TraceContext {
    TraceContext::new(bus.clone(), SpanContext::new("shop", "/users/{id}"))
}

fn all(sub: &mut Subscription) -> Vec<Arc<Event>> {
    std::iter::from_fn(|| sub.try_recv().ok()).collect()
}

fn with_layer<R>(layer: NexusTracingLayer, f: impl FnOnce() -> R) -> R {
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f)
}

#[tracing::instrument(fields(table = "users"))]
async fn load_user(id: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(2));
    tracing::debug!("cache miss");
    id
}

fn query_with_error() {
    let span = tracing::info_span!("db.orders.insert", error = Empty, rows = 0u64);
    let _entered = span.enter();
    span.record("error", tracing::field::display("UNIQUE constraint failed"));
}

#[test]
fn events_in_a_request_are_logs_on_its_trace() {
    let bus = Bus::new(64);
    let mut sub = bus.subscribe(0);
    let ctx = request(&bus);
    with_layer(NexusTracingLayer::new(bus.clone()), || {
        block_on(context::scope(ctx.clone(), async {
            tracing::info!(user = 7, cached = false, "loading user");
            tracing::warn!(error = "timeout", "retrying");
            tracing::info!(name = "ada");
        }));
    });
    let ev = all(&mut sub);
    assert_eq!(ev.len(), 3, "{ev:#?}");
    for e in &ev {
        assert_eq!(e.kind(), EventKind::Log);
        assert_eq!(e.trace_id, ctx.trace_id());
        assert_eq!(e.span_id, ctx.span().span_id, "the request span");
        assert_eq!(e.service, "shop");
        assert_eq!(e.attrs["target"], "layer");
    }
    assert_eq!(ev[0].message, "loading user user=7 cached=false");
    assert_eq!(ev[0].attrs["level"], "INFO");
    assert_eq!(
        (ev[1].message.as_str(), ev[1].error.as_str()),
        ("retrying", "timeout")
    );
    assert_eq!(ev[1].attrs["level"], "WARN");
    assert_eq!(ev[2].message, "name=ada");
}

fn names(ev: &[Arc<Event>]) -> Vec<(&str, &str)> {
    ev.iter()
        .map(|e| (e.kind_str(), e.message.as_str()))
        .collect()
}

#[test]
fn spans_in_a_request_are_child_spans_with_their_logs() {
    let bus = Bus::new(64);
    let mut sub = bus.subscribe(0);
    let ctx = request(&bus);
    let id = with_layer(NexusTracingLayer::new(bus.clone()), || {
        block_on(context::scope(ctx.clone(), async {
            let id = load_user(7).await;
            query_with_error();
            id
        }))
    });
    assert_eq!(id, 7);
    let ev = all(&mut sub);
    assert_eq!(
        names(&ev),
        [
            ("span.start", "load_user"),
            ("log", "cache miss"),
            ("downstream", "load_user"),
            ("span.start", "db.orders.insert"),
            ("downstream", "db.orders.insert"),
        ]
    );
    let request_span = ctx.span().span_id;

    let (start, log, load) = (&ev[0], &ev[1], &ev[2]);
    assert_eq!(start.span_id, load.span_id, "one id from creation to close");
    assert_eq!(start.parent_id, request_span);
    assert_eq!(start.attrs["span.kind"], "client");
    // The debug event inside the instrumented function attaches to its span.
    assert_eq!(log.span_id, load.span_id);
    assert_eq!(log.parent_id, request_span);

    assert_eq!(load.trace_id, ctx.trace_id());
    assert_eq!(load.parent_id, request_span);
    assert_ne!(load.span_id, request_span);
    assert!(load.span_id.id().is_some());
    assert!(
        load.duration() >= Duration::from_millis(2),
        "{:?}",
        load.duration()
    );
    assert!(load.duration_ns > 0);
    assert_eq!(load.attrs["id"], 7);
    assert_eq!(load.attrs["table"], "users");
    assert!(load.error.is_empty());
    assert_eq!(
        load.timestamp, start.timestamp,
        "downstream is stamped at its start"
    );

    let insert = &ev[4];
    assert_eq!(insert.parent_id, request_span);
    assert_eq!(insert.error, "UNIQUE constraint failed");
    assert!(!insert.attrs.contains_key("error"));
    assert_eq!(insert.attrs["rows"], 0);
}

#[test]
fn nested_spans_keep_their_hierarchy() {
    let bus = Bus::new(64);
    let mut sub = bus.subscribe(0);
    let ctx = request(&bus);
    with_layer(NexusTracingLayer::new(bus.clone()), || {
        block_on(context::scope(ctx.clone(), async {
            let outer = tracing::info_span!("checkout", otel.kind = "internal");
            let _outer = outer.enter();
            tracing::info_span!("db.orders.insert").in_scope(|| {
                tracing::info!("inserted");
                // Plain nexus calls inside an entered span nest under it.
                context::record("db.fsync", std::time::Instant::now(), None);
            });
            // An explicit root belongs to no request.
            tracing::info_span!(parent: None, "detached").in_scope(|| {});
            // A span made with no tracing parent, under a nexus span: it
            // nests under the entered checkout span (the current one).
            tracing::info_span!("nested.again").in_scope(|| {});
        }));
    });
    let ev = all(&mut sub);
    assert_eq!(
        names(&ev),
        [
            ("span.start", "checkout"),
            ("span.start", "db.orders.insert"),
            ("log", "inserted"),
            ("downstream", "db.fsync"),
            ("downstream", "db.orders.insert"),
            ("span.start", "nested.again"),
            ("downstream", "nested.again"),
            ("span.end", "checkout"),
        ]
    );
    let request_span = ctx.span().span_id;
    let checkout = &ev[0];
    let insert = &ev[1];
    assert_eq!(checkout.parent_id, request_span);
    assert!(!checkout.attrs.contains_key("span.kind"), "internal");
    assert_eq!(insert.parent_id, checkout.span_id);
    assert_eq!(
        ev[2].span_id, insert.span_id,
        "the log is inside the insert"
    );
    assert_eq!(ev[3].parent_id, insert.span_id, "the record nests in it");
    assert_eq!(ev[5].parent_id, checkout.span_id);
    assert_eq!(ev[7].span_id, checkout.span_id);
    assert!(
        context::current().is_none(),
        "entered spans restored the context"
    );
}

#[test]
fn a_span_ends_as_the_kind_it_started_as() {
    let bus = Bus::new(64);
    let mut sub = bus.subscribe(0);
    let ctx = request(&bus);
    with_layer(NexusTracingLayer::new(bus.clone()), || {
        let _in_request = ctx.enter();
        // Declared empty, recorded after `span.start` went out.
        let late = tracing::info_span!("late", otel.kind = Empty);
        late.record("otel.kind", "internal");
        drop(late);
        let early = tracing::info_span!("early", otel.kind = "internal");
        early.record("otel.kind", "client");
        drop(early);
    });
    let ev = all(&mut sub);
    assert_eq!(
        names(&ev),
        [
            ("span.start", "late"),
            ("downstream", "late"),
            ("span.start", "early"),
            ("span.end", "early"),
        ]
    );
    assert_eq!(ev[0].attrs["span.kind"], "client");
    assert_eq!(
        ev[1].attrs["otel.kind"], "internal",
        "the attribute is kept"
    );
    assert!(!ev[2].attrs.contains_key("span.kind"));
}

#[test]
fn spans_exited_out_of_order_leave_the_right_span_current() {
    let bus = Bus::new(64);
    let mut sub = bus.subscribe(0);
    let ctx = request(&bus);
    with_layer(NexusTracingLayer::new(bus.clone()), || {
        let _in_request = ctx.enter();
        let a = tracing::info_span!("a").entered();
        let b = tracing::info_span!("b").entered();
        drop(a); // out of order: b is still entered
        tracing::info!("inside b");
        drop(b);
        assert_eq!(
            context::current().map(|c| c.span().span_id),
            Some(ctx.span().span_id),
            "back to the request once both are exited"
        );
        tracing::info!("back in the request");
    });
    let ev = all(&mut sub);
    let b_start = ev
        .iter()
        .find(|e| e.message == "b" && e.kind() == EventKind::SpanStart)
        .unwrap();
    let inside = ev.iter().find(|e| e.message == "inside b").unwrap();
    assert_eq!(
        inside.span_id, b_start.span_id,
        "b stayed current after a exited"
    );
    let back = ev
        .iter()
        .find(|e| e.message == "back in the request")
        .unwrap();
    assert_eq!(back.span_id, ctx.span().span_id);
}

#[test]
fn a_span_made_in_a_request_carries_it_to_other_threads() {
    let bus = Bus::new(64);
    let mut sub = bus.subscribe(0);
    let ctx = request(&bus);
    with_layer(NexusTracingLayer::new(bus.clone()), || {
        let span = block_on(context::scope(ctx.clone(), async {
            tracing::info_span!("worker")
        }));
        // Entered and closed where no request is current.
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        std::thread::spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                assert!(context::current().is_none());
                let _entered = span.enter();
                tracing::info!("from the worker thread");
                tracing::info_span!("nested").in_scope(|| {});
            });
        })
        .join()
        .unwrap();
    });
    let ev = all(&mut sub);
    assert_eq!(
        names(&ev),
        [
            ("span.start", "worker"),
            ("log", "from the worker thread"),
            ("span.start", "nested"),
            ("downstream", "nested"),
            ("downstream", "worker")
        ]
    );
    assert!(ev.iter().all(|e| e.trace_id == ctx.trace_id()));
    assert_eq!(ev[1].span_id, ev[0].span_id);
    assert_eq!(ev[2].parent_id, ev[0].span_id);
}

#[test]
fn off_request_events_are_ignored_by_default() {
    let bus = Bus::new(64);
    let mut sub = bus.subscribe(0);
    with_layer(NexusTracingLayer::new(bus.clone()), || {
        tracing::info!("startup");
        tracing::info_span!("init").in_scope(|| tracing::warn!("inside a span"));
    });
    assert!(all(&mut sub).is_empty());
}

#[test]
fn off_request_events_are_published_when_asked() {
    let bus = Bus::new(64);
    let mut sub = bus.subscribe(0);
    let layer = NexusTracingLayer::new(bus.clone()).off_request(OffRequest::Publish);
    with_layer(layer, || {
        tracing::error!(port = 8080, "cannot bind");
        // Spans outside a request are still not published.
        tracing::info_span!("init").in_scope(|| {});
    });
    let ev = all(&mut sub);
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(ev[0].kind(), EventKind::Log);
    assert_eq!(ev[0].message, "cannot bind port=8080");
    assert!(ev[0].trace_id.is_empty());
    assert_eq!(ev[0].attrs["level"], "ERROR");
}

#[test]
fn own_events_are_never_published() {
    let bus = Bus::new(64);
    let mut sub = bus.subscribe(0);
    let layer = NexusTracingLayer::new(bus.clone()).off_request(OffRequest::Publish);
    with_layer(layer, || {
        block_on(context::scope(request(&bus), async {
            tracing::info!(target: "nexus_trace_tracing", "internal");
            tracing::info_span!(target: "nexus_trace_tracing::x", "internal").in_scope(|| {});
        }));
    });
    assert!(all(&mut sub).is_empty());
}
