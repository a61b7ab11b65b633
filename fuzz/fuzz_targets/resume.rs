//! `Last-Event-ID` / `since` parsing never panics, accepts exactly 1 to 20
//! ASCII digits that fit a u64, and the header always wins when present.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nexus_trace_http::serve::resume::{parse_id, resume_point, ResumeError};

fuzz_target!(|input: (&[u8], &str)| {
    let (header, query) = input;
    let strict = !header.is_empty()
        && header.len() <= 20
        && header.iter().all(u8::is_ascii_digit);
    match parse_id(header) {
        Some(id) => {
            assert!(strict);
            assert_eq!(id.to_string().trim_start_matches('0'), std::str::from_utf8(header).unwrap().trim_start_matches('0'));
        }
        None => assert!(!strict || header.len() == 20, "rejected valid {header:?}"),
    }
    let blank = header.iter().all(|b| *b == b' ' || *b == b'\t');
    let resolved = resume_point(Some(header), Some(query));
    if blank {
        // An empty header defers to `?since=`.
        assert_ne!(resolved, Err(ResumeError::LastEventId));
    } else {
        match parse_id(header) {
            Some(id) => assert_eq!(resolved, Ok(Some(id)), "the header wins"),
            None => assert_eq!(resolved, Err(ResumeError::LastEventId)),
        }
    }
});
