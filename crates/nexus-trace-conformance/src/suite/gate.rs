//! The `/__nexus` routes exist only when mounted, behind an access gate:
//! the bearer token and the loopback gate (which trusts the socket peer).

use std::time::Duration;

use nexus_trace_http::serve::gate::{Access, Decision};

use super::client;
use crate::{Harness, Opts};

/// Without an explicit mount, `/__nexus` does not exist.
pub async fn not_mounted_is_404(h: &impl Harness) {
    let server = h
        .spawn(Opts {
            mount: false,
            ..Opts::default()
        })
        .await;
    let c = client();
    for path in ["/__nexus/", "/__nexus/events", "/__nexus/traces/abc"] {
        assert_eq!(
            c.get(server.url(path)).send().await.unwrap().status(),
            404,
            "{path}"
        );
    }
}

/// The token gate: missing or wrong token 401, right token 200, also via
/// `?access_token=` for `EventSource`.
pub async fn token_gate(h: &impl Harness) {
    let server = h
        .spawn(Opts {
            token: Some("t0ken-x".into()),
            ..Opts::default()
        })
        .await;
    let c = client();
    let url = server.url("/__nexus/traces/abc");
    assert_eq!(c.get(&url).send().await.unwrap().status(), 401);
    let wrong = c.get(&url).bearer_auth("t0ken-y").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().contains_key("www-authenticate"));
    assert_eq!(
        c.get(&url)
            .bearer_auth("t0ken-x")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let q = server.url("/__nexus/traces/abc?access_token=t0ken-x");
    assert_eq!(c.get(&q).send().await.unwrap().status(), 200);
    assert_eq!(
        c.get(server.url("/__nexus/"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

/// The loopback gate trusts the socket address only.
///
/// Over loopback alone (no other interface is needed): a loopback peer is
/// let in by `Access::loopback()` whatever `X-Forwarded-For` says; and the
/// adapter hands the gate the TCP peer, never a header. The second part uses
/// a gate that admits only `127.0.0.1`, and a client that connects from
/// `127.0.0.2` (loopback on Linux, but another address) while its headers
/// claim `127.0.0.1`: it is refused, and the gate saw `127.0.0.2`. That the
/// loopback gate refuses every non-loopback peer is `Access::check` alone,
/// unit-tested in `nexus-trace-http` (`serve::gate`).
pub async fn loopback_gate_ignores_forwarded_for(h: &impl Harness) {
    let server = h.spawn(Opts::default()).await;
    let c = client();
    let res = c
        .get(server.url("/__nexus/traces/abc"))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "loopback peer allowed");

    let only: std::net::IpAddr = [127, 0, 0, 1].into();
    let other: std::net::IpAddr = [127, 0, 0, 2].into();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let access = {
        let seen = seen.clone();
        Access::custom(move |req| {
            let peer = req.peer.map(|p| p.ip());
            seen.lock().unwrap().push(peer);
            if peer == Some(only) {
                Decision::Allow
            } else {
                Decision::Forbidden
            }
        })
    };
    let server = h
        .spawn(Opts {
            access: Some(access),
            ..Opts::default()
        })
        .await;
    let from = |ip| {
        reqwest::Client::builder()
            .local_address(ip)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
    };
    let forged = from(other)
        .get(server.url("/__nexus/traces/abc"))
        .header("x-forwarded-for", "127.0.0.1")
        .header("forwarded", "for=127.0.0.1")
        .header("x-real-ip", "127.0.0.1")
        .send()
        .await
        .expect("connect from 127.0.0.2 (all of 127.0.0.0/8 is loopback on Linux)");
    assert_eq!(forged.status(), 403, "peer 127.0.0.2 refused");
    let res = from(only)
        .get(server.url("/__nexus/traces/abc"))
        .header("x-forwarded-for", "127.0.0.2")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "peer 127.0.0.1 allowed");
    assert_eq!(
        *seen.lock().unwrap(),
        [Some(other), Some(only)],
        "the gate saw the socket peers"
    );
}
