//! A secret planted under any sensitive key never survives query redaction,
//! whatever surrounds it; redaction never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nexus_trace_core::web::redact::{is_sensitive_key, redact_query};

const SECRET: &str = "S3CR3TVALUE";

fuzz_target!(|input: (String, String, u8)| {
    let (prefix, suffix, which) = input;
    let _ = redact_query(&prefix);
    let keys = ["token", "api_key", "Password", "session", "access%5Ftoken", "x-auth", "sig"];
    let key = keys[usize::from(which) % keys.len()];
    assert!(is_sensitive_key(key));
    // The planted pair is its own `&`-separated field.
    let query = format!("{}&{key}={SECRET}&{}", prefix.replace(SECRET, ""), suffix.replace(SECRET, ""));
    let redacted = redact_query(&query);
    assert!(!redacted.contains(SECRET), "{query:?} -> {redacted:?}");
});
