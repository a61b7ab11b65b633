//! Computes the dashboard's CSP hashes from the page itself, so the policy
//! can never drift from the inline script and style it allows. Without the
//! `dashboard` feature there is no page and nothing to do.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "dashboard")]
    csp::main();
}

#[cfg(feature = "dashboard")]
mod csp {
    use base64::Engine as _;
    use sha2::Digest as _;

    fn inline<'a>(html: &'a str, tag: &str) -> &'a str {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let start = html.find(&open).expect("inline block") + open.len();
        let end = html[start..].find(&close).expect("closing tag") + start;
        &html[start..end]
    }

    pub(super) fn main() {
        let page = "src/serve/dashboard.html";
        println!("cargo:rerun-if-changed={page}");
        let html = std::fs::read_to_string(page).expect("dashboard page");
        let hash = |tag| {
            base64::engine::general_purpose::STANDARD
                .encode(sha2::Sha256::digest(inline(&html, tag).as_bytes()))
        };
        let out = std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("csp.rs");
        std::fs::write(
            out,
            format!(
                "/// SHA-256 of the page's inline script, base64.\n\
                 pub const SCRIPT_HASH: &str = {:?};\n\
                 /// SHA-256 of the page's inline style, base64.\n\
                 pub const STYLE_HASH: &str = {:?};\n\
                 /// The Content-Security-Policy the page is served with.\n\
                 pub const CSP: &str = \"default-src 'none'; script-src 'sha256-{}'; \
                 style-src 'sha256-{}'; connect-src 'self'; img-src 'self' data:; \
                 base-uri 'none'; form-action 'none'; frame-ancestors 'none'\";\n",
                hash("script"),
                hash("style"),
                hash("script"),
                hash("style"),
            ),
        )
        .expect("write csp.rs");
    }
}
