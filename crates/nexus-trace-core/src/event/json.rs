//! The event's JSON: Go-compatible writing ([`GoFormatter`]) and lenient
//! reading, see the [event module](super).

use std::fmt::{self, Write as _};
use std::io;
use std::time::SystemTime;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::kind::EventKind;
use super::method::Method;
use super::text::Text;
use super::Event;

// ---------------------------------------------------------------------------
// Serialize
// ---------------------------------------------------------------------------

/// Appends `event`'s Go-compatible JSON to `out`.
pub(super) fn write(event: &Event, out: &mut Vec<u8>) {
    let start = out.len();
    let mut ser = serde_json::Serializer::with_formatter(&mut *out, GoFormatter);
    // Writing to a Vec cannot fail, map keys are strings and non-finite
    // floats are written as `null`, so this never errors in practice. If
    // it ever did, drop the partial output rather than emit broken JSON.
    if event.serialize(&mut ser).is_err() {
        out.truncate(start);
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fn opt<S: SerializeStruct, T: Serialize + ?Sized>(
            st: &mut S,
            key: &'static str,
            present: bool,
            value: &T,
        ) -> Result<(), S::Error> {
            if present {
                st.serialize_field(key, value)
            } else {
                st.skip_field(key)
            }
        }

        let method = self.method_str();
        let optional = [
            !self.span_id.is_empty(),
            !self.parent_id.is_empty(),
            !self.service.is_empty(),
            !self.endpoint.is_empty(),
            !self.transport.is_empty(),
            !method.is_empty(),
            !self.path.is_empty(),
            self.status != 0,
            self.duration_ms != 0,
            !self.message.is_empty(),
            !self.error.is_empty(),
            !self.attrs.is_empty(),
            self.duration_ns != 0,
        ];
        let len = 4 + optional.iter().filter(|present| **present).count();
        let mut st = serializer.serialize_struct("Event", len)?;

        st.serialize_field("id", &self.id)?;
        st.serialize_field("traceId", &self.trace_id)?;
        opt(&mut st, "spanId", !self.span_id.is_empty(), &self.span_id)?;
        opt(
            &mut st,
            "parentId",
            !self.parent_id.is_empty(),
            &self.parent_id,
        )?;
        st.serialize_field("kind", self.kind_str())?;
        opt(&mut st, "service", !self.service.is_empty(), &self.service)?;
        opt(
            &mut st,
            "endpoint",
            !self.endpoint.is_empty(),
            &self.endpoint,
        )?;
        opt(
            &mut st,
            "transport",
            !self.transport.is_empty(),
            &self.transport,
        )?;
        opt(&mut st, "method", !method.is_empty(), method)?;
        opt(&mut st, "path", !self.path.is_empty(), &self.path)?;
        opt(&mut st, "status", self.status != 0, &self.status)?;
        opt(
            &mut st,
            "durationMs",
            self.duration_ms != 0,
            &self.duration_ms,
        )?;
        opt(&mut st, "message", !self.message.is_empty(), &self.message)?;
        opt(&mut st, "error", !self.error.is_empty(), &self.error)?;
        st.serialize_field("timestamp", &GoTime(self.timestamp))?;
        // Attrs are kept sorted by key, as Go writes map keys.
        opt(&mut st, "meta", !self.attrs.is_empty(), &self.attrs)?;
        opt(
            &mut st,
            "durationNs",
            self.duration_ns != 0,
            &self.duration_ns,
        )?;
        st.end()
    }
}

/// Serialises a JSON value with object keys sorted at every level, like Go
/// does for `map[string]any`. serde_json's `Map` is already sorted unless
/// its `preserve_order` feature is enabled (possibly by another crate in the
/// build through feature unification); this wrapper makes the output
/// independent of that.
pub(super) struct SortedValue<'a>(pub(super) &'a Value);

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

/// `t` as Go's `time.Time.MarshalJSON` writes a UTC time, without the
/// quotes (RFC 3339, nanoseconds, trailing zeros trimmed, `Z`).
pub(crate) fn format_timestamp(t: SystemTime) -> String {
    to_jiff_clamped(t).to_string()
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
                        Field::Kind => {
                            if let Some(kind) = next_or_default::<A, EventKind>(&mut map)? {
                                ev.set_kind(kind);
                            }
                        }
                        Field::Service => set!(service),
                        Field::Endpoint => set!(endpoint),
                        Field::Transport => set!(transport),
                        Field::Method => {
                            if let Some(m) = next_or_default::<A, Text>(&mut map)? {
                                ev.set_method(Method::from(m));
                            }
                        }
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
                        Field::Meta => set!(attrs),
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
pub(super) fn write_go_float<W: ?Sized + io::Write>(writer: &mut W, value: f64) -> io::Result<()> {
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
