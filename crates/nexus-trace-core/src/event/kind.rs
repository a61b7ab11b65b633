//! [`Kind`]: what an event records.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::text::Text;

/// The kind of a trace [`Event`](super::Event).
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
    /// `"downstream"`: a call to a downstream dependency, ended (a CLIENT
    /// span: its `timestamp` is when the call started).
    Downstream,
    /// `"span.start"`: a child span opened and is still running (the name
    /// of the upstream Go project's later versions). Its `timestamp` is the
    /// span's start.
    SpanStart,
    /// `"span.end"`: an INTERNAL child span ended (a CLIENT span ends with
    /// [`Downstream`](Kind::Downstream) instead, keeping the Go meaning of
    /// that kind). Its `timestamp` is the span's end.
    SpanEnd,
    /// `"log"`: a free-form log line attached to a trace (the default).
    #[default]
    Log,
    /// Any other kind string, kept verbatim.
    Other(Text),
}

impl Kind {
    /// The wire string of this kind.
    pub fn as_str(&self) -> &str {
        match self {
            Kind::RequestStart => "request.start",
            Kind::RequestEnd => "request.end",
            Kind::Downstream => "downstream",
            Kind::SpanStart => "span.start",
            Kind::SpanEnd => "span.end",
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
            "span.start" => Kind::SpanStart,
            "span.end" => Kind::SpanEnd,
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
        Kind::known(s).unwrap_or_else(|| Kind::Other(Text::copy(s)))
    }
}

impl From<String> for Kind {
    fn from(s: String) -> Self {
        Kind::known(&s).unwrap_or_else(|| Kind::Other(Text::from(s)))
    }
}

impl From<Text> for Kind {
    fn from(s: Text) -> Self {
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
