//! W3C Trace Context (`traceparent` header) identifiers and parsing.
//!
//! Implements trace-context level 1 (§3.2 header format, §4.3 versioning):
//!
//! ```text
//! traceparent = version "-" trace-id "-" parent-id "-" trace-flags
//! 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
//! ```
//!
//! All hex is lowercase; uppercase is rejected, as are all-zero ids and the
//! version `ff`. Parsing works on bytes and never panics.

//!
//! The ids are in [`id`], the `tracestate` check in [`tracestate`].

mod id;
mod tracestate;

use std::fmt;
use std::str::FromStr;

pub(crate) use id::decode_hex;
use id::{parse_span_id, parse_trace_id};
pub use id::{SpanId, TraceId};
pub use tracestate::{tracestate_is_valid, MAX_TRACESTATE_LEN};

/// Maximum accepted `traceparent` input length in bytes (before trimming).
/// Anything longer is rejected early with [`TraceParentError::TooLong`].
pub const MAX_TRACEPARENT_LEN: usize = 512;

/// Length of a version-00 `traceparent` value.
const V00_LEN: usize = 55;

// ---------------------------------------------------------------------------
// TraceParent
// ---------------------------------------------------------------------------

/// A parsed `traceparent` header value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The version the header was received with (`0` for the current
    /// version; a higher value for a future version parsed as version 00).
    /// [`Display`](fmt::Display) always emits version `00`.
    pub version: u8,
    /// The trace id.
    pub trace_id: TraceId,
    /// The id of the caller's span (the parent of the receiver's span).
    pub parent_id: SpanId,
    /// Trace flags; bit 0 (`0x01`) is "sampled".
    pub flags: u8,
}

impl TraceParent {
    /// The "sampled" trace flag.
    pub const FLAG_SAMPLED: u8 = 0x01;

    /// A version-00 trace parent with only the sampled flag (optionally) set.
    #[must_use]
    pub fn new(trace_id: TraceId, parent_id: SpanId, sampled: bool) -> TraceParent {
        TraceParent {
            version: 0,
            trace_id,
            parent_id,
            flags: if sampled { Self::FLAG_SAMPLED } else { 0 },
        }
    }

    /// Whether the sampled flag is set.
    pub fn sampled(&self) -> bool {
        self.flags & Self::FLAG_SAMPLED != 0
    }

    /// Parses a `traceparent` header value (W3C trace-context level 1).
    ///
    /// Surrounding spaces and tabs are trimmed. Version `00` must be exactly
    /// 55 characters; a higher (future) version must be at least 55
    /// characters and, if longer, have a `-` at index 55 (the rest is
    /// ignored); its first four fields are parsed as version 00.
    ///
    /// # Errors
    ///
    /// Returns a [`TraceParentError`] describing the first problem found.
    pub fn parse(s: &str) -> Result<TraceParent, TraceParentError> {
        if s.len() > MAX_TRACEPARENT_LEN {
            return Err(TraceParentError::TooLong { len: s.len() });
        }
        let b = s.trim_matches([' ', '\t']).as_bytes();

        let Some(version_hex) = b.get(..2) else {
            return Err(TraceParentError::InvalidLength { len: b.len() });
        };
        let version = decode_hex::<1>(version_hex).ok_or(TraceParentError::InvalidVersion)?[0];
        if version == 0xff {
            return Err(TraceParentError::InvalidVersion);
        }

        let value = match b.len() {
            V00_LEN => b,
            len if version == 0 || len < V00_LEN => {
                return Err(TraceParentError::InvalidLength { len });
            }
            _ => {
                // Future version: more fields may follow, after a '-'.
                if b.get(V00_LEN) != Some(&b'-') {
                    return Err(TraceParentError::Malformed);
                }
                b.get(..V00_LEN).ok_or(TraceParentError::Malformed)?
            }
        };

        // value: vv-<32 hex>-<16 hex>-ff
        //        0  3        35 36     52 53
        let field = |r: std::ops::Range<usize>| value.get(r).ok_or(TraceParentError::Malformed);
        if [2, 35, 52].iter().any(|&i| value.get(i) != Some(&b'-')) {
            return Err(TraceParentError::Malformed);
        }
        let trace_id = parse_trace_id(field(3..35)?)?;
        let parent_id = parse_span_id(field(36..52)?)?;
        let flags = decode_hex::<1>(field(53..55)?).ok_or(TraceParentError::InvalidFlags)?[0];

        Ok(TraceParent {
            version,
            trace_id,
            parent_id,
            flags,
        })
    }
}

impl fmt::Display for TraceParent {
    /// `00-<trace-id>-<parent-id>-<flags>`; the flags are written as stored.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

impl FromStr for TraceParent {
    type Err = TraceParentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TraceParent::parse(s)
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a `traceparent` value (or a trace / span id) was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceParentError {
    /// The input is longer than [`MAX_TRACEPARENT_LEN`] bytes.
    TooLong {
        /// Input length in bytes.
        len: usize,
    },
    /// Wrong overall length: version 00 must be exactly 55 characters, a
    /// future version at least 55.
    InvalidLength {
        /// Length in bytes after trimming.
        len: usize,
    },
    /// The structure is wrong: a missing `-` separator, or a future-version
    /// value whose 56th character is not `-`.
    Malformed,
    /// The version is not two lowercase hex digits, or is the forbidden `ff`.
    InvalidVersion,
    /// The trace id is not 32 lowercase hex digits.
    InvalidTraceId,
    /// The trace id is all zeros.
    ZeroTraceId,
    /// The parent id is not 16 lowercase hex digits.
    InvalidParentId,
    /// The parent id is all zeros.
    ZeroParentId,
    /// The trace flags are not two lowercase hex digits.
    InvalidFlags,
}

impl fmt::Display for TraceParentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceParentError::TooLong { len } => write!(
                f,
                "traceparent is too long ({len} bytes, max {MAX_TRACEPARENT_LEN})"
            ),
            TraceParentError::InvalidLength { len } => {
                write!(f, "traceparent has invalid length {len} (expected 55)")
            }
            TraceParentError::Malformed => {
                f.write_str("traceparent is malformed (expected version-traceid-parentid-flags)")
            }
            TraceParentError::InvalidVersion => {
                f.write_str("traceparent version is not two lowercase hex digits other than ff")
            }
            TraceParentError::InvalidTraceId => {
                f.write_str("trace id is not 32 lowercase hex digits")
            }
            TraceParentError::ZeroTraceId => f.write_str("trace id is all zeros"),
            TraceParentError::InvalidParentId => {
                f.write_str("parent id is not 16 lowercase hex digits")
            }
            TraceParentError::ZeroParentId => f.write_str("parent id is all zeros"),
            TraceParentError::InvalidFlags => {
                f.write_str("trace flags are not two lowercase hex digits")
            }
        }
    }
}

impl std::error::Error for TraceParentError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const TID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PID: &str = "00f067aa0ba902b7";
    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn err(s: &str) -> TraceParentError {
        TraceParent::parse(s).unwrap_err()
    }

    #[test]
    fn spec_examples() {
        let tp = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(tp.version, 0);
        assert_eq!(tp.trace_id.to_string(), TID);
        assert_eq!(tp.parent_id.to_string(), PID);
        assert_eq!(tp.flags, 1);
        assert!(tp.sampled());
        assert_eq!(
            tp.trace_id.to_bytes(),
            [
                0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
                0x47, 0x36
            ]
        );
        assert_eq!(
            tp.parent_id.to_bytes(),
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );

        let unsampled =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!unsampled.sampled());
        assert_eq!(EXAMPLE.parse::<TraceParent>().unwrap(), tp);
    }

    #[test]
    fn display_round_trip() {
        let tp = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(tp.to_string(), EXAMPLE);
        assert_eq!(TraceParent::parse(&tp.to_string()).unwrap(), tp);

        let tp = TraceParent::new(TraceId::random(), SpanId::random(), false);
        assert_eq!(TraceParent::parse(&tp.to_string()).unwrap(), tp);
        assert!(tp.to_string().ends_with("-00"));

        let flags =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-a3").unwrap();
        assert_eq!(flags.flags, 0xa3);
        assert!(flags.sampled());
        assert!(flags.to_string().ends_with("-a3"));

        assert_eq!(
            format!("{:?}", tp.trace_id),
            format!("TraceId({})", tp.trace_id)
        );
        assert_eq!(
            format!("{:?}", tp.parent_id),
            format!("SpanId({})", tp.parent_id)
        );
    }

    #[test]
    fn whitespace_is_trimmed() {
        let tp = TraceParent::parse(&format!(" \t{EXAMPLE}\t ")).unwrap();
        assert_eq!(tp.to_string(), EXAMPLE);
        assert_eq!(
            err(&format!("\n{EXAMPLE}")),
            TraceParentError::InvalidVersion
        );
    }

    #[test]
    fn future_versions() {
        let v01 = format!("01-{TID}-{PID}-01");
        let tp = TraceParent::parse(&v01).unwrap();
        assert_eq!(tp.version, 1);
        assert_eq!(tp.to_string(), EXAMPLE, "re-emitted as version 00");

        let tp = TraceParent::parse(&format!("01-{TID}-{PID}-01-extra")).unwrap();
        assert_eq!((tp.version, tp.flags), (1, 1));
        assert!(TraceParent::parse(&format!("cc-{TID}-{PID}-01-")).is_ok());

        assert_eq!(
            err(&format!("01-{TID}-{PID}-01extra")),
            TraceParentError::Malformed
        );
        assert_eq!(
            err(&format!("01-{TID}-{PID}-0")),
            TraceParentError::InvalidLength { len: 54 }
        );
        // Version 00 may not have trailing fields.
        assert_eq!(
            err(&format!("00-{TID}-{PID}-01-extra")),
            TraceParentError::InvalidLength { len: 61 }
        );
        assert_eq!(
            err(&format!("ff-{TID}-{PID}-01")),
            TraceParentError::InvalidVersion
        );
        assert_eq!(
            err(&format!("ff-{TID}-{PID}-01-extra")),
            TraceParentError::InvalidVersion
        );
    }

    #[test]
    fn uppercase_and_bad_hex_rejected() {
        let upper = format!("00-{}-{PID}-01", TID.to_uppercase());
        assert_eq!(err(&upper), TraceParentError::InvalidTraceId);
        assert_eq!(
            err(&format!("00-{TID}-{}-01", PID.to_uppercase())),
            TraceParentError::InvalidParentId
        );
        assert_eq!(
            err(&format!("0A-{TID}-{PID}-01")),
            TraceParentError::InvalidVersion
        );
        assert_eq!(
            err(&format!("00-{TID}-{PID}-0A")),
            TraceParentError::InvalidFlags
        );
        assert_eq!(
            err(&format!("00-{TID}-{PID}-0g")),
            TraceParentError::InvalidFlags
        );
        assert_eq!(
            err(&format!("0x-{TID}-{PID}-01")),
            TraceParentError::InvalidVersion
        );
        assert_eq!(
            err(&format!("00-{}x-{PID}-01", &TID[..31])),
            TraceParentError::InvalidTraceId
        );
        assert_eq!(
            TID.to_uppercase().parse::<TraceId>().unwrap_err(),
            TraceParentError::InvalidTraceId
        );
    }

    #[test]
    fn zero_ids_rejected() {
        let zt = "0".repeat(32);
        let zp = "0".repeat(16);
        assert_eq!(
            err(&format!("00-{zt}-{PID}-01")),
            TraceParentError::ZeroTraceId
        );
        assert_eq!(
            err(&format!("00-{TID}-{zp}-01")),
            TraceParentError::ZeroParentId
        );
        assert_eq!(
            zt.parse::<TraceId>().unwrap_err(),
            TraceParentError::ZeroTraceId
        );
        assert_eq!(
            zp.parse::<SpanId>().unwrap_err(),
            TraceParentError::ZeroParentId
        );
        assert_eq!(TraceId::from_bytes([0; 16]), None);
        assert_eq!(SpanId::from_bytes([0; 8]), None);
        assert!(!TraceId::INVALID.is_valid());
        assert!(!SpanId::INVALID.is_valid());
        assert_eq!(TraceId::INVALID.to_string(), zt);
    }

    #[test]
    fn wrong_lengths_and_separators() {
        for s in ["", "0", "00", "00-", "00-4bf9", &EXAMPLE[..54]] {
            assert!(
                matches!(err(s), TraceParentError::InvalidLength { .. }),
                "{s:?}: {:?}",
                err(s)
            );
        }
        assert_eq!(
            err(&format!("{EXAMPLE}0")),
            TraceParentError::InvalidLength { len: 56 }
        );
        assert_eq!(
            err(&format!("00_{TID}-{PID}-01")),
            TraceParentError::Malformed
        );
        assert_eq!(
            err(&format!("00-{TID}_{PID}-01")),
            TraceParentError::Malformed
        );
        assert_eq!(
            err(&format!("00-{TID}-{PID}_01")),
            TraceParentError::Malformed
        );
        // Fields shifted: right total length, separators in the wrong places.
        assert_eq!(
            err(&format!("00-{}-{PID}0-01", &TID[..31])),
            TraceParentError::Malformed
        );
        assert_eq!(
            "4bf9".parse::<TraceId>().unwrap_err(),
            TraceParentError::InvalidTraceId
        );
        assert_eq!(
            "00f067aa0ba902b7ff".parse::<SpanId>().unwrap_err(),
            TraceParentError::InvalidParentId
        );
    }

    #[test]
    fn non_ascii_never_panics() {
        let cases = [
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01".to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01".to_string(),
            "é0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string(),
            "0é-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string(),
            format!("01-{TID}-{PID}-0😀"),
            format!("01-{TID}-{PID}-01😀"),
            format!("01-{TID}-{PID}-01-😀"),
            format!("00-{TID}-{PID}-01\u{a0}"),
            "😀".repeat(14),
            "é".repeat(28),
            "\u{0}".repeat(55),
        ];
        for s in &cases {
            let _ = TraceParent::parse(s);
            let _ = s.parse::<TraceId>();
            let _ = s.parse::<SpanId>();
        }
        assert!(TraceParent::parse(&cases[0]).is_err());
        assert!(TraceParent::parse(&cases[1]).is_err());
        assert!(
            TraceParent::parse(&cases[6]).is_ok(),
            "rest of a future version is ignored"
        );
        // Exhaustively slide a multi-byte char over every position.
        for i in 0..=EXAMPLE.len() {
            for c in ["é", "😀", "€"] {
                let mut s = EXAMPLE.to_string();
                s.insert_str(i, c);
                assert!(TraceParent::parse(&s).is_err(), "{s}");
                let mut s = format!("01{}", &EXAMPLE[2..]);
                s.insert_str(i, c);
                let _ = TraceParent::parse(&s);
            }
        }
    }

    #[test]
    fn too_long_rejected_early() {
        let big = format!("{EXAMPLE}{}", "-".repeat(10 * 1024));
        assert_eq!(err(&big), TraceParentError::TooLong { len: big.len() });
        let big = format!("01-{TID}-{PID}-01-{}", "a".repeat(10 * 1024));
        assert!(matches!(err(&big), TraceParentError::TooLong { .. }));
        // Just under the cap with a future version is fine.
        let ok = format!("01-{TID}-{PID}-01-{}", "a".repeat(MAX_TRACEPARENT_LEN - 56));
        assert_eq!(ok.len(), MAX_TRACEPARENT_LEN);
        assert!(TraceParent::parse(&ok).is_ok());
    }

    #[test]
    fn random_ids() {
        let mut traces = HashSet::new();
        let mut spans = HashSet::new();
        // Under Miri each round costs about 0.1 s (it was 70% of the core's
        // unit-test time there); the properties do not need a thousand.
        let rounds = if cfg!(miri) { 30 } else { 1000 };
        for _ in 0..rounds {
            let t = TraceId::random();
            let s = SpanId::random();
            assert!(t.is_valid() && s.is_valid());
            let ts = t.to_string();
            assert_eq!(ts.len(), 32);
            assert!(
                ts.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
                "{ts}"
            );
            let ss = s.to_string();
            assert_eq!(ss.len(), 16);
            assert!(
                ss.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
                "{ss}"
            );
            assert_eq!(ts.parse::<TraceId>().unwrap(), t);
            assert_eq!(ss.parse::<SpanId>().unwrap(), s);
            assert_eq!(TraceId::from_bytes(t.to_bytes()), Some(t));
            assert_eq!(SpanId::from_bytes(s.to_bytes()), Some(s));
            assert!(traces.insert(t));
            assert!(spans.insert(s));
        }
        // UUID v7: version nibble 7.
        let t = TraceId::random();
        assert_eq!(t.to_bytes()[6] >> 4, 7);
    }

    #[test]
    fn error_display() {
        let e = err("garbage");
        assert!(!e.to_string().is_empty());
        let _: &dyn std::error::Error = &e;
        assert!(TraceParentError::TooLong { len: 600 }
            .to_string()
            .contains("600"));
    }
}
