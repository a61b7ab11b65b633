//! [`WireId`]: an event's trace or span id, binary when it is a W3C id.

use std::fmt;
use std::hash::Hash;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::text::Text;
use crate::traceparent::{SpanId, TraceId};

/// A W3C id an event can carry in binary: [`TraceId`] or [`SpanId`].
pub trait W3cId: Copy + Eq + Hash + fmt::Debug + sealed::Sealed {
    /// Parses the canonical form: exactly `2 * len` lowercase hex digits,
    /// not all zero.
    fn parse_hex(s: &str) -> Option<Self>;

    /// Writes the id as lowercase hex into `buf`, returning the text.
    fn write_hex(self, buf: &mut [u8; 32]) -> &str;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::traceparent::TraceId {}
    impl Sealed for crate::traceparent::SpanId {}
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_into<'a>(bytes: &[u8], buf: &'a mut [u8; 32]) -> &'a str {
    for (b, pair) in bytes.iter().zip(buf.chunks_exact_mut(2)) {
        if let [hi, lo] = pair {
            *hi = HEX[usize::from(b >> 4)];
            *lo = HEX[usize::from(b & 0xf)];
        }
    }
    let hex = buf.get(..bytes.len() * 2).unwrap_or_default();
    // Only ASCII hex digits were written.
    std::str::from_utf8(hex).unwrap_or_default()
}

impl W3cId for TraceId {
    fn parse_hex(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    fn write_hex(self, buf: &mut [u8; 32]) -> &str {
        hex_into(&self.to_bytes(), buf)
    }
}

impl W3cId for SpanId {
    fn parse_hex(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    fn write_hex(self, buf: &mut [u8; 32]) -> &str {
        hex_into(&self.to_bytes(), buf)
    }
}

/// A trace or span id as an event carries it: unset, a W3C id (16 or 8
/// bytes, written as lowercase hex only when serialised), or any other text,
/// kept verbatim.
///
/// The text form exists for events that did not come from this crate: the
/// Go implementation and other producers may use trace ids that are not 32
/// hex digits (a UUID with dashes, uppercase hex, a short test id). Such an
/// id is neither lost nor rejected: it stays text, compares and serialises
/// exactly as received, and [`id`](Self::id) says it is not a W3C id.
/// Every constructor normalises, so one id has one representation:
///
/// ```
/// use nexus_trace_core::WireId;
/// use nexus_trace_core::TraceId;
///
/// let w3c = WireId::<TraceId>::parse("4bf92f3577b34da6a3ce929d0e0e4736");
/// assert!(w3c.id().is_some()); // binary
/// let go = WireId::<TraceId>::parse("8a5b6f0e-4f1c-4c2e-9a55-2f6f1c1e0b7d");
/// assert_eq!((go.id(), go.to_string().len()), (None, 36)); // kept as text
/// assert!(WireId::<TraceId>::parse("").is_empty());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct WireId<T>(Repr<T>);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr<T> {
    Unset,
    Id(T),
    /// Never empty and never the canonical hex of a `T`.
    Text(Text),
}

impl<T: W3cId> WireId<T> {
    /// No id.
    pub const UNSET: WireId<T> = WireId(Repr::Unset);

    /// Reads an id from its text: empty is unset, the canonical lowercase
    /// hex of a valid W3C id is stored in binary, anything else as text.
    pub fn parse(text: impl Into<Text>) -> WireId<T> {
        let text = text.into();
        if text.is_empty() {
            WireId(Repr::Unset)
        } else if let Some(id) = T::parse_hex(&text) {
            WireId(Repr::Id(id))
        } else {
            WireId(Repr::Text(text))
        }
    }

    /// The W3C id, if this is one.
    pub fn id(&self) -> Option<T> {
        match self.0 {
            Repr::Id(id) => Some(id),
            _ => None,
        }
    }

    /// The id's text when it is not a W3C id.
    pub fn as_text(&self) -> Option<&Text> {
        match &self.0 {
            Repr::Text(t) => Some(t),
            _ => None,
        }
    }

    /// Whether no id is set (serialises as the empty string).
    pub fn is_empty(&self) -> bool {
        matches!(self.0, Repr::Unset)
    }

    /// Calls `f` with the id's text form (hex for a W3C id, written on the
    /// stack; `""` when unset).
    pub fn with_str<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match &self.0 {
            Repr::Unset => f(""),
            Repr::Id(id) => f(id.write_hex(&mut [0; 32])),
            Repr::Text(t) => f(t),
        }
    }
}

impl<T: W3cId> Default for WireId<T> {
    fn default() -> Self {
        WireId::UNSET
    }
}

impl<T: W3cId> From<T> for WireId<T> {
    fn from(id: T) -> Self {
        WireId(Repr::Id(id))
    }
}

impl<T: W3cId> From<Option<T>> for WireId<T> {
    fn from(id: Option<T>) -> Self {
        id.map_or(WireId::UNSET, WireId::from)
    }
}

impl<T: W3cId> From<&'static str> for WireId<T> {
    fn from(s: &'static str) -> Self {
        WireId::parse(s)
    }
}

impl<T: W3cId> From<String> for WireId<T> {
    fn from(s: String) -> Self {
        WireId::parse(s)
    }
}

impl<T: W3cId> From<Text> for WireId<T> {
    fn from(s: Text) -> Self {
        WireId::parse(s)
    }
}

impl<T: W3cId> PartialEq<T> for WireId<T> {
    fn eq(&self, other: &T) -> bool {
        self.id() == Some(*other)
    }
}

impl<T: W3cId> PartialEq<str> for WireId<T> {
    /// Compares the text form (hex for a W3C id).
    fn eq(&self, other: &str) -> bool {
        self.with_str(|s| s == other)
    }
}

impl<T: W3cId> PartialEq<&str> for WireId<T> {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl<T: W3cId> PartialEq<String> for WireId<T> {
    fn eq(&self, other: &String) -> bool {
        *self == **other
    }
}

impl<T: W3cId> fmt::Display for WireId<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_str(|s| f.write_str(s))
    }
}

impl<T: W3cId> fmt::Debug for WireId<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Unset => f.write_str("Unset"),
            Repr::Id(id) => fmt::Debug::fmt(id, f),
            Repr::Text(t) => write!(f, "Text({t:?})"),
        }
    }
}

impl<T: W3cId> Serialize for WireId<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.with_str(|s| serializer.serialize_str(s))
    }
}

impl<'de, T: W3cId> Deserialize<'de> for WireId<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Text::deserialize(deserializer).map(WireId::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    #[test]
    fn one_representation_per_id() {
        let id: TraceId = TID.parse().unwrap();
        let parsed = WireId::<TraceId>::parse(TID);
        assert_eq!(parsed, WireId::from(id));
        assert_eq!(parsed, id);
        assert_eq!(parsed, TID);
        assert_eq!(parsed.to_string(), TID);
        for text in [
            "t1",
            "4BF92F3577B34DA6A3CE929D0E0E4736",
            "00000000000000000000000000000000",
            "4bf92f3577b34da6a3ce929d0e0e47361",
        ] {
            let w = WireId::<TraceId>::parse(text);
            assert_eq!((w.id(), w.to_string().as_str()), (None, text));
            assert_eq!(w.as_text().map(Text::as_str), Some(text));
        }
        let span = WireId::<SpanId>::parse("00f067aa0ba902b7");
        assert_eq!(span.to_string(), "00f067aa0ba902b7");
        assert!(span.id().is_some());
        assert!(WireId::<SpanId>::default().is_empty());
        assert_eq!(WireId::<SpanId>::default(), "");
    }

    #[test]
    fn compact() {
        assert!(std::mem::size_of::<WireId<TraceId>>() <= 24);
        assert!(std::mem::size_of::<WireId<SpanId>>() <= 16);
    }
}
