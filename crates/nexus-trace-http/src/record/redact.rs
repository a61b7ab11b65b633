//! What of a request may enter the bus: the path (length-capped), never the
//! query string unless asked for, and then with sensitive values redacted.

use nexus_trace_core::Text;

/// Longest path kept in an event, in bytes.
pub const MAX_PATH: usize = 2048;
/// Longest client-supplied string (query, header-derived value) kept.
pub const MAX_FIELD: usize = 1024;

const SENSITIVE: [&str; 14] = [
    "token",
    "key",
    "secret",
    "password",
    "passwd",
    "pwd",
    "auth",
    "session",
    "signature",
    "sig",
    "code",
    "credential",
    "jwt",
    "cookie",
];

/// Truncates `s` to at most `max` bytes on a char boundary, marking the cut.
pub fn cap(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// [`cap`] into an event's [`Text`]: a copy of `s` (inline when short),
/// without an intermediate `String` unless it has to be cut.
pub fn capture(s: &str, max: usize) -> Text {
    if s.len() <= max {
        Text::copy(s)
    } else {
        Text::from(cap(s, max))
    }
}

/// The path as it appears in events: as received (still percent-encoded, so
/// invalid encodings are kept verbatim), capped at [`MAX_PATH`].
pub fn capture_path(path: &str) -> Text {
    capture(path, MAX_PATH)
}

/// Does this query key look like it carries a secret?
pub fn is_sensitive_key(key: &str) -> bool {
    let decoded = percent_decode_lossy(key).to_ascii_lowercase();
    SENSITIVE.iter().any(|s| decoded.contains(s))
}

/// The query string with the value of every sensitive key replaced by
/// `[REDACTED]`, capped at [`MAX_FIELD`].
pub fn redact_query(query: &str) -> String {
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_sensitive_key(k) => format!("{k}=[REDACTED]"),
            None if is_sensitive_key(pair) => "[REDACTED]".to_owned(),
            _ => pair.to_owned(),
        })
        .collect();
    cap(&redacted.join("&"), MAX_FIELD)
}

/// Percent-decodes (`+` as space), keeping invalid escapes as they are.
fn percent_decode_lossy(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_on_char_boundaries() {
        assert_eq!(cap("abc", 3), "abc");
        assert_eq!(cap("abcd", 3), "abc…");
        assert_eq!(cap("aé", 2), "a…");
        assert!(capture_path(&"/x".repeat(5000)).len() <= MAX_PATH + 3);
    }

    #[test]
    fn sensitive_values_never_survive() {
        let q = "user=ada&access_token=T1&API_KEY=T2&pass%77ord=T3&session_id=T4&x=1&token";
        let r = redact_query(q);
        for secret in ["T1", "T2", "T3", "T4"] {
            assert!(!r.contains(secret), "{secret} in {r}");
        }
        assert!(r.contains("user=ada") && r.contains("x=1"));
        assert_eq!(redact_query("a=%zz&b=%"), "a=%zz&b=%");
    }
}
