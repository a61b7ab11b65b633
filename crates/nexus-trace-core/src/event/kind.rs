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
        Some(match s {
            "request.start" => EventKind::RequestStart,
            "request.end" => EventKind::RequestEnd,
            "downstream" => EventKind::Downstream,
            "span.start" => EventKind::SpanStart,
            "span.end" => EventKind::SpanEnd,
            "log" => EventKind::Log,
            _ => return None,
        })
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
