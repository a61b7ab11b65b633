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
    fn nexus_paths() {
        assert!(is_nexus_path("/__nexus"));
        assert!(is_nexus_path("/__nexus/events"));
        assert!(!is_nexus_path("/__nexusx"));
        assert!(!is_nexus_path("/users"));
    }
}
