//! actix-specific behaviour of the middleware, beyond the shared suite:
//! builders, the error path of the wrapped service, the 404 endpoint.

use actix_web::dev::Service;
use actix_web::http::StatusCode;
use actix_web::{test, web, App, HttpResponse};
use nexus_trace_actix::{NexusTrace, RequestTrace};
use nexus_trace_core::{Bus, Event, EventKind, Subscription};

fn drain(sub: &mut Subscription) -> Vec<Event> {
    let mut out = Vec::new();
    while let Ok(e) = sub.try_recv() {
        out.push((*e).clone());
    }
    out
}

fn end(events: &[Event]) -> &Event {
    let ends: Vec<_> = events
        .iter()
        .filter(|e| e.kind() == EventKind::RequestEnd)
        .collect();
    assert_eq!(ends.len(), 1, "{events:#?}");
    ends[0]
}

#[actix_rt::test]
async fn builders_and_body_end() {
    let bus = Bus::new(64);
    let mut sub = bus.subscribe(0);
    let app = test::init_service(
        App::new()
            .wrap(
                NexusTrace::new(bus.clone())
                    .service("svc")
                    .transport("h1")
                    .capture_query(true),
            )
            .route("/users/{id}", web::get().to(|| async { "ada" })),
    )
    .await;
    let res = test::call_service(
        &app,
        test::TestRequest::get().uri("/users/7?page=2").to_request(),
    )
    .await;
    let trace_id = res
        .headers()
        .get("x-trace-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        drain(&mut sub)
            .iter()
            .all(|e| e.kind() != EventKind::RequestEnd),
        "no end before the body is sent"
    );
    assert_eq!(test::read_body(res).await, "ada");
    let events = drain(&mut sub);
    let end = end(&events);
    assert_eq!(end.trace_id, trace_id);
    assert_eq!(
        (end.service.as_str(), end.endpoint.as_str()),
        ("svc", "/users/{id}")
    );
    assert_eq!((end.transport.as_str(), end.status), ("h1", 200));
    assert_eq!(end.attrs["query"], "page=2");
    assert!(end.error.is_empty() && !end.attrs.contains_key("aborted"));
}

#[actix_rt::test]
async fn unmatched_path_and_fixed_endpoint() {
    let bus = Bus::new(64);
    let mut sub = bus.subscribe(0);
    let app = test::init_service(
        App::new()
            .wrap(NexusTrace::new(bus.clone()))
            .route("/a", web::get().to(|| async { "a" })),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/nope").to_request()).await;
    assert_eq!(res.status(), 404);
    drop(test::read_body(res).await);
    let events = drain(&mut sub);
    assert_eq!(end(&events).endpoint, "/nope");

    let app = test::init_service(
        App::new()
            .wrap(NexusTrace::new(bus.clone()).endpoint("fixed"))
            .route("/a", web::get().to(|| async { "a" })),
    )
    .await;
    drop(test::call_and_read_body(&app, test::TestRequest::get().uri("/a").to_request()).await);
    assert_eq!(end(&drain(&mut sub)).endpoint, "fixed");
}

#[actix_rt::test]
async fn error_from_the_wrapped_service_is_failed() {
    let bus = Bus::new(64);
    let mut sub = bus.subscribe(0);
    let app = test::init_service(
        App::new()
            // Inside the trace middleware: refuses before any handler runs.
            .wrap_fn(|req, srv| {
                let refuse = req.path() == "/refused";
                let fut = srv.call(req);
                async move {
                    if refuse {
                        Err(actix_web::error::ErrorForbidden("not for you"))
                    } else {
                        fut.await
                    }
                }
            })
            .wrap(NexusTrace::new(bus.clone()))
            .route("/refused", web::get().to(|| async { "x" })),
    )
    .await;
    let res = app
        .call(test::TestRequest::get().uri("/refused").to_request())
        .await;
    let Err(err) = res else {
        panic!("the error passes through")
    };
    assert_eq!(err.as_response_error().status_code(), StatusCode::FORBIDDEN);
    let events = drain(&mut sub);
    let end = end(&events);
    assert_eq!((end.status, end.error.as_str()), (403, "not for you"));
}

#[actix_rt::test]
async fn nexus_paths_are_not_traced_and_extractor_sees_the_context() {
    let bus = Bus::new(64);
    let mut sub = bus.subscribe(0);
    let app = test::init_service(
        App::new()
            .wrap(NexusTrace::new(bus.clone()))
            .route(
                "/__nexus/x",
                web::get().to(|t: Option<RequestTrace>| async move { format!("{}", t.is_some()) }),
            )
            .route(
                "/ctx",
                web::get().to(|RequestTrace(ctx): RequestTrace| async move {
                    let same = nexus_trace_core::context::current().map(|c| c.trace_id())
                        == Some(ctx.trace_id());
                    same.to_string()
                }),
            )
            .route(
                "/empty",
                web::get().to(|| async { HttpResponse::NoContent().finish() }),
            ),
    )
    .await;
    let body = test::call_and_read_body(
        &app,
        test::TestRequest::get().uri("/__nexus/x").to_request(),
    )
    .await;
    assert_eq!(body, "false");
    assert!(drain(&mut sub).is_empty(), "a /__nexus request was traced");
    let body =
        test::call_and_read_body(&app, test::TestRequest::get().uri("/ctx").to_request()).await;
    assert_eq!(body, "true", "current() inside the handler");
    assert_eq!(end(&drain(&mut sub)).status, 200);
    // An empty body is never polled: the end is published with the response.
    let res = test::call_service(&app, test::TestRequest::get().uri("/empty").to_request()).await;
    let events = drain(&mut sub);
    assert_eq!(end(&events).status, 204);
    drop(res);
    assert!(drain(&mut sub).is_empty(), "one end only");
}
