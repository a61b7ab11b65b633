//! Event JSON decoding never panics, and an event that decodes re-encodes to
//! JSON that decodes to the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nexus_trace_core::Event;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(event) = Event::from_json(s) {
        let json = event.to_json();
        let again = Event::from_json(&json).expect("our own output decodes");
        assert_eq!(again.to_json(), json, "encoding is stable");
    }
});
