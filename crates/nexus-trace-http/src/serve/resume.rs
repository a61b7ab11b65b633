//! Where a reconnecting client resumes: `Last-Event-ID` or `?since=`.
//!
//! Rules (documented answers for every input):
//! * A `Last-Event-ID` header wins over `?since=`.
//! * An empty or all-whitespace `Last-Event-ID` counts as absent (the SSE
//!   spec's "reset"), so `?since=` or the default applies.
//! * A value must be 1 to 20 ASCII digits that fit in a `u64`; anything else
//!   (`abc`, `-1`, `+5`, ` 5`, `5 `, 21+ digits, overflow, NUL, non-UTF-8) is
//!   rejected with [`ResumeError`], which the adapters answer with
//!   `400 Bad Request` and the error text.
//! * Without either, the stream starts with new events only, or replays the
//!   retained backlog when the caller asks for `default_since = Some(0)`.

use std::fmt;

/// A malformed resume point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeError {
    /// The `Last-Event-ID` header is not a decimal event id.
    LastEventId,
    /// The `since` query parameter is not a decimal event id.
    Since,
}

impl fmt::Display for ResumeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            ResumeError::LastEventId => "Last-Event-ID header",
            ResumeError::Since => "since query parameter",
        };
        write!(
            f,
            "invalid {what}: expected a decimal event id (1 to 20 digits)"
        )
    }
}

impl std::error::Error for ResumeError {}

/// Parses a decimal event id: 1 to 20 ASCII digits, no sign, no spaces.
pub fn parse_id(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() || raw.len() > 20 || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Digits only, so this is valid UTF-8; overflow is rejected by parse.
    std::str::from_utf8(raw).ok()?.parse().ok()
}

/// The value of `since` in a raw query string, if present. The last
/// occurrence wins; the value is taken verbatim (ids need no decoding).
pub fn since_param(query: &str) -> Option<&str> {
    query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("since="))
        .next_back()
}

/// Resolves the id after which a stream starts, or `None` for "new events
/// only" when neither the header nor the query names one.
pub fn resume_point(
    last_event_id: Option<&[u8]>,
    query: Option<&str>,
) -> Result<Option<u64>, ResumeError> {
    if let Some(raw) = last_event_id {
        if !raw.iter().all(|b| *b == b' ' || *b == b'\t') {
            return parse_id(raw).map(Some).ok_or(ResumeError::LastEventId);
        }
    }
    match query.and_then(since_param) {
        Some(v) => parse_id(v.as_bytes()).map(Some).ok_or(ResumeError::Since),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_beats_query() {
        assert_eq!(resume_point(Some(b"7"), Some("since=3")), Ok(Some(7)));
        assert_eq!(resume_point(None, Some("a=1&since=3")), Ok(Some(3)));
        assert_eq!(resume_point(None, Some("a=1")), Ok(None));
        assert_eq!(resume_point(None, None), Ok(None));
    }

    #[test]
    fn empty_header_is_absent() {
        assert_eq!(resume_point(Some(b""), Some("since=3")), Ok(Some(3)));
        assert_eq!(resume_point(Some(b"  "), None), Ok(None));
    }

    #[test]
    fn malformed_values_are_rejected() {
        for bad in [
            &b"abc"[..],
            b"-1",
            b"+5",
            b" 5",
            b"5 ",
            b"123456789012345678901",
            b"18446744073709551616",
            b"1\0",
            b"\xff",
            b"0x10",
        ] {
            assert_eq!(
                resume_point(Some(bad), None),
                Err(ResumeError::LastEventId),
                "{bad:?}"
            );
        }
        assert_eq!(
            resume_point(None, Some("since=-1")),
            Err(ResumeError::Since)
        );
        assert_eq!(resume_point(None, Some("since=")), Err(ResumeError::Since));
    }

    #[test]
    fn limits() {
        assert_eq!(parse_id(b"0"), Some(0));
        assert_eq!(parse_id(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_id(b"00000000000000000042"), Some(42));
    }
}
