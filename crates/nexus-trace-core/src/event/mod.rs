//! The trace [`Event`]: one request-lifecycle record, wire-compatible with the
//! Go `trace.Event` struct.
//!
//! The wire format, decoding and cost are documented on [`Event`].

mod attrs;
mod id;
mod json;
mod kind;
mod method;
mod text;

use std::fmt;
use std::time::{Duration, SystemTime};

pub use attrs::{Attrs, Value};
pub use id::{W3cId, WireId};
pub(crate) use json::format_timestamp;
pub use json::{EventParseError, GoFormatter};
pub use kind::EventKind;
use kind::KindTag;
pub use method::Method;
use method::MethodTag;
pub use text::{Text, INLINE_CAPACITY};

use crate::traceparent::{SpanId, TraceId};

/// One request-lifecycle trace event (port of Go's `trace.Event`).
///
/// The exact JSON format is below ([wire format](#wire-format)). Most
/// fields are public; [`kind`](Event::kind) and [`method`](Event::method)
/// are read and set through methods, because the event stores each in one
/// byte (see [cost](#cost)). The constructors keep common events short:
///
/// ```
/// use std::time::Duration;
/// use nexus_trace_core::{Event, EventKind, Method};
///
/// let log = Event::log("cache miss").attr("key", "user:7");
/// let call = Event::downstream("db.users.get", Duration::from_millis(3)).attr("rows", 1);
/// assert_eq!((log.kind(), log.message.as_str()), (EventKind::Log, "cache miss"));
/// assert_eq!(call.attrs["rows"], 1);
///
/// let mut end = Event::new(EventKind::RequestEnd).with_method(Method::Get);
/// end.path = "/users/7".into();
/// end.status = 200;
/// let custom = Event::new("cache.hit"); // any other kind is kept by name
/// assert_eq!(custom.kind_str(), "cache.hit");
/// ```
///
/// # Wire format
///
/// [`Event::to_json`] / [`Event::write_json`] produce exactly the bytes Go's
/// `encoding/json` produces for the Go struct (for an event that only uses
/// the fields the Go struct has):
///
/// * field order and names: `id`, `traceId`, `spanId`?, `parentId`?, `kind`,
///   `service`?, `endpoint`?, `transport`?, `method`?, `path`?, `status`?,
///   `durationMs`?, `message`?, `error`?, `timestamp`, `meta`?, `durationNs`?
///   (`?` = omitted when empty / zero, like Go's `omitempty`). `spanId`,
///   `parentId` and `durationNs` are Rust-side extensions; they are omitted
///   when unset, so a Go-shaped event serialises byte-for-byte like Go.
/// * strings are escaped like Go (HTML-safe: `<`, `>`, `&`, U+2028 and U+2029
///   become `\u003c`, `\u003e`, `\u0026`, `\u2028`, `\u2029`), see
///   [`GoFormatter`];
/// * `timestamp` is formatted like Go's `time.Time.MarshalJSON` for a UTC time
///   (RFC 3339, nanosecond precision, trailing zeros of the fraction trimmed,
///   `Z` suffix);
/// * `meta` (the event's [`attrs`](Event::attrs)) keys are sorted (at every
///   nesting level), and floating point values are formatted like Go formats
///   a `float64`.
/// * trace and span ids are stored in binary ([`WireId`]) and written as
///   lowercase hex; an id that is not a W3C id is kept as text and written
///   back verbatim.
///
/// The plain [`Serialize`](serde::Serialize) implementation emits the same field set in the
/// same order, but string escaping and float formatting are then up to the
/// serializer in use (e.g. `serde_json::to_string` does not apply the Go
/// HTML escaping). Use [`Event::to_json`] for the Go-compatible bytes.
///
/// # Decoding
///
/// [`Event::from_json`] (and the [`Deserialize`](serde::Deserialize) implementation) is lenient
/// like Go's `json.Unmarshal`: every field may be missing or `null` (it then
/// takes its default), unknown fields are ignored, field names are matched
/// exactly first and then ASCII-case-insensitively, and for duplicate fields
/// the last one wins. Values of the wrong type are errors. A `traceId`,
/// `spanId` or `parentId` that is not the lowercase hex of a W3C id (the Go
/// implementation may send a UUID, or any string) is kept as text, never
/// dropped or rejected, so a decoded event writes back the bytes it was
/// read from.
///
/// # Cost
///
/// An event's strings are [`Text`]: static, inline up to 16 bytes, or a
/// shared reference-counted buffer, so cloning an event never copies a string, and
/// building one from a layer's configuration allocates nothing. Ids are
/// fixed-size binary, and empty [`Attrs`] hold no heap. The kind and the
/// method are a byte each; the name of an unknown kind or of a non-standard
/// method lives in one boxed record that most events do not have (setting
/// the first such name allocates it, and cloning an event that has one
/// allocates a copy of the box). The event is at most 216 bytes: a retained
/// event costs 248 bytes with its `Arc` counts and ring slot, plus whatever
/// heap its texts, attributes and names hold (250 B measured for an event
/// without any). Publishing a prepared event costs one allocation (its
/// `Arc`).
#[derive(Clone, PartialEq)]
pub struct Event {
    /// Sequence number assigned by the bus (JSON `id`, always present).
    pub id: u64,
    /// Trace this event belongs to (JSON `traceId`, always present).
    pub trace_id: WireId<TraceId>,
    /// Span that emitted this event (JSON `spanId`, omitted when unset).
    /// Extension: not in the Go struct.
    pub span_id: WireId<SpanId>,
    /// Parent span of [`span_id`](Self::span_id) (JSON `parentId`, omitted
    /// when unset). Extension: not in the Go struct.
    pub parent_id: WireId<SpanId>,
    /// What happened (JSON `kind`, always present): see
    /// [`kind`](Self::kind). One byte; the name of an unknown kind is in
    /// [`names`](Self::names).
    kind: KindTag,
    /// Name of the service that emitted the event (JSON `service`).
    pub service: Text,
    /// Logical endpoint / route name (JSON `endpoint`).
    pub endpoint: Text,
    /// Transport, e.g. `"http"` or `"grpc"` (JSON `transport`).
    pub transport: Text,
    /// Request method (JSON `method`, omitted when none): see
    /// [`method`](Self::method). One byte, like `kind`.
    method: MethodTag,
    /// Request path (JSON `path`).
    pub path: Text,
    /// Response status code; 0 = unset (JSON `status`).
    pub status: u16,
    /// Duration in whole milliseconds, truncated like Go's
    /// `Duration.Milliseconds()`; 0 = unset (JSON `durationMs`).
    pub duration_ms: u64,
    /// Human-readable message (JSON `message`). For a `downstream` event,
    /// the call's name.
    pub message: Text,
    /// Error text, empty when the operation succeeded (JSON `error`).
    pub error: Text,
    /// When the event happened (JSON `timestamp`, always present).
    /// [`SystemTime::UNIX_EPOCH`] means "unset": the bus fills in the
    /// publish time.
    pub timestamp: SystemTime,
    /// Attributes (JSON `meta`, omitted when empty), kept sorted by key.
    pub attrs: Attrs,
    /// Precise duration in nanoseconds; 0 = unset (JSON `durationNs`).
    /// Extension: Go's millisecond field drops sub-millisecond durations.
    pub duration_ns: u64,
    /// The names of an unknown kind and of a non-standard method, out of
    /// line because few events have either; `None` when both are empty.
    names: Option<Box<Names>>,
}

/// The rare names an [`Event`] keeps out of line.
#[derive(Clone, Debug, Default, PartialEq)]
struct Names {
    kind: Text,
    method: Text,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("id", &self.id)
            .field("trace_id", &self.trace_id)
            .field("span_id", &self.span_id)
            .field("parent_id", &self.parent_id)
            .field("kind", &self.kind())
            .field("service", &self.service)
            .field("endpoint", &self.endpoint)
            .field("transport", &self.transport)
            .field("method", &self.method())
            .field("path", &self.path)
            .field("status", &self.status)
            .field("duration_ms", &self.duration_ms)
            .field("message", &self.message)
            .field("error", &self.error)
            .field("timestamp", &self.timestamp)
            .field("attrs", &self.attrs)
            .field("duration_ns", &self.duration_ns)
            .finish()
    }
}

impl Default for Event {
    /// A `log` event with every other field unset.
    fn default() -> Self {
        Event::new(EventKind::Log)
    }
}

impl Event {
    /// A new event of the given kind; every other field is unset.
    #[must_use]
    pub fn new(kind: impl Into<EventKind>) -> Self {
        Event::spanned(
            kind.into(),
            WireId::UNSET,
            WireId::UNSET,
            WireId::UNSET,
            Text::EMPTY,
            Text::EMPTY,
        )
    }

    /// An event of `kind` with the given ids, service and endpoint; every
    /// other field unset. One struct expression, so that the event (216
    /// bytes) is written once where it goes instead of built and copied.
    pub(crate) fn spanned(
        kind: EventKind,
        trace_id: WireId<TraceId>,
        span_id: WireId<SpanId>,
        parent_id: WireId<SpanId>,
        service: Text,
        endpoint: Text,
    ) -> Self {
        let (kind, name) = kind.into_tag();
        Event {
            id: 0,
            trace_id,
            span_id,
            parent_id,
            kind,
            service,
            endpoint,
            transport: Text::EMPTY,
            method: MethodTag::NONE,
            path: Text::EMPTY,
            status: 0,
            duration_ms: 0,
            message: Text::EMPTY,
            error: Text::EMPTY,
            timestamp: SystemTime::UNIX_EPOCH,
            attrs: Attrs::new(),
            duration_ns: 0,
            // As `set_name` keeps it: no box for an empty name.
            names: name.filter(|n| !n.is_empty()).map(|kind| {
                Box::new(Names {
                    kind,
                    method: Text::EMPTY,
                })
            }),
        }
    }

    /// What happened (JSON `kind`). Cheap: a tag, or for an unknown kind a
    /// clone of its [`Text`] name (no copy of the string).
    #[must_use]
    pub fn kind(&self) -> EventKind {
        self.kind
            .kind(self.names.as_ref().map_or(&Text::EMPTY, |n| &n.kind))
    }

    /// The kind's wire name (`"request.end"`, or an unknown kind's name).
    #[must_use]
    pub fn kind_str(&self) -> &str {
        self.kind
            .name()
            .unwrap_or_else(|| self.names.as_ref().map_or("", |n| n.kind.as_str()))
    }

    /// Sets the kind. A known kind is a one-byte tag; an unknown one keeps
    /// its name out of line (one allocation, the first time the event needs
    /// a name).
    pub fn set_kind(&mut self, kind: impl Into<EventKind>) {
        let (tag, name) = kind.into().into_tag();
        self.kind = tag;
        self.set_name(|names| &mut names.kind, name);
    }

    /// The request method (JSON `method`), `None` when unset. Cheap, like
    /// [`kind`](Self::kind).
    #[must_use]
    pub fn method(&self) -> Option<Method> {
        self.method
            .method(self.names.as_ref().map_or(&Text::EMPTY, |n| &n.method))
    }

    /// The method's name, `""` when unset.
    #[must_use]
    pub fn method_str(&self) -> &str {
        self.method
            .name()
            .unwrap_or_else(|| self.names.as_ref().map_or("", |n| n.method.as_str()))
    }

    /// Sets the method (`None`, or an empty name, unsets it). A standard
    /// method is a one-byte tag; another keeps its name out of line.
    pub fn set_method(&mut self, method: impl Into<Option<Method>>) {
        let (tag, name) = MethodTag::of(method.into());
        self.method = tag;
        self.set_name(|names| &mut names.method, name);
    }

    /// Sets the method (builder style).
    #[must_use]
    pub fn with_method(mut self, method: impl Into<Option<Method>>) -> Self {
        self.set_method(method);
        self
    }

    /// Stores (or, with `None`, clears) one out-of-line name, dropping the
    /// box once both are empty so that equal events compare equal.
    fn set_name(&mut self, field: fn(&mut Names) -> &mut Text, name: Option<Text>) {
        // An empty name is the same as none: the tag alone says `Other`.
        match (name.filter(|n| !n.is_empty()), self.names.as_mut()) {
            (Some(name), Some(names)) => *field(names) = name,
            (Some(name), None) => {
                let mut names = Box::<Names>::default();
                *field(&mut names) = name;
                self.names = Some(names);
            }
            (None, Some(names)) => {
                *field(names) = Text::EMPTY;
                if names.kind.is_empty() && names.method.is_empty() {
                    self.names = None;
                }
            }
            (None, None) => {}
        }
    }

    /// A `log` event with `message`.
    #[must_use]
    pub fn log(message: impl Into<Text>) -> Self {
        Event {
            message: message.into(),
            ..Event::default()
        }
    }

    /// A `downstream` event: a call named `name` that took `duration`.
    #[must_use]
    pub fn downstream(name: impl Into<Text>, duration: Duration) -> Self {
        let mut event = Event {
            message: name.into(),
            ..Event::new(EventKind::Downstream)
        };
        event.set_duration(duration);
        event
    }

    /// Sets the attribute `key` (builder style).
    #[must_use]
    pub fn attr(mut self, key: impl Into<Text>, value: impl Into<Value>) -> Self {
        self.attrs.insert(key, value);
        self
    }

    /// Sets both [`duration_ms`](Self::duration_ms) (truncated to whole
    /// milliseconds, like Go) and [`duration_ns`](Self::duration_ns),
    /// saturating at `u64::MAX`.
    pub fn set_duration(&mut self, duration: Duration) {
        self.duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        self.duration_ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    }

    /// The event's duration: [`duration_ns`](Self::duration_ns) when set,
    /// otherwise [`duration_ms`](Self::duration_ms) (e.g. for events decoded
    /// from Go, which only carry milliseconds).
    pub fn duration(&self) -> Duration {
        if self.duration_ns != 0 {
            Duration::from_nanos(self.duration_ns)
        } else {
            Duration::from_millis(self.duration_ms)
        }
    }

    /// Serialises the event to Go-compatible JSON (see the
    /// [wire format](Event#wire-format)).
    #[must_use]
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(256);
        self.write_json(&mut out);
        // Serialisation only ever writes valid UTF-8; the lossy path is a
        // never-taken fallback that avoids a panic.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Appends the event's Go-compatible JSON (see the
    /// [wire format](Event#wire-format)) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        json::write(self, out);
    }

    /// Parses an event from JSON (leniently, like Go; see the
    /// [wire format](Event#wire-format)).
    ///
    /// # Errors
    ///
    /// Returns [`EventParseError`] for malformed JSON, a top-level value that
    /// is not an object, trailing data, or a field of the wrong type (e.g.
    /// `{"id":"x"}`), or an invalid timestamp.
    pub fn from_json(s: &str) -> Result<Event, EventParseError> {
        serde_json::from_str(s).map_err(EventParseError::from)
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::json::write_go_float;
    use super::*;
    use serde_json::json;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
    }

    /// 2026-11-25T01:02:03Z
    const T_2026: u64 = 1_795_568_523;

    fn minimal() -> Event {
        Event {
            id: 7,
            trace_id: "t1".into(),
            kind: EventKind::RequestStart.into_tag().0,
            timestamp: at(T_2026, 0),
            ..Event::default()
        }
    }

    #[test]
    fn full_event_matches_go() {
        let mut attrs = Attrs::new();
        // Insertion deliberately unsorted, at both levels.
        attrs.insert("zeta", json!(1));
        attrs.insert(
            "nested",
            json!({"b": 2, "a": [1, 2.5, "x"], "c": {"y": null, "x": true}}),
        );
        attrs.insert("alpha", json!(-3.25));
        attrs.insert("flag", json!(false));
        attrs.insert("none", serde_json::Value::Null);
        attrs.insert("big", json!(1e21));
        attrs.insert("tiny", json!(1e-7));
        attrs.insert("whole", json!(2.0));
        attrs.insert("k<&>", json!("v<&>"));
        let ev = Event {
            id: 42,
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            kind: EventKind::Downstream.into_tag().0,
            service: "checkout".into(),
            endpoint: "POST /orders".into(),
            transport: "http".into(),
            method: MethodTag::of(Some(Method::Post)).0,
            path: "/orders?id=1&x=2".into(),
            status: 502,
            duration_ms: 1234,
            message: "upstream failed".into(),
            error: "dial tcp: timeout".into(),
            timestamp: at(T_2026, 40_500_000),
            attrs,
            ..Event::default()
        };
        let expected = concat!(
            r#"{"id":42,"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","kind":"downstream","#,
            r#""service":"checkout","endpoint":"POST /orders","transport":"http","#,
            r#""method":"POST","path":"/orders?id=1\u0026x=2","status":502,"#,
            r#""durationMs":1234,"message":"upstream failed","error":"dial tcp: timeout","#,
            r#""timestamp":"2026-11-25T01:02:03.0405Z","#,
            r#""meta":{"alpha":-3.25,"big":1e+21,"flag":false,"#,
            r#""k\u003c\u0026\u003e":"v\u003c\u0026\u003e","#,
            r#""nested":{"a":[1,2.5,"x"],"b":2,"c":{"x":true,"y":null}},"#,
            r#""none":null,"tiny":1e-7,"whole":2,"zeta":1}}"#,
        );
        assert_eq!(ev.to_json(), expected);
        let mut buf = b"prefix:".to_vec();
        ev.write_json(&mut buf);
        assert_eq!(buf, [b"prefix:".as_slice(), expected.as_bytes()].concat());
    }

    #[test]
    fn minimal_event() {
        assert_eq!(
            minimal().to_json(),
            r#"{"id":7,"traceId":"t1","kind":"request.start","timestamp":"2026-11-25T01:02:03Z"}"#
        );
        assert_eq!(
            Event::default().to_json(),
            r#"{"id":0,"traceId":"","kind":"log","timestamp":"1970-01-01T00:00:00Z"}"#
        );
    }

    #[test]
    fn omitempty_each_field() {
        let base = minimal();
        let head = r#"{"id":7,"traceId":"t1""#;
        let ts = r#""timestamp":"2026-11-25T01:02:03Z""#;
        let cases: Vec<(Event, String)> = vec![
            (
                Event {
                    span_id: "s".into(),
                    ..base.clone()
                },
                format!(r#"{head},"spanId":"s","kind":"request.start",{ts}}}"#),
            ),
            (
                Event {
                    parent_id: "p".into(),
                    ..base.clone()
                },
                format!(r#"{head},"parentId":"p","kind":"request.start",{ts}}}"#),
            ),
            (
                Event {
                    service: "a".into(),
                    ..base.clone()
                },
                format!(r#"{head},"kind":"request.start","service":"a",{ts}}}"#),
            ),
            (
                Event {
                    endpoint: "e".into(),
                    ..base.clone()
                },
                format!(r#"{head},"kind":"request.start","endpoint":"e",{ts}}}"#),
            ),
            (
                Event {
                    transport: "grpc".into(),
                    ..base.clone()
                },
                format!(r#"{head},"kind":"request.start","transport":"grpc",{ts}}}"#),
            ),
            (
                Event {
                    method: MethodTag::of(Some(Method::Get)).0,
                    ..base.clone()
                },
                format!(r#"{head},"kind":"request.start","method":"GET",{ts}}}"#),
            ),
            (
                Event {
                    path: "/".into(),
                    ..base.clone()
                },
                format!(r#"{head},"kind":"request.start","path":"/",{ts}}}"#),
            ),
            (
                Event {
                    status: 200,
                    ..base.clone()
                },
                format!(r#"{head},"kind":"request.start","status":200,{ts}}}"#),
            ),
            (
                Event {
                    duration_ms: 5,
                    ..base.clone()
                },
                format!(r#"{head},"kind":"request.start","durationMs":5,{ts}}}"#),
            ),
            (
                Event {
                    message: "m".into(),
                    ..base.clone()
                },
                format!(r#"{head},"kind":"request.start","message":"m",{ts}}}"#),
            ),
            (
                Event {
                    error: "x".into(),
                    ..base.clone()
                },
                format!(r#"{head},"kind":"request.start","error":"x",{ts}}}"#),
            ),
            (
                Event {
                    attrs: [("k", 1)].into_iter().collect(),
                    ..base.clone()
                },
                format!(r#"{head},"kind":"request.start",{ts},"meta":{{"k":1}}}}"#),
            ),
            (
                Event {
                    duration_ns: 999,
                    ..base.clone()
                },
                format!(r#"{head},"kind":"request.start",{ts},"durationNs":999}}"#),
            ),
        ];
        for (ev, expected) in cases {
            assert_eq!(ev.to_json(), expected);
        }
    }

    #[test]
    fn extension_fields_order() {
        let mut ev = minimal();
        ev.span_id = "00f067aa0ba902b7".into();
        ev.parent_id = "00f067aa0ba902b8".into();
        ev.set_duration(Duration::from_micros(1500));
        assert_eq!(
            ev.to_json(),
            concat!(
                r#"{"id":7,"traceId":"t1","spanId":"00f067aa0ba902b7","#,
                r#""parentId":"00f067aa0ba902b8","kind":"request.start","durationMs":1,"#,
                r#""timestamp":"2026-11-25T01:02:03Z","durationNs":1500000}"#
            )
        );
        assert_eq!(ev.duration(), Duration::from_micros(1500));
        ev.duration_ns = 0;
        assert_eq!(ev.duration(), Duration::from_millis(1));
    }

    #[test]
    fn escaping_like_go() {
        let mut ev = minimal();
        ev.message = "<script>&</script>".into();
        ev.error = "a\u{2028}b\u{2029}c\u{1}d\ne\"f\\g😀h\r\t\u{8}\u{c}\u{1f}\u{7f}é".into();
        assert_eq!(
            ev.to_json(),
            concat!(
                r#"{"id":7,"traceId":"t1","kind":"request.start","#,
                r#""message":"\u003cscript\u003e\u0026\u003c/script\u003e","#,
                r#""error":"a\u2028b\u2029c\u0001d\ne\"f\\g😀h\r\t\b\f\u001f"#,
                "\u{7f}é\",",
                r#""timestamp":"2026-11-25T01:02:03Z"}"#
            )
        );
        // Other characters with lead byte E2 are not escaped.
        ev.error = "\u{2027}\u{202a}\u{20ac}".into();
        assert!(ev
            .to_json()
            .contains("\"error\":\"\u{2027}\u{202a}\u{20ac}\""));
        // Round-trips through the parser.
        let back = Event::from_json(&ev.to_json()).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn timestamp_formats() {
        let cases = [
            (at(T_2026, 500_000_000), "2026-11-25T01:02:03.5Z"),
            (at(T_2026, 0), "2026-11-25T01:02:03Z"),
            (at(T_2026, 123_456_789), "2026-11-25T01:02:03.123456789Z"),
            (at(T_2026, 1), "2026-11-25T01:02:03.000000001Z"),
            (at(T_2026, 120_000_000), "2026-11-25T01:02:03.12Z"),
            (SystemTime::UNIX_EPOCH, "1970-01-01T00:00:00Z"),
            (
                SystemTime::UNIX_EPOCH - Duration::from_millis(1500),
                "1969-12-31T23:59:58.5Z",
            ),
            // Go's zero time.
            (
                SystemTime::UNIX_EPOCH - Duration::from_secs(62_135_596_800),
                "0001-01-01T00:00:00Z",
            ),
            // Clamped into Go's marshalable range.
            (
                SystemTime::UNIX_EPOCH - Duration::from_secs(70_000_000_000),
                "0000-01-01T00:00:00Z",
            ),
            (
                SystemTime::UNIX_EPOCH + Duration::from_secs(300_000_000_000),
                "9999-12-30T22:00:00.999999999Z",
            ),
        ];
        for (t, expected) in cases {
            let ev = Event {
                timestamp: t,
                ..Event::default()
            };
            let json = ev.to_json();
            assert!(
                json.ends_with(&format!(r#","timestamp":"{expected}"}}"#)),
                "{json} vs {expected}"
            );
        }
    }

    #[test]
    fn timestamp_parse() {
        let parse =
            |ts: &str| Event::from_json(&format!(r#"{{"timestamp":"{ts}"}}"#)).map(|e| e.timestamp);
        assert_eq!(
            parse("2026-11-25T01:02:03.0405Z").unwrap(),
            at(T_2026, 40_500_000)
        );
        assert_eq!(parse("2026-11-25T02:02:03+01:00").unwrap(), at(T_2026, 0));
        assert_eq!(
            parse("1969-12-31T23:59:58.5Z").unwrap(),
            SystemTime::UNIX_EPOCH - Duration::from_millis(1500)
        );
        assert!(parse("2026-11-25T01:02:03").is_err(), "offset is required");
        assert!(parse("yesterday").is_err());
        assert!(parse("").is_err());
        let err = Event::from_json(r#"{"timestamp":5}"#).unwrap_err();
        assert!(err.to_string().contains("timestamp"), "{err}");
    }

    #[test]
    fn unknown_kind_round_trips() {
        let json =
            r#"{"id":1,"traceId":"t","kind":"queue.publish","timestamp":"2026-11-25T01:02:03Z"}"#;
        let ev = Event::from_json(json).unwrap();
        assert_eq!(ev.kind(), EventKind::Other("queue.publish".into()));
        assert_eq!(ev.kind_str(), "queue.publish");
        assert_eq!(ev.to_json(), json);

        for (s, k) in [
            ("request.start", EventKind::RequestStart),
            ("request.end", EventKind::RequestEnd),
            ("downstream", EventKind::Downstream),
            ("log", EventKind::Log),
        ] {
            assert_eq!(EventKind::from(s), k);
            assert_eq!(s.parse::<EventKind>().unwrap(), k);
            assert_eq!(k.to_string(), s);
            assert!(matches!(EventKind::from(s.to_string()), ref x if *x == k));
        }
        assert_eq!(EventKind::Other("log".into()), EventKind::Log);
        assert_eq!(EventKind::default(), EventKind::Log);
    }

    #[test]
    fn full_round_trip() {
        let mut ev = Event::new(EventKind::RequestEnd);
        ev.id = u64::MAX;
        ev.trace_id = "abc".into();
        ev.span_id = "s1".into();
        ev.parent_id = "p1".into();
        ev.service = "svc".into();
        ev.endpoint = "ep".into();
        ev.transport = "http".into();
        ev.set_method(Method::Get);
        ev.path = "/a<b>".into();
        ev.status = 200;
        ev.duration_ms = 3;
        ev.duration_ns = 3_141_592;
        ev.message = "ok\u{2028}".into();
        ev.error = "none".into();
        ev.timestamp = at(T_2026, 123_456_789);
        ev.attrs
            .insert("n", json!({"z": [1, {"b": 1.5, "a": null}], "a": "x"}));
        let json = ev.to_json();
        let back = Event::from_json(&json).unwrap();
        assert_eq!(back, ev);
        assert_eq!(back.to_json(), json);
        // serde_json's own serializer gives the same structure (without the
        // Go-specific escaping).
        let plain = serde_json::to_string(&ev).unwrap();
        assert_eq!(Event::from_json(&plain).unwrap(), ev);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&plain).unwrap(),
            serde_json::from_str::<serde_json::Value>(&json).unwrap()
        );
    }

    #[test]
    fn go_encoded_events_round_trip() {
        // As the Go implementation writes them: its trace ids need not be
        // W3C ids (here a UUID, uppercase hex, a short id), and they are
        // kept as text, byte for byte.
        let go = [
            concat!(
                r#"{"id":3,"traceId":"8a5b6f0e-4f1c-4c2e-9a55-2f6f1c1e0b7d","kind":"request.end","#,
                r#""service":"shop","endpoint":"GET /orders/{id}","transport":"http","#,
                r#""method":"GET","path":"/orders/7?x=\u003c","status":200,"durationMs":12,"#,
                r#""timestamp":"2026-11-25T01:02:03.0405Z","meta":{"user":{"id":7}}}"#
            ),
            r#"{"id":4,"traceId":"4BF92F3577B34DA6A3CE929D0E0E4736","kind":"log","message":"x","timestamp":"2026-11-25T01:02:03Z"}"#,
            r#"{"id":5,"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","kind":"downstream","method":"PROPFIND","timestamp":"2026-11-25T01:02:03Z"}"#,
        ];
        for json in go {
            let ev = Event::from_json(json).unwrap();
            assert_eq!(ev.to_json(), json);
        }
        let ev = Event::from_json(go[0]).unwrap();
        assert_eq!(ev.trace_id.id(), None);
        assert_eq!(ev.trace_id, "8a5b6f0e-4f1c-4c2e-9a55-2f6f1c1e0b7d");
        assert_eq!(ev.method(), Some(Method::Get));
        let ev = Event::from_json(go[2]).unwrap();
        assert!(ev.trace_id.id().is_some() && ev.span_id.id().is_some());
        assert_eq!(ev.method().unwrap().as_str(), "PROPFIND");
        assert_eq!(ev.method_str(), "PROPFIND");
        // An empty method is no method.
        let ev = Event::from_json(r#"{"method":""}"#).unwrap();
        assert_eq!(ev.method(), None);
    }

    #[test]
    fn custom_kinds_and_methods_are_kept_out_of_line() {
        let mut ev = Event::new("cache.hit").with_method(Method::parse("PROPFIND"));
        assert_eq!(ev.kind(), EventKind::Other("cache.hit".into()));
        assert_eq!((ev.kind_str(), ev.method_str()), ("cache.hit", "PROPFIND"));
        assert!(ev.names.is_some());
        let json = ev.to_json();
        assert!(json.contains(r#""kind":"cache.hit""#) && json.contains(r#""method":"PROPFIND""#));
        assert_eq!(Event::from_json(&json).unwrap(), ev);

        // Known names become tags, so equal events compare equal and the
        // box goes once no name is left.
        ev.set_kind(EventKind::Other("log".into()));
        assert_eq!(ev.kind, EventKind::Log.into_tag().0);
        assert!(ev.names.is_some(), "the method's name is still there");
        ev.set_method(Method::Other("GET".into()));
        assert_eq!(ev.method(), Some(Method::Get));
        assert!(ev.names.is_none());
        assert_eq!(ev, Event::log(Text::EMPTY).with_method(Method::Get));

        // An empty method is none (the wire omits it); an empty kind is
        // kept as the empty kind, as Go's zero value.
        ev.set_method(Method::Other(Text::EMPTY));
        assert_eq!((ev.method(), ev.method_str()), (None, ""));
        ev.set_kind("");
        assert_eq!(
            (ev.kind(), ev.kind_str()),
            (EventKind::Other(Text::EMPTY), "")
        );
        assert!(ev.names.is_none());
        let back = Event::from_json(&ev.to_json()).unwrap();
        assert_eq!(back.kind_str(), "");
        assert_eq!(back, ev);
    }

    #[test]
    fn constructors() {
        let ev = Event::downstream("db.get", Duration::from_micros(1500)).attr("rows", 2);
        assert_eq!(ev.kind(), EventKind::Downstream);
        assert_eq!((ev.duration_ms, ev.duration_ns), (1, 1_500_000));
        assert_eq!(ev.attrs["rows"], 2);
        let ev = Event::log("hi");
        assert_eq!((ev.kind(), ev.message.as_str()), (EventKind::Log, "hi"));
    }

    #[test]
    fn lenient_decoding() {
        // Everything missing -> defaults.
        assert_eq!(Event::from_json("{}").unwrap(), Event::default());
        // Nulls -> defaults; unknown fields ignored; last duplicate wins;
        // ASCII-case-insensitive names like Go.
        let ev = Event::from_json(
            r#"{"id":null,"kind":null,"timestamp":null,"meta":null,"extra":{"a":[1]},
                "service":"a","service":"b","TRACEID":"T","status":404}"#,
        )
        .unwrap();
        assert_eq!(
            ev,
            Event {
                service: "b".into(),
                trace_id: "T".into(),
                status: 404,
                ..Event::default()
            }
        );
    }

    #[test]
    fn parse_errors_do_not_panic() {
        let bad = [
            r#"{"id":"x"}"#,
            r#"{"id":-1}"#,
            r#"{"id":1.5}"#,
            r#"{"status":70000}"#,
            r#"{"kind":3}"#,
            r#"{"meta":[1]}"#,
            r#"{"traceId":1}"#,
            "garbage",
            "",
            "[]",
            "null",
            r#"{"id":1} trailing"#,
            r#"{"id":1"#,
            "\u{0}\u{ffff}",
        ];
        for s in bad {
            let err = Event::from_json(s).unwrap_err();
            assert!(err.to_string().starts_with("invalid trace event JSON: "));
            assert!(std::error::Error::source(&err).is_some());
        }
        let err = Event::from_json(r#"{"id":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
        assert_eq!(err.line(), 1);
    }

    #[test]
    fn go_float_formatting() {
        let cases: [(f64, &str); 12] = [
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (0.1, "0.1"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (1.5e-10, "1.5e-10"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.2345e300, "1.2345e+300"),
            (-2.5e-8, "-2.5e-8"),
            (123456.789, "123456.789"),
        ];
        for (v, expected) in cases {
            let mut out = Vec::new();
            write_go_float(&mut out, v).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{v:?}");
        }
    }

    /// The sizes `EVENT.md` budgets for: a retained event is its `Arc`
    /// (16 B of counts plus the event) and its ring slot.
    #[test]
    fn field_sizes_stay_within_the_budget() {
        use std::mem::size_of;
        assert_eq!(size_of::<Text>(), 16);
        assert_eq!(size_of::<Attrs>(), 8);
        assert_eq!(size_of::<Value>(), 16);
        // Kind and method are a byte each in the event; their public types
        // carry a name inline.
        assert_eq!(size_of::<KindTag>(), 1);
        assert_eq!(size_of::<MethodTag>(), 1);
        assert_eq!(size_of::<Option<Box<Names>>>(), 8);
        assert_eq!(size_of::<EventKind>(), 16);
        assert_eq!(size_of::<Option<Method>>(), 16);
        assert_eq!(size_of::<WireId<SpanId>>(), 16);
        assert_eq!(size_of::<WireId<TraceId>>(), 24);
        // 216 B + 16 B of `Arc` counts + a 16 B ring slot = 248 B retained,
        // plus what its heap fields hold.
        assert!(size_of::<Event>() <= 216, "{}", size_of::<Event>());
    }
}
