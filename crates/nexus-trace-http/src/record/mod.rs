//! Recording a request: the lifecycle events ([`request`]), the route
//! template ([`route`]), query redaction ([`redact`]) and the trace headers.

pub mod redact;
pub mod request;
pub mod route;

use crate::PREFIX;

/// The response header that carries a request's trace id.
pub const TRACE_ID_HEADER: &str = "x-trace-id";

/// The W3C trace context request header.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// The W3C trace context header carrying vendor state alongside
/// `traceparent`.
pub const TRACESTATE_HEADER: &str = "tracestate";

/// The `tracestate` of a request from all its `tracestate` header lines:
/// W3C trace context says several lines are one list, combined with commas.
/// One line is borrowed as it is; only several allocate.
pub fn combined_tracestate<'a>(
    mut lines: impl Iterator<Item = &'a [u8]>,
) -> Option<std::borrow::Cow<'a, [u8]>> {
    let first = lines.next()?;
    let Some(second) = lines.next() else {
        return Some(std::borrow::Cow::Borrowed(first));
    };
    let mut all = first.to_vec();
    for line in std::iter::once(second).chain(lines) {
        all.push(b',');
        all.extend_from_slice(line);
    }
    Some(std::borrow::Cow::Owned(all))
}

/// Is `path` one of the nexus routes (which are never recorded themselves)?
pub fn is_nexus_path(path: &str) -> bool {
    path == PREFIX
        || path
            .strip_prefix(PREFIX)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracestate_lines_are_one_list() {
        let none: [&[u8]; 0] = [];
        assert!(combined_tracestate(none.into_iter()).is_none());
        let one = combined_tracestate([&b"a=1"[..]].into_iter()).unwrap();
        assert!(matches!(one, std::borrow::Cow::Borrowed(b"a=1")));
        let two = combined_tracestate([&b"a=1"[..], b"b=2,c=3"].into_iter()).unwrap();
        assert_eq!(&*two, b"a=1,b=2,c=3");
    }

    #[test]
    fn nexus_paths() {
        assert!(is_nexus_path("/__nexus"));
        assert!(is_nexus_path("/__nexus/events"));
        assert!(!is_nexus_path("/__nexusx"));
        assert!(!is_nexus_path("/users"));
    }
}
