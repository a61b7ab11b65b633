//! `tracing` events and spans land on the request they happened in.

use std::sync::Arc;
use std::time::Duration;

use futures::executor::block_on;
use nexus_trace_core::{context, Bus, Event, EventKind, Span, Subscription, TraceContext};
use nexus_trace_tracing::{NexusTracingLayer, OffRequest};
use tracing::field::Empty;
use tracing_subscriber::layer::SubscriberExt;

fn request(bus: &Bus) -> TraceContext {
    TraceContext::new(bus.clone(), Span::new("shop", "/users/{id}"))
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
        assert_eq!(e.kind, EventKind::Log);
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

#[test]
fn spans_in_a_request_are_downstream_events() {
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
    assert_eq!(ev.len(), 3, "{ev:#?}");
    let request_span = ctx.span().span_id;

    // The debug event inside the instrumented function: a log on the request.
    assert_eq!(
        (ev[0].kind.clone(), ev[0].message.as_str()),
        (EventKind::Log, "cache miss")
    );
    assert_eq!(ev[0].span_id, request_span);

    let load = &ev[1];
    assert_eq!(load.kind, EventKind::Downstream);
    assert_eq!(load.message, "load_user");
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
    assert!(load.timestamp <= std::time::SystemTime::now());

    let insert = &ev[2];
    assert_eq!(insert.message, "db.orders.insert");
    assert_eq!(insert.parent_id, request_span);
    assert_eq!(insert.error, "UNIQUE constraint failed");
    assert!(!insert.attrs.contains_key("error"));
    assert_eq!(insert.attrs["rows"], 0);
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
    let names: Vec<_> = ev
        .iter()
        .map(|e| (e.kind.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("log", "from the worker thread"),
            ("downstream", "nested"),
            ("downstream", "worker")
        ]
    );
    assert!(ev.iter().all(|e| e.trace_id == ctx.trace_id()));
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
    assert_eq!(ev[0].kind, EventKind::Log);
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
