//! The dashboard and the nexus routes themselves: not recorded, a strict
//! Content-Security-Policy that allows exactly the served inline code.

use std::time::Duration;

use super::{client, open_sse, SECOND};
use crate::client::SseStream;
use crate::{Harness, Opts};

/// `/__nexus` requests are not traced; the dashboard has a strict CSP and
/// keep-alives flow on idle streams.
pub async fn nexus_routes_are_not_recorded_and_dashboard_is_strict(h: &impl Harness) {
    let server = h
        .spawn(Opts {
            keep_alive: Duration::from_millis(100),
            ..Opts::default()
        })
        .await;
    let c = client();
    let page = server.get(&c, "/__nexus/").send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("<title>nexus-trace</title>"));
    let mut s = SseStream::new(open_sse(&server, "?since=0", None).await);
    let deadline = tokio::time::Instant::now() + 20 * SECOND;
    while s.comments() < 2 {
        assert!(
            s.next(Duration::from_millis(50)).await.is_none(),
            "no events"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "keep-alive comments on an idle stream"
        );
    }
    let _ = server.get(&c, "/__nexus/traces/abc").send().await.unwrap();
    let mut sub = server.bus.subscribe(0);
    while let Ok(e) = sub.try_recv() {
        assert!(
            !e.path.starts_with("/__nexus"),
            "nexus request traced: {e:?}"
        );
    }
}

/// The dashboard as served: its Content-Security-Policy header allows
/// exactly the inline scripts and styles in the page as served (SHA-256 of
/// each, computed here from the response body), nothing else inline and no
/// other origin; the page has no inline event handlers or style attributes,
/// which a hash policy would block.
pub async fn dashboard_csp_allows_exactly_the_served_inline_code(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    let page = server.get(&client(), "/__nexus/").send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = page.text().await.unwrap();
    let policy = crate::csp::Policy::parse(&csp);
    assert_eq!(policy.get("default-src"), ["'none'"], "{csp}");
    assert_eq!(policy.get("connect-src"), ["'self'"], "{csp}");
    let page = crate::csp::InlineCode::of(&html);
    assert!(!page.scripts.is_empty(), "the page has its script inline");
    assert!(
        page.external.is_empty(),
        "no external resources: {:?}",
        page.external
    );
    assert!(
        page.inline_attributes.is_empty(),
        "inline handlers or styles: {:?}",
        page.inline_attributes
    );
    for (directive, blocks) in [("script-src", &page.scripts), ("style-src", &page.styles)] {
        let mut served: Vec<String> = blocks.iter().map(|b| crate::csp::source_hash(b)).collect();
        served.sort();
        let mut allowed = policy.get(directive).to_vec();
        allowed.sort();
        assert_eq!(
            allowed, served,
            "{directive} against the served page ({csp})"
        );
    }
}
