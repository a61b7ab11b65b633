//! Any event (any path/message bytes) encodes to exactly one SSE event that
//! a conforming parser decodes back to the same id and the same JSON, fed in
//! arbitrary chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nexus_trace_http::serve::sse::{write_event, write_lagged, SseParser};
use nexus_trace_core::Event;

fuzz_target!(|input: (u64, String, String, Vec<u8>, u16)| {
    let (id, path, message, cuts, lag) = input;
    let mut event = Event::log(message);
    event.id = id;
    event.path = path.into();
    let mut bytes = Vec::new();
    write_event(&event, &mut bytes);
    write_lagged(u64::from(lag) + 1, id.wrapping_add(1), &mut bytes);
    let mut parser = SseParser::default();
    let mut out = Vec::new();
    let mut rest = &bytes[..];
    for cut in cuts {
        let n = usize::from(cut).min(rest.len());
        out.extend(parser.feed(&rest[..n]));
        rest = &rest[n..];
    }
    out.extend(parser.feed(rest));
    assert_eq!(out.len(), 2, "one event frame and one lag frame: {out:?}");
    assert_eq!(out[0].event, "message");
    assert_eq!(out[0].id.as_deref(), Some(id.to_string().as_str()));
    assert_eq!(out[0].data, event.to_json());
    let back = Event::from_json(&out[0].data).expect("data decodes");
    assert_eq!((back.path, back.message), (event.path, event.message));
    assert_eq!(out[1].event, "lagged");
});
