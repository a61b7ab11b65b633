//! The trace [`Event`]: one request-lifecycle record, wire-compatible with the
//! Go `trace.Event` struct.
//!
//! # Wire format
//!
//! [`Event::to_json`] / [`Event::write_json`] produce exactly the bytes Go's
//! `encoding/json` produces for the Go struct (for an event that only uses
//! the fields the Go struct has):
//!
//! * field order and names: `id`, `traceId`, `spanId`?, `parentId`?, `kind`,
//!   `service`?, `endpoint`?, `transport`?, `method`?, `path`?, `status`?,
//!   `durationMs`?, `message`?, `error`?, `timestamp`, `meta`?, `durationNs`?
//!   (`?` = omitted when empty / zero, like Go's `omitempty`). `spanId`,
//!   `parentId` and `durationNs` are Rust-side extensions; they are omitted
//!   when unset, so a Go-shaped event serialises byte-for-byte like Go.
//! * strings are escaped like Go (HTML-safe: `<`, `>`, `&`, U+2028 and U+2029
//!   become `\u003c`, `\u003e`, `\u0026`, `\u2028`, `\u2029`), see
//!   [`GoFormatter`];
//! * `timestamp` is formatted like Go's `time.Time.MarshalJSON` for a UTC time
//!   (RFC 3339, nanosecond precision, trailing zeros of the fraction trimmed,
//!   `Z` suffix);
//! * `meta` keys are sorted (at every nesting level), and floating point meta
//!   values are formatted like Go formats a `float64`.
//!
//! The plain [`Serialize`] implementation emits the same field set in the
//! same order, but string escaping and float formatting are then up to the
//! serializer in use (e.g. `serde_json::to_string` does not apply the Go
//! HTML escaping). Use [`Event::to_json`] for the Go-compatible bytes.
//!
//! # Decoding
//!
//! [`Event::from_json`] (and the [`Deserialize`] implementation) is lenient
//! like Go's `json.Unmarshal`: every field may be missing or `null` (it then
//! takes its default), unknown fields are ignored, field names are matched
//! exactly first and then ASCII-case-insensitively, and for duplicate fields
//! the last one wins. Values of the wrong type are errors.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

// ---------------------------------------------------------------------------
// Kind
// ---------------------------------------------------------------------------

/// The kind of a trace [`Event`].
///
/// Serialises as its plain string form (`"request.start"`, …). Unknown kinds
/// are preserved as [`Kind::Other`] so they round-trip unchanged.
///
/// Equality and hashing compare the string form, so
/// `Kind::Other("log".into()) == Kind::Log`.
#[derive(Clone, Debug, Default)]
pub enum Kind {
    /// `"request.start"`: an inbound request began.
    RequestStart,
    /// `"request.end"`: an inbound request finished.
    RequestEnd,
    /// `"downstream"`: a call to a downstream dependency.
    Downstream,
    /// `"log"`: a free-form log line attached to a trace (the default).
    #[default]
    Log,
    /// Any other kind string, kept verbatim.
    Other(String),
}

impl Kind {
    /// The wire string of this kind.
    pub fn as_str(&self) -> &str {
        match self {
            Kind::RequestStart => "request.start",
            Kind::RequestEnd => "request.end",
            Kind::Downstream => "downstream",
            Kind::Log => "log",
            Kind::Other(s) => s,
        }
    }

    /// Maps the well-known strings to their variant, `None` otherwise.
    fn known(s: &str) -> Option<Kind> {
        Some(match s {
            "request.start" => Kind::RequestStart,
            "request.end" => Kind::RequestEnd,
            "downstream" => Kind::Downstream,
            "log" => Kind::Log,
            _ => return None,
        })
    }
}

impl PartialEq for Kind {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Kind {}

impl std::hash::Hash for Kind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Kind {
    fn from(s: &str) -> Self {
        Kind::known(s).unwrap_or_else(|| Kind::Other(s.to_owned()))
    }
}

impl From<String> for Kind {
    fn from(s: String) -> Self {
        Kind::known(&s).unwrap_or(Kind::Other(s))
    }
}

impl FromStr for Kind {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Kind::from(s))
    }
}

impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KindVisitor;

        impl Visitor<'_> for KindVisitor {
            type Value = Kind;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event kind string")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Kind, E> {
                Ok(Kind::from(v))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Kind, E> {
                Ok(Kind::from(v))
            }
        }

        deserializer.deserialize_str(KindVisitor)
    }
}

// ---------------------------------------------------------------------------
// Event
// ---------------------------------------------------------------------------

/// One request-lifecycle trace event (port of Go's `trace.Event`).
///
/// See the [module documentation](self) for the exact JSON format.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Sequence number assigned by the bus (JSON `id`, always present).
    pub id: u64,
    /// Trace this event belongs to (JSON `traceId`, always present).
    pub trace_id: String,
    /// Span that emitted this event (JSON `spanId`, omitted when empty).
    /// Extension: not in the Go struct.
    pub span_id: String,
    /// Parent span of [`span_id`](Self::span_id) (JSON `parentId`, omitted
    /// when empty). Extension: not in the Go struct.
    pub parent_id: String,
    /// What happened (JSON `kind`, always present).
    pub kind: Kind,
    /// Name of the service that emitted the event (JSON `service`).
    pub service: String,
    /// Logical endpoint / route name (JSON `endpoint`).
    pub endpoint: String,
    /// Transport, e.g. `"http"` or `"grpc"` (JSON `transport`).
    pub transport: String,
    /// Request method, e.g. `"GET"` (JSON `method`).
    pub method: String,
    /// Request path (JSON `path`).
    pub path: String,
    /// Response status code; 0 = unset (JSON `status`).
    pub status: u16,
    /// Duration in whole milliseconds, truncated like Go's
    /// `Duration.Milliseconds()`; 0 = unset (JSON `durationMs`).
    pub duration_ms: u64,
    /// Human-readable message (JSON `message`).
    pub message: String,
    /// Error text, empty when the operation succeeded (JSON `error`).
    pub error: String,
    /// When the event happened (JSON `timestamp`, always present).
    /// [`SystemTime::UNIX_EPOCH`] means "unset": the bus fills in the
    /// publish time.
    pub timestamp: SystemTime,
    /// Free-form metadata (JSON `meta`, omitted when empty). Keys are
    /// serialised sorted, at every nesting level.
    pub meta: BTreeMap<String, Value>,
    /// Precise duration in nanoseconds; 0 = unset (JSON `durationNs`).
    /// Extension: Go's millisecond field drops sub-millisecond durations.
    pub duration_ns: u64,
}

impl Default for Event {
    fn default() -> Self {
        Event {
            id: 0,
            trace_id: String::new(),
            span_id: String::new(),
            parent_id: String::new(),
            kind: Kind::default(),
            service: String::new(),
            endpoint: String::new(),
            transport: String::new(),
            method: String::new(),
            path: String::new(),
            status: 0,
            duration_ms: 0,
            message: String::new(),
            error: String::new(),
            timestamp: SystemTime::UNIX_EPOCH,
            meta: BTreeMap::new(),
            duration_ns: 0,
        }
    }
}

impl Event {
    /// A new event of the given kind; every other field is unset.
    #[must_use]
    pub fn new(kind: Kind) -> Self {
        Event {
            kind,
            ..Event::default()
        }
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
    /// [module documentation](self)).
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
    /// [module documentation](self)) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let mut ser = serde_json::Serializer::with_formatter(&mut *out, GoFormatter);
        // Writing to a Vec cannot fail, map keys are strings and non-finite
        // floats are written as `null`, so this never errors in practice. If
        // it ever did, drop the partial output rather than emit broken JSON.
        if self.serialize(&mut ser).is_err() {
            out.truncate(start);
        }
    }

    /// Parses an event from JSON (leniently, like Go; see the
    /// [module documentation](self)).
    ///
    /// # Errors
    ///
    /// Returns [`EventParseError`] for malformed JSON, a top-level value that
    /// is not an object, trailing data, or a field of the wrong type (e.g.
    /// `{"id":"x"}`), or an invalid timestamp.
    pub fn from_json(s: &str) -> Result<Event, EventParseError> {
        serde_json::from_str(s).map_err(EventParseError)
    }
}

// ---------------------------------------------------------------------------
// Serialize
// ---------------------------------------------------------------------------

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fn opt_str<S: SerializeStruct>(
            st: &mut S,
            key: &'static str,
            value: &str,
        ) -> Result<(), S::Error> {
            if value.is_empty() {
                st.skip_field(key)
            } else {
                st.serialize_field(key, value)
            }
        }

        fn opt_num<S: SerializeStruct, T: Serialize + Default + PartialEq>(
            st: &mut S,
            key: &'static str,
            value: &T,
        ) -> Result<(), S::Error> {
            if *value == T::default() {
                st.skip_field(key)
            } else {
                st.serialize_field(key, value)
            }
        }

        let optional = [
            !self.span_id.is_empty(),
            !self.parent_id.is_empty(),
            !self.service.is_empty(),
            !self.endpoint.is_empty(),
            !self.transport.is_empty(),
            !self.method.is_empty(),
            !self.path.is_empty(),
            self.status != 0,
            self.duration_ms != 0,
            !self.message.is_empty(),
            !self.error.is_empty(),
            !self.meta.is_empty(),
            self.duration_ns != 0,
        ];
        let len = 4 + optional.iter().filter(|present| **present).count();
        let mut st = serializer.serialize_struct("Event", len)?;

        st.serialize_field("id", &self.id)?;
        st.serialize_field("traceId", &self.trace_id)?;
        opt_str(&mut st, "spanId", &self.span_id)?;
        opt_str(&mut st, "parentId", &self.parent_id)?;
        st.serialize_field("kind", &self.kind)?;
        opt_str(&mut st, "service", &self.service)?;
        opt_str(&mut st, "endpoint", &self.endpoint)?;
        opt_str(&mut st, "transport", &self.transport)?;
        opt_str(&mut st, "method", &self.method)?;
        opt_str(&mut st, "path", &self.path)?;
        opt_num(&mut st, "status", &self.status)?;
        opt_num(&mut st, "durationMs", &self.duration_ms)?;
        opt_str(&mut st, "message", &self.message)?;
        opt_str(&mut st, "error", &self.error)?;
        st.serialize_field("timestamp", &GoTime(self.timestamp))?;
        if self.meta.is_empty() {
            st.skip_field("meta")?;
        } else {
            st.serialize_field("meta", &SortedMeta(&self.meta))?;
        }
        opt_num(&mut st, "durationNs", &self.duration_ns)?;
        st.end()
    }
}

/// Serialises the meta map with sorted keys and sorted nested objects.
struct SortedMeta<'a>(&'a BTreeMap<String, Value>);

impl Serialize for SortedMeta<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, &SortedValue(v))?;
        }
        map.end()
    }
}

/// Serialises a JSON value with object keys sorted at every level, like Go
/// does for `map[string]any`. serde_json's `Map` is already sorted unless
/// its `preserve_order` feature is enabled (possibly by another crate in the
/// build through feature unification); this wrapper makes the output
/// independent of that.
struct SortedValue<'a>(&'a Value);

impl Serialize for SortedValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(obj) => {
                let mut map = serializer.serialize_map(Some(obj.len()))?;
                if obj.keys().is_sorted() {
                    for (k, v) in obj {
                        map.serialize_entry(k, &SortedValue(v))?;
                    }
                } else {
                    let mut entries: Vec<(&String, &Value)> = obj.iter().collect();
                    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                    for (k, v) in entries {
                        map.serialize_entry(k, &SortedValue(v))?;
                    }
                }
                map.end()
            }
            Value::Array(items) => serializer.collect_seq(items.iter().map(SortedValue)),
            other => other.serialize(serializer),
        }
    }
}

// ---------------------------------------------------------------------------
// Timestamps
// ---------------------------------------------------------------------------

/// 0000-01-01T00:00:00Z, the earliest time Go's `MarshalJSON` accepts.
const GO_MIN_TIME: jiff::Timestamp = jiff::Timestamp::constant(-62_167_219_200, 0);

/// Converts to a jiff timestamp, clamped into the range Go can marshal
/// (years 0000..=9999). jiff's own upper bound is
/// 9999-12-30T22:00:00.999999999Z, which is used as the upper clamp.
fn to_jiff_clamped(t: SystemTime) -> jiff::Timestamp {
    let ts = match jiff::Timestamp::try_from(t) {
        Ok(ts) => ts,
        Err(_) if t >= SystemTime::UNIX_EPOCH => jiff::Timestamp::MAX,
        Err(_) => jiff::Timestamp::MIN,
    };
    ts.max(GO_MIN_TIME)
}

/// Converts a jiff timestamp to a `SystemTime`, `None` if the platform's
/// `SystemTime` cannot represent it.
fn to_system_time(ts: jiff::Timestamp) -> Option<SystemTime> {
    let d = ts.as_duration();
    if d.is_negative() {
        SystemTime::UNIX_EPOCH.checked_sub(d.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH.checked_add(d.unsigned_abs())
    }
}

/// A stack buffer for formatting a timestamp without allocating.
struct StackBuf {
    buf: [u8; 48],
    len: usize,
}

impl fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Serialises a `SystemTime` like Go's `time.Time.MarshalJSON` of a UTC
/// time: `2026-11-25T01:02:03.0405Z`.
///
/// Times outside what Go can marshal are clamped (see [`to_jiff_clamped`]).
struct GoTime(SystemTime);

impl Serialize for GoTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ts = to_jiff_clamped(self.0);
        // jiff's default Display is RFC 3339 in UTC with a `Z` suffix and
        // the fraction printed to nanosecond precision with trailing zeros
        // trimmed (omitted when zero) -- exactly Go's RFC3339Nano layout.
        // This is pinned by the tests below.
        let mut buf = StackBuf {
            buf: [0; 48],
            len: 0,
        };
        if write!(buf, "{ts}").is_ok() {
            if let Some(s) = buf
                .buf
                .get(..buf.len)
                .and_then(|b| std::str::from_utf8(b).ok())
            {
                return serializer.serialize_str(s);
            }
        }
        serializer.serialize_str(&ts.to_string())
    }
}

/// Deserialises an RFC 3339 timestamp (with offset) into a `SystemTime`.
struct ParsedTime(SystemTime);

impl<'de> Deserialize<'de> for ParsedTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimeVisitor;

        impl Visitor<'_> for TimeVisitor {
            type Value = ParsedTime;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp string")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ParsedTime, E> {
                let ts: jiff::Timestamp = v
                    .parse()
                    .map_err(|e| E::custom(format_args!("invalid timestamp {v:?}: {e}")))?;
                to_system_time(ts).map(ParsedTime).ok_or_else(|| {
                    E::custom(format_args!(
                        "timestamp {v:?} is out of range for this platform's SystemTime"
                    ))
                })
            }
        }

        deserializer.deserialize_str(TimeVisitor)
    }
}

// ---------------------------------------------------------------------------
// Deserialize
// ---------------------------------------------------------------------------

/// The JSON fields of an event.
#[derive(Clone, Copy)]
enum Field {
    Id,
    TraceId,
    SpanId,
    ParentId,
    Kind,
    Service,
    Endpoint,
    Transport,
    Method,
    Path,
    Status,
    DurationMs,
    Message,
    Error,
    Timestamp,
    Meta,
    DurationNs,
    Unknown,
}

const FIELDS: &[(&str, Field)] = &[
    ("id", Field::Id),
    ("traceId", Field::TraceId),
    ("spanId", Field::SpanId),
    ("parentId", Field::ParentId),
    ("kind", Field::Kind),
    ("service", Field::Service),
    ("endpoint", Field::Endpoint),
    ("transport", Field::Transport),
    ("method", Field::Method),
    ("path", Field::Path),
    ("status", Field::Status),
    ("durationMs", Field::DurationMs),
    ("message", Field::Message),
    ("error", Field::Error),
    ("timestamp", Field::Timestamp),
    ("meta", Field::Meta),
    ("durationNs", Field::DurationNs),
];

const FIELD_NAMES: &[&str] = &[
    "id",
    "traceId",
    "spanId",
    "parentId",
    "kind",
    "service",
    "endpoint",
    "transport",
    "method",
    "path",
    "status",
    "durationMs",
    "message",
    "error",
    "timestamp",
    "meta",
    "durationNs",
];

impl Field {
    /// Exact match first, then ASCII-case-insensitive (Go matches JSON keys
    /// case-insensitively).
    fn from_name(name: &str) -> Field {
        FIELDS
            .iter()
            .find(|(n, _)| *n == name)
            .or_else(|| FIELDS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)))
            .map_or(Field::Unknown, |(_, f)| *f)
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;

        impl Visitor<'_> for FieldVisitor {
            type Value = Field;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(Field::from_name(v))
            }
        }

        deserializer.deserialize_identifier(FieldVisitor)
    }
}

/// Reads a field value, treating JSON `null` as "leave the default" (Go).
fn next_or_default<'de, A, T>(map: &mut A) -> Result<Option<T>, A::Error>
where
    A: MapAccess<'de>,
    T: Deserialize<'de>,
{
    map.next_value::<Option<T>>()
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EventVisitor;

        impl<'de> Visitor<'de> for EventVisitor {
            type Value = Event;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a trace event object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
                let mut ev = Event::default();
                while let Some(field) = map.next_key::<Field>()? {
                    macro_rules! set {
                        ($field:ident) => {
                            if let Some(v) = next_or_default(&mut map)? {
                                ev.$field = v;
                            }
                        };
                    }
                    match field {
                        Field::Id => set!(id),
                        Field::TraceId => set!(trace_id),
                        Field::SpanId => set!(span_id),
                        Field::ParentId => set!(parent_id),
                        Field::Kind => set!(kind),
                        Field::Service => set!(service),
                        Field::Endpoint => set!(endpoint),
                        Field::Transport => set!(transport),
                        Field::Method => set!(method),
                        Field::Path => set!(path),
                        Field::Status => set!(status),
                        Field::DurationMs => set!(duration_ms),
                        Field::Message => set!(message),
                        Field::Error => set!(error),
                        Field::Timestamp => {
                            if let Some(ParsedTime(t)) = next_or_default(&mut map)? {
                                ev.timestamp = t;
                            }
                        }
                        Field::Meta => set!(meta),
                        Field::DurationNs => set!(duration_ns),
                        Field::Unknown => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(ev)
            }
        }

        deserializer.deserialize_struct("Event", FIELD_NAMES, EventVisitor)
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Error returned by [`Event::from_json`].
#[derive(Debug)]
pub struct EventParseError(serde_json::Error);

impl EventParseError {
    /// The underlying serde_json error.
    pub fn inner(&self) -> &serde_json::Error {
        &self.0
    }

    /// 1-based line of the error in the input.
    pub fn line(&self) -> usize {
        self.0.line()
    }

    /// 1-based column of the error in the input.
    pub fn column(&self) -> usize {
        self.0.column()
    }
}

impl fmt::Display for EventParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid trace event JSON: {}", self.0)
    }
}

impl std::error::Error for EventParseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl From<serde_json::Error> for EventParseError {
    fn from(e: serde_json::Error) -> Self {
        EventParseError(e)
    }
}

// ---------------------------------------------------------------------------
// Go-compatible JSON formatter
// ---------------------------------------------------------------------------

/// A [`serde_json::ser::Formatter`] that writes JSON the way Go's
/// `encoding/json` does.
///
/// On top of serde_json's compact output (which already escapes `"`, `\`,
/// `\b`, `\f`, `\n`, `\r`, `\t` with short forms and other control
/// characters as `\u00xx` with lowercase hex, exactly like Go) it
///
/// * escapes `<`, `>`, `&` as `\u003c`, `\u003e`, `\u0026` and U+2028 /
///   U+2029 as `\u2028` / `\u2029` (Go's HTML-safe escaping), in every
///   string including object keys;
/// * formats `f64` like Go formats a `float64`: shortest round-trip digits,
///   plain decimal notation for magnitudes in `[1e-6, 1e21)`, otherwise
///   exponent notation as `1e+21` / `1e-7`; integral floats have no `.0`.
///
/// Usable for any payload: `serde_json::Serializer::with_formatter(w, GoFormatter)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        let bytes = fragment.as_bytes();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape: &[u8] = match b {
                b'<' => b"\\u003c",
                b'>' => b"\\u003e",
                b'&' => b"\\u0026",
                // U+2028 = E2 80 A8, U+2029 = E2 80 A9 in UTF-8.
                0xE2 => match bytes.get(i + 1..i + 3) {
                    Some([0x80, 0xA8]) => b"\\u2028",
                    Some([0x80, 0xA9]) => b"\\u2029",
                    _ => continue,
                },
                _ => continue,
            };
            // `start..i` lies on char boundaries: `i` is either an ASCII byte
            // or the lead byte of U+2028/U+2029, and `start` follows one.
            writer.write_all(bytes.get(start..i).unwrap_or_default())?;
            writer.write_all(escape)?;
            start = if b == 0xE2 { i + 3 } else { i + 1 };
        }
        writer.write_all(bytes.get(start..).unwrap_or_default())
    }

    fn write_f64<W>(&mut self, writer: &mut W, value: f64) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        write_go_float(writer, value)
    }
}

/// Go's `encoding/json` float64 encoding (`strconv.AppendFloat(f, 'f' or
/// 'e', -1, 64)` plus its exponent clean-up). Rust's `{}` / `{:e}` float
/// formatting also produces the shortest round-trip digits, so only the
/// notation choice and the exponent sign differ.
fn write_go_float<W: ?Sized + io::Write>(writer: &mut W, value: f64) -> io::Result<()> {
    if !value.is_finite() {
        // Go refuses to encode these; serde_json never passes them here
        // (it writes `null`). Be safe anyway.
        return writer.write_all(b"null");
    }
    let abs = value.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{value:e}");
        match s.split_once('e') {
            // Go writes a sign on positive exponents ("1e+21"); negative
            // ones are cleaned to at least one digit ("1e-7"), like Rust.
            Some((mantissa, exp)) if !exp.starts_with('-') => {
                write!(writer, "{mantissa}e+{exp}")
            }
            _ => writer.write_all(s.as_bytes()),
        }
    } else {
        write!(writer, "{value}")
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
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
            kind: Kind::RequestStart,
            timestamp: at(T_2026, 0),
            ..Event::default()
        }
    }

    #[test]
    fn full_event_matches_go() {
        let mut meta = BTreeMap::new();
        // Insertion deliberately unsorted, at both levels.
        meta.insert("zeta".to_string(), json!(1));
        meta.insert(
            "nested".to_string(),
            json!({"b": 2, "a": [1, 2.5, "x"], "c": {"y": null, "x": true}}),
        );
        meta.insert("alpha".to_string(), json!(-3.25));
        meta.insert("flag".to_string(), json!(false));
        meta.insert("none".to_string(), Value::Null);
        meta.insert("big".to_string(), json!(1e21));
        meta.insert("tiny".to_string(), json!(1e-7));
        meta.insert("whole".to_string(), json!(2.0));
        meta.insert("k<&>".to_string(), json!("v<&>"));
        let ev = Event {
            id: 42,
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            kind: Kind::Downstream,
            service: "checkout".into(),
            endpoint: "POST /orders".into(),
            transport: "http".into(),
            method: "POST".into(),
            path: "/orders?id=1&x=2".into(),
            status: 502,
            duration_ms: 1234,
            message: "upstream failed".into(),
            error: "dial tcp: timeout".into(),
            timestamp: at(T_2026, 40_500_000),
            meta,
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
                    method: "GET".into(),
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
                    meta: BTreeMap::from([("k".to_string(), json!(1))]),
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
        assert_eq!(ev.kind, Kind::Other("queue.publish".into()));
        assert_eq!(ev.to_json(), json);

        for (s, k) in [
            ("request.start", Kind::RequestStart),
            ("request.end", Kind::RequestEnd),
            ("downstream", Kind::Downstream),
            ("log", Kind::Log),
        ] {
            assert_eq!(Kind::from(s), k);
            assert_eq!(s.parse::<Kind>().unwrap(), k);
            assert_eq!(k.to_string(), s);
            assert!(matches!(Kind::from(s.to_string()), ref x if *x == k));
        }
        assert_eq!(Kind::Other("log".into()), Kind::Log);
        assert_eq!(Kind::default(), Kind::Log);
    }

    #[test]
    fn full_round_trip() {
        let mut ev = Event::new(Kind::RequestEnd);
        ev.id = u64::MAX;
        ev.trace_id = "abc".into();
        ev.span_id = "s1".into();
        ev.parent_id = "p1".into();
        ev.service = "svc".into();
        ev.endpoint = "ep".into();
        ev.transport = "http".into();
        ev.method = "GET".into();
        ev.path = "/a<b>".into();
        ev.status = 200;
        ev.duration_ms = 3;
        ev.duration_ns = 3_141_592;
        ev.message = "ok\u{2028}".into();
        ev.error = "none".into();
        ev.timestamp = at(T_2026, 123_456_789);
        ev.meta.insert(
            "n".into(),
            json!({"z": [1, {"b": 1.5, "a": null}], "a": "x"}),
        );
        let json = ev.to_json();
        let back = Event::from_json(&json).unwrap();
        assert_eq!(back, ev);
        assert_eq!(back.to_json(), json);
        // serde_json's own serializer gives the same structure (without the
        // Go-specific escaping).
        let plain = serde_json::to_string(&ev).unwrap();
        assert_eq!(Event::from_json(&plain).unwrap(), ev);
        assert_eq!(
            serde_json::from_str::<Value>(&plain).unwrap(),
            serde_json::from_str::<Value>(&json).unwrap()
        );
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
}
