//! Reading a Content-Security-Policy header and a served HTML page, to check
//! one against the other: what the page runs inline, what the policy allows.
//! Written for this check alone, from the CSP and HTML specs, sharing nothing
//! with how the page's policy is built.

use base64::Engine as _;
use sha2::Digest as _;

/// A policy's directives, each with its source list.
#[derive(Debug)]
pub struct Policy(Vec<(String, Vec<String>)>);

impl Policy {
    /// Parses a `Content-Security-Policy` value: directives separated by `;`,
    /// each a name and space-separated sources. Names are case-insensitive;
    /// a repeated directive is ignored (CSP §2.2.1).
    pub fn parse(header: &str) -> Policy {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for directive in header.split(';') {
            let mut tokens = directive.split_ascii_whitespace();
            let Some(name) = tokens.next() else { continue };
            let name = name.to_ascii_lowercase();
            if out.iter().all(|(n, _)| *n != name) {
                out.push((name, tokens.map(str::to_owned).collect()));
            }
        }
        Policy(out)
    }

    /// The sources of `directive`; empty if the policy lacks it.
    pub fn get(&self, directive: &str) -> &[String] {
        self.0
            .iter()
            .find(|(n, _)| n == directive)
            .map_or(&[], |(_, s)| s.as_slice())
    }
}

/// `'sha256-<base64>'`: the source expression that allows this inline block.
pub fn source_hash(block: &str) -> String {
    let digest = sha2::Sha256::digest(block.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// What a page runs or styles inline, found by scanning its tags.
#[derive(Debug, Default)]
pub struct InlineCode {
    /// The text of every `<script>` without `src`.
    pub scripts: Vec<String>,
    /// The text of every `<style>`.
    pub styles: Vec<String>,
    /// Tags that load something: `<script src>`, `<link rel=stylesheet>`.
    pub external: Vec<String>,
    /// `on…=` handlers and `style=` attributes (as `tag attr`).
    pub inline_attributes: Vec<String>,
}

impl InlineCode {
    /// Scans `html`. Script and style bodies are raw text: they end at the
    /// first `</script` / `</style` (any case), as in the HTML tokenizer.
    pub fn of(html: &str) -> InlineCode {
        let mut found = InlineCode::default();
        let lower = html.to_ascii_lowercase();
        let mut at = 0;
        while let Some(open) = lower[at..].find('<').map(|i| at + i) {
            if lower[open..].starts_with("<!--") {
                at = lower[open..]
                    .find("-->")
                    .map_or(html.len(), |i| open + i + 3);
                continue;
            }
            let Some(close) = lower[open..].find('>').map(|i| open + i) else {
                break;
            };
            let tag = &lower[open + 1..close];
            let mut words = tag.split_ascii_whitespace();
            let name = words.next().unwrap_or("").trim_end_matches('/').to_owned();
            let attrs: Vec<&str> = words.collect();
            for a in &attrs {
                let attr = a.split('=').next().unwrap_or("");
                if attr.starts_with("on") || attr == "style" {
                    found.inline_attributes.push(format!("{name} {attr}"));
                }
            }
            at = close + 1;
            if name == "script" || name == "style" {
                let end_tag = format!("</{name}");
                let end = lower[at..].find(&end_tag).map_or(html.len(), |i| at + i);
                let body = html[at..end].to_owned();
                if name == "style" {
                    found.styles.push(body);
                } else if attrs.iter().any(|a| a.starts_with("src=")) {
                    found.external.push(tag.to_owned());
                } else {
                    found.scripts.push(body);
                }
                at = end;
            } else if name == "link" && attrs.iter().any(|a| a.contains("stylesheet")) {
                found.external.push(tag.to_owned());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_directives() {
        let p =
            Policy::parse("default-src 'none'; Script-Src 'sha256-a' 'sha256-b';; script-src x");
        assert_eq!(p.get("default-src"), ["'none'"]);
        assert_eq!(p.get("script-src"), ["'sha256-a'", "'sha256-b'"]);
        assert!(p.get("style-src").is_empty());
    }

    #[test]
    fn inline_blocks_and_attributes() {
        let page = InlineCode::of(
            "<!-- <script>no</script> --><style>a{}</style><SCRIPT>1</Script>\
             <script src=x.js></script><div onclick=\"f()\" style=\"c\">t</div>\
             <link rel=stylesheet href=s.css><script type=module>2</script>",
        );
        assert_eq!(page.styles, ["a{}"]);
        assert_eq!(page.scripts, ["1", "2"]);
        assert_eq!(page.external.len(), 2);
        assert_eq!(page.inline_attributes, ["div onclick", "div style"]);
        // The example of CSP §8.3 (hash of `alert('Hello, world.');`).
        assert_eq!(
            source_hash("alert('Hello, world.');"),
            "'sha256-qznLcsROx4GACP2dm0UCKCzCG+HiZ1guq6ZZDob/Tng='"
        );
    }
}
