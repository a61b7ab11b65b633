//! A trace is a tree: a call from one service to another, on one bus, is
//! served by `/__nexus/traces/{id}` as one span tree with correct parents.
//!
//! The test apps serve two extra routes for this, built from the handlers
//! here so that both adapters do the same thing:
//!
//! | route | service | behaviour |
//! |---|---|---|
//! | `GET /orders` | `conformance` | [`orders`]: a call to `/payments/charge` on the same server with [`TracedRequest::send_traced`] (a CLIENT span `http.payments.charge`, `traceparent`/`tracestate` injected) |
//! | `GET /payments/charge` | `payments` (its own middleware) | [`charge`]: an INTERNAL span `ledger.write` (2 ms), answers the trace headers it received |

use std::time::Duration;

use nexus_trace_core::context;
use nexus_trace_http::client::TracedRequest;
use serde_json::Value;

use crate::suite::client;
use crate::{Harness, Opts};

/// The `GET /orders` handler: calls `http://{host}/payments/charge` inside
/// a CLIENT span and answers what payments answered (or the error).
pub async fn orders(host: &str) -> String {
    let call = reqwest::Client::new()
        .get(format!("http://{host}/payments/charge?card=4111"))
        .send_traced("http.payments.charge")
        .await;
    match call {
        Ok(res) => res.text().await.unwrap_or_default(),
        Err(e) => format!("payments unreachable: {e}"),
    }
}

/// The `GET /payments/charge` handler: a `ledger.write` span, then the
/// trace headers it was called with, as `traceparent=…;tracestate=…`.
pub async fn charge(traceparent: Option<&str>, tracestate: Option<&str>) -> String {
    context::in_span("ledger.write", tokio::time::sleep(Duration::from_millis(2))).await;
    format!(
        "traceparent={};tracestate={}",
        traceparent.unwrap_or(""),
        tracestate.unwrap_or("")
    )
}

fn span<'a>(tree: &'a Value, name_part: &str) -> &'a Value {
    tree["spans"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|s| s["name"].as_str().is_some_and(|n| n.contains(name_part)))
        })
        .unwrap_or_else(|| panic!("no span named like {name_part:?} in {tree:#}"))
}

/// `/orders` → payments `/charge` → `ledger.write` is one 3-level tree:
/// the callee's server span hangs under the caller's CLIENT span.
pub async fn trace_tree_spans_two_services(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    let res = client()
        .get(server.url("/orders"))
        .send()
        .await
        .expect("/orders");
    assert_eq!(res.status(), 200);
    let trace_id = res.headers()["x-trace-id"].to_str().unwrap().to_owned();
    let body = res.text().await.unwrap();
    assert!(
        body.starts_with("traceparent=00-"),
        "payments answered {body:?}"
    );

    // Both servers' request.end, then the tree.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let tree = loop {
        let tree = server.trace_tree(&trace_id).await;
        let ends = tree["events"].as_array().map_or(0, |e| {
            e.iter().filter(|e| e["kind"] == "request.end").count()
        });
        if ends == 2 {
            break tree;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no 2 ends: {tree:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    assert_eq!(tree["traceId"], trace_id.as_str());
    let spans = tree["spans"].as_array().unwrap();
    let shape: Vec<(&str, u64, &str)> = spans
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap(),
                s["depth"].as_u64().unwrap(),
                s["service"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("server", 0, "conformance"),
            ("client", 1, "conformance"),
            ("server", 2, "payments"),
            ("internal", 3, "payments"),
        ],
        "{tree:#}"
    );
    let orders = span(&tree, "/orders");
    let call = span(&tree, "http.payments.charge");
    let charge = span(&tree, "/payments/charge");
    let ledger = span(&tree, "ledger.write");
    assert!(orders.get("parentId").is_none(), "the root has no parent");
    assert_eq!(call["parentId"], orders["spanId"]);
    assert_eq!(
        charge["parentId"], call["spanId"],
        "the callee hangs under the call"
    );
    assert_eq!(ledger["parentId"], charge["spanId"]);
    // The payments answer names the client span as its parent.
    assert!(
        body.contains(&format!("-{}-", call["spanId"].as_str().unwrap())),
        "{body} vs {call}"
    );
    for s in spans {
        assert_eq!(s["running"], false, "{s}");
        assert_eq!(s["orphan"], false, "{s}");
    }
    assert_eq!(call["attrs"]["http.response.status_code"], 200);
    assert_eq!(call["attrs"]["http.request.method"], "GET");
    assert_eq!(
        call["attrs"]["url.path"], "/payments/charge",
        "never the query"
    );
    assert_eq!(charge["status"], 200);
    assert!(ledger["durationMs"].as_f64().unwrap() >= 2.0, "{ledger}");
    // Each child starts no earlier than its parent (one clock, one process).
    for (parent, child) in [(orders, call), (call, charge), (charge, ledger)] {
        assert!(
            child["startMs"].as_f64() >= parent["startMs"].as_f64(),
            "{child} starts before {parent}"
        );
    }
    assert_eq!(orders["startMs"], 0.0);
}

/// The incoming sampled flag and `tracestate` are kept and sent on by an
/// outbound call; several `tracestate` lines are one list; an invalid
/// `tracestate` is dropped, not repaired.
pub async fn trace_flags_and_tracestate_are_propagated(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    // `GET /orders` with `incoming` and these `tracestate` lines; answers
    // (traceparent, tracestate) as payments received them.
    let call = |lines: &'static [&'static str]| {
        let mut req = client()
            .get(server.url("/orders"))
            .header("traceparent", incoming);
        for line in lines {
            req = req.header("tracestate", *line);
        }
        async move {
            let body = req.send().await.expect("/orders").text().await.unwrap();
            let (traceparent, tracestate) = body
                .split_once(";tracestate=")
                .unwrap_or_else(|| panic!("payments answered {body:?}"));
            (
                traceparent.trim_start_matches("traceparent=").to_owned(),
                tracestate.to_owned(),
            )
        }
    };

    let (traceparent, tracestate) = call(&["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"]).await;
    assert!(
        traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{traceparent}"
    );
    assert!(
        traceparent.ends_with("-00"),
        "unsampled stays unsampled: {traceparent}"
    );
    assert!(
        !traceparent.contains("00f067aa0ba902b7"),
        "the parent is our span"
    );
    assert_eq!(tracestate, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");

    // Several tracestate lines are one list (W3C: combined with commas).
    let (_, tracestate) = call(&["rojo=00f067aa0ba902b7", "congo=t61rcWkgMzE"]).await;
    assert_eq!(
        tracestate, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
        "two lines combined"
    );

    let (_, tracestate) = call(&["Bad Key=1"]).await;
    assert_eq!(tracestate, "", "invalid tracestate dropped");
}
