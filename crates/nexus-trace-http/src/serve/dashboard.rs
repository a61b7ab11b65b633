//! The dashboard page: one self-contained HTML file (no build step, no CDN),
//! served at `/__nexus/` under a strict Content-Security-Policy that allows
//! exactly its own inline script and style (by hash) and same-origin
//! connections. Every event field is rendered with `textContent`, never
//! parsed as HTML.
//!
//! Options in the URL fragment (never sent to the server):
//! `#token=<bearer token>` for a token-gated mount, `#q=<text>` to preset
//! the text filter.

/// The page.
pub const HTML: &str = include_str!("dashboard.html");

include!(concat!(env!("OUT_DIR"), "/csp.rs"));

/// Every header the page is served with.
pub const HEADERS: [(&str, &str); 5] = [
    ("content-type", "text/html; charset=utf-8"),
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
];

#[cfg(test)]
mod tests {
    use super::*;
    // The policy is checked against the page as served, by hashing what is
    // served: the conformance case
    // `dashboard_csp_allows_exactly_the_served_inline_code` (both adapters)
    // and, in a browser that enforces it, the dashboard's browser test.

    #[test]
    fn page_never_parses_event_data_as_html() {
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!HTML.contains(sink), "dashboard uses {sink}");
        }
        assert!(
            !HTML.contains("http://") && !HTML.contains("https://"),
            "no CDN"
        );
    }
}
