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
    use base64::Engine as _;
    use sha2::Digest as _;

    fn inline(tag: &str) -> &'static str {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let start = HTML.find(&open).unwrap() + open.len();
        let end = HTML[start..].find(&close).unwrap() + start;
        &HTML[start..end]
    }

    fn hash(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(s.as_bytes()))
    }

    #[test]
    fn csp_hashes_match_the_page() {
        assert_eq!(SCRIPT_HASH, hash(inline("script")), "update SCRIPT_HASH");
        assert_eq!(STYLE_HASH, hash(inline("style")), "update STYLE_HASH");
        assert!(CSP.contains(SCRIPT_HASH) && CSP.contains(STYLE_HASH));
    }

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
