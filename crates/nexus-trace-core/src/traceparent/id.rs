//! The W3C trace and span ids: fixed-size binary, written as lowercase hex.
//!
//! Both ids share everything but their size, how a random one is made and
//! the error a bad one is reported with; [`w3c_id!`] writes the shared part
//! once.

use std::fmt;
use std::str::FromStr;

use super::TraceParentError;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Value of a lowercase hex digit; uppercase and anything else is `None`.
fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Decodes exactly `2 * N` lowercase hex bytes.
pub(crate) fn decode_hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        if let [hi, lo] = pair {
            *o = (hex_val(*hi)? << 4) | hex_val(*lo)?;
        }
    }
    Some(out)
}

/// Writes `bytes` as lowercase hex.
fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    // Large enough for a trace id; chunked so it never indexes out of range.
    let mut buf = [0u8; 32];
    for chunk in bytes.chunks(16) {
        let mut len = 0;
        for (b, dst) in chunk.iter().zip(buf.chunks_exact_mut(2)) {
            if let [hi, lo] = dst {
                *hi = HEX[usize::from(b >> 4)];
                *lo = HEX[usize::from(b & 0xf)];
            }
            len += 2;
        }
        let s = buf
            .get(..len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or(fmt::Error)?;
        f.write_str(s)?;
    }
    Ok(())
}

/// The shared part of a W3C id type: `INVALID`, `from_bytes`, `to_bytes`,
/// `is_valid`, hex `Display`, `Debug` and `FromStr`, and its parser.
macro_rules! w3c_id {
    ($(#[$doc:meta])* $name:ident, $n:literal, $parse:ident, $bad:ident, $zero:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $n]);

        impl $name {
            #[doc = concat!("The all-zero (invalid) ", stringify!($name), ".")]
            pub const INVALID: $name = $name([0; $n]);

            /// Builds an id from raw bytes; `None` if they are all zero.
            pub fn from_bytes(bytes: [u8; $n]) -> Option<$name> {
                let id = $name(bytes);
                id.is_valid().then_some(id)
            }

            /// The raw bytes.
            pub fn to_bytes(self) -> [u8; $n] {
                self.0
            }

            /// Whether the id is valid (not all zero).
            pub fn is_valid(&self) -> bool {
                self.0 != [0; $n]
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = TraceParentError;

            #[doc = concat!("Parses exactly ", stringify!($n), " bytes of lowercase hex, not all zero.")]
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $parse(s.as_bytes())
            }
        }

        pub(super) fn $parse(s: &[u8]) -> Result<$name, TraceParentError> {
            let bytes = decode_hex::<$n>(s).ok_or(TraceParentError::$bad)?;
            $name::from_bytes(bytes).ok_or(TraceParentError::$zero)
        }
    };
}

w3c_id!(
    /// A 16-byte W3C trace id. Displays as 32 lowercase hex characters.
    TraceId, 16, parse_trace_id, InvalidTraceId, ZeroTraceId
);

w3c_id!(
    /// An 8-byte W3C span (parent) id. Displays as 16 lowercase hex characters.
    SpanId, 8, parse_span_id, InvalidParentId, ZeroParentId
);

impl TraceId {
    /// A new random trace id laid out as a UUID v7 (RFC 9562): a 48-bit
    /// millisecond timestamp, the version and variant bits, and 74 random
    /// bits from a thread-local generator. Time-ordered and never all zero
    /// (the version bits alone make it non-zero). The randomness is for
    /// uniqueness, not secrecy, as W3C Trace Context asks.
    #[must_use]
    pub fn random() -> TraceId {
        TraceId::random_at(std::time::SystemTime::now())
    }

    /// As [`random`](TraceId::random), with `time` as the timestamp: a span
    /// that has read the clock for its start does not read it again.
    pub(crate) fn random_at(time: std::time::SystemTime) -> TraceId {
        let millis = time
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut b = fastrand::u128(..).to_be_bytes();
        b[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
        b[6] = 0x70 | (b[6] & 0x0f); // version 7
        b[8] = 0x80 | (b[8] & 0x3f); // RFC 9562 variant
        TraceId(b)
    }
}

impl SpanId {
    /// A new random span id: 64 bits from a thread-local generator.
    /// Never all zero.
    #[must_use]
    pub fn random() -> SpanId {
        loop {
            if let Some(id) = SpanId::from_bytes(fastrand::u64(..).to_be_bytes()) {
                return id;
            }
        }
    }
}
