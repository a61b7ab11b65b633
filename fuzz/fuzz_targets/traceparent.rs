//! `traceparent` parsing never panics, and whatever parses re-formats to a
//! canonical version-00 header that parses to the same ids.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nexus_trace_core::TraceParent;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(tp) = TraceParent::parse(s) {
        let text = tp.to_string();
        assert_eq!(text.len(), 55);
        let again = TraceParent::parse(&text).expect("canonical form parses");
        assert_eq!(
            (again.trace_id, again.parent_id, again.flags),
            (tp.trace_id, tp.parent_id, tp.flags)
        );
    }
});
