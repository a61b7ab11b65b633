//! `tracestate` (W3C trace context level 1, §3.3): which values are kept
//! and passed on.

// tracestate

/// The longest `tracestate` value kept: the W3C recommendation (512
/// characters, 32 list members) that propagators must at least support.
pub const MAX_TRACESTATE_LEN: usize = 512;

/// Is `value` a `tracestate` header worth passing on (W3C trace-context
/// level 1, §3.3)? At most [`MAX_TRACESTATE_LEN`] bytes and 32 list members;
/// each member is `key=value`, the key lowercase `[a-z0-9_\-*/]` (optionally
/// `tenant@system`), the value 1 to 256 printable ASCII characters other
/// than `,` and `=`, not ending in a space. Empty members (`a=1,,b=2`) are
/// allowed, as the spec says. A value that fails is dropped whole, never
/// repaired, as the spec asks of a receiver.
pub fn tracestate_is_valid(value: &str) -> bool {
    if value.len() > MAX_TRACESTATE_LEN {
        return false;
    }
    let mut members = 0;
    for member in value.split(',') {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        members += 1;
        let Some((key, val)) = member.split_once('=') else {
            return false;
        };
        if members > 32 || !tracestate_key_is_valid(key) || !tracestate_value_is_valid(val) {
            return false;
        }
    }
    members > 0
}

fn tracestate_key_is_valid(key: &str) -> bool {
    // Only a tenant id may start with a digit; a simple key and a system
    // id start with a lowercase letter.
    let part = |p: &str, max: usize, digit_first: bool| {
        let b = p.as_bytes();
        !b.is_empty()
            && b.len() <= max
            && (b[0].is_ascii_lowercase() || (digit_first && b[0].is_ascii_digit()))
            && b.iter()
                .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-*/".contains(&c))
    };
    match key.split_once('@') {
        Some((tenant, system)) => part(tenant, 241, true) && part(system, 14, false),
        None => part(key, 256, false),
    }
}

fn tracestate_value_is_valid(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b.last() != Some(&b' ')
        && b.iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracestate_validation_follows_the_w3c_grammar() {
        for ok in [
            "rojo=00f067aa0ba902b7",
            "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7",
            "a=1,,b=2",
            "tenant@vendor=x y",
            "1tenant@vendor=x",
            "k*/_-=v",
            "a=trailing ows ",
        ] {
            assert!(tracestate_is_valid(ok), "{ok:?} should be kept");
        }
        let long_ok = format!("a={}", "x".repeat(256));
        assert!(tracestate_is_valid(&long_ok));
        for bad in [
            "", " , ", "noequals", "Upper=1", "a=", "a=b=c", "a=\u{e9}", "@v=1", "t@=1", "a=\x01",
            "1abc=x", "t@1v=x",
        ] {
            assert!(!tracestate_is_valid(bad), "{bad:?} should be dropped");
        }
        let too_many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert!(!tracestate_is_valid(&too_many.join(",")));
        assert!(tracestate_is_valid(&too_many[..32].join(",")));
        assert!(!tracestate_is_valid(&format!("a={}", "x".repeat(257))));
        assert!(!tracestate_is_valid(&"a=1,".repeat(200)));
    }
}
