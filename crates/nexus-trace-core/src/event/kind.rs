//! [`EventKind`]: what an event records.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::text::Text;

/// The kind of a trace [`Event`](super::Event).
///
/// Serialises as its plain string form (`"request.start"`, …). Unknown kinds
/// are preserved as [`EventKind::Other`] so they round-trip unchanged.
///
/// Equality and hashing compare the string form, so
/// `EventKind::Other("log".into()) == EventKind::Log`.
#[derive(Clone, Debug, Default)]
pub enum EventKind {
    /// `"request.start"`: an inbound request began.
    RequestStart,
    /// `"request.end"`: an inbound request finished.
    RequestEnd,
    /// `"downstream"`: a call to a downstream dependency, ended (a CLIENT
    /// span: its `timestamp` is when the call started).
    Downstream,
    /// `"span.start"`: a child span opened and is still running (the name
    /// of the upstream Go project's later versions). Its `timestamp` is the
    /// span's start.
    SpanStart,
    /// `"span.end"`: an INTERNAL child span ended (a CLIENT span ends with
    /// [`Downstream`](EventKind::Downstream) instead, keeping the Go meaning of
    /// that kind). Its `timestamp` is the span's end.
    SpanEnd,
    /// `"log"`: a free-form log line attached to a trace (the default).
    #[default]
    Log,
    /// Any other kind string, kept verbatim.
    Other(Text),
}

impl EventKind {
    /// The wire string of this kind.
    pub fn as_str(&self) -> &str {
        match self {
            EventKind::RequestStart => "request.start",
            EventKind::RequestEnd => "request.end",
            EventKind::Downstream => "downstream",
            EventKind::SpanStart => "span.start",
            EventKind::SpanEnd => "span.end",
            EventKind::Log => "log",
            EventKind::Other(s) => s,
        }
    }

    /// Maps the well-known strings to their variant, `None` otherwise.
    fn known(s: &str) -> Option<EventKind> {
        KNOWN.iter().find(|k| k.as_str() == s).cloned()
    }
}

/// The known kinds; a [`KindTag`] is an index here.
static KNOWN: [EventKind; 6] = [
    EventKind::RequestStart,
    EventKind::RequestEnd,
    EventKind::Downstream,
    EventKind::SpanStart,
    EventKind::SpanEnd,
    EventKind::Log,
];

/// How an [`Event`](super::Event) stores its kind: one byte, an index into
/// the known kinds or [`KindTag::OTHER`], whose name is kept out of line
/// (most events are of a known kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct KindTag(u8);

impl KindTag {
    /// An unknown kind.
    pub(super) const OTHER: KindTag = KindTag(KNOWN.len() as u8);

    fn known(self) -> Option<&'static EventKind> {
        KNOWN.get(usize::from(self.0))
    }

    /// The kind's wire name, `None` for [`KindTag::OTHER`].
    pub(super) fn name(self) -> Option<&'static str> {
        self.known().map(EventKind::as_str)
    }

    /// The kind for this tag; `other` is the name of an `Other` kind.
    pub(super) fn kind(self, other: &Text) -> EventKind {
        self.known()
            .map_or_else(|| EventKind::Other(other.clone()), EventKind::clone)
    }
}

impl EventKind {
    /// The tag, and the name to keep when it is [`KindTag::OTHER`]. An
    /// `Other` spelling a known kind becomes that kind's tag, so equal
    /// kinds are stored alike.
    pub(super) fn into_tag(self) -> (KindTag, Option<Text>) {
        let same = |known: &EventKind| match &self {
            EventKind::Other(name) => known.as_str() == name.as_str(),
            kind => std::mem::discriminant(known) == std::mem::discriminant(kind),
        };
        match KNOWN.iter().position(same) {
            // At most 6: fits.
            Some(i) => (KindTag(i as u8), None),
            None => match self {
                EventKind::Other(name) => (KindTag::OTHER, Some(name)),
                // Every other variant is in `KNOWN`.
                _ => (KindTag::OTHER, None),
            },
        }
    }
}

impl PartialEq for EventKind {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for EventKind {}

impl std::hash::Hash for EventKind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for EventKind {
    fn from(s: &str) -> Self {
        EventKind::known(s).unwrap_or_else(|| EventKind::Other(Text::copy(s)))
    }
}

impl From<String> for EventKind {
    fn from(s: String) -> Self {
        EventKind::known(&s).unwrap_or_else(|| EventKind::Other(Text::from(s)))
    }
}

impl From<Text> for EventKind {
    fn from(s: Text) -> Self {
        EventKind::known(&s).unwrap_or(EventKind::Other(s))
    }
}

impl FromStr for EventKind {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(EventKind::from(s))
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KindVisitor;

        impl Visitor<'_> for KindVisitor {
            type Value = EventKind;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event kind string")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<EventKind, E> {
                Ok(EventKind::from(v))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<EventKind, E> {
                Ok(EventKind::from(v))
            }
        }

        deserializer.deserialize_str(KindVisitor)
    }
}
