//! [`Text`]: the string type of an event's fields, cheap to clone.

use std::borrow::{Borrow, Cow};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest text kept inline, without a heap allocation (in bytes).
pub const INLINE_CAPACITY: usize = 22;

/// An immutable string that is cheap to clone: a `&'static str`, up to
/// [`INLINE_CAPACITY`] bytes stored inline, or a shared `Arc<str>`.
///
/// Cloning never copies the text and never allocates: a static or inline
/// text is copied bitwise (24 bytes), a shared one adds a reference count.
/// Making one allocates only for text that is neither static nor short:
///
/// ```
/// use nexus_trace_core::Text;
///
/// let fixed = Text::from("GET /users/{id}"); // a &'static str: no allocation
/// let short = Text::from(format!("HTTP {}", 503)); // 8 bytes: kept inline
/// let long = Text::copy(&"x".repeat(100)); // one Arc<str>
/// let again = long.clone(); // shares it
/// assert_eq!(fixed, "GET /users/{id}");
/// assert_eq!(short.as_str(), "HTTP 503");
/// assert!(again.is_shared() && again.len() == 100);
/// ```
///
/// Equality, ordering and hashing are those of the string, whatever the
/// storage.
#[derive(Clone)]
pub struct Text(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    /// `buf[..len]` is a whole `str` copied in by [`Text::copy`].
    Inline {
        len: u8,
        buf: [u8; INLINE_CAPACITY],
    },
    Shared(Arc<str>),
}

impl Text {
    /// The empty text.
    pub const EMPTY: Text = Text(Repr::Static(""));

    /// A text borrowing a static string; `const`, for constants.
    #[must_use]
    pub const fn from_static(s: &'static str) -> Text {
        Text(Repr::Static(s))
    }

    /// A text holding a copy of `s`: inline when it is short, otherwise in
    /// a new `Arc<str>` (one allocation).
    #[must_use]
    pub fn copy(s: &str) -> Text {
        if s.len() <= INLINE_CAPACITY {
            let mut buf = [0; INLINE_CAPACITY];
            if let Some(dst) = buf.get_mut(..s.len()) {
                dst.copy_from_slice(s.as_bytes());
                return Text(Repr::Inline {
                    len: s.len() as u8,
                    buf,
                });
            }
        }
        Text(Repr::Shared(Arc::from(s)))
    }

    /// The text as a string slice.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Inline { len, buf } => {
                let bytes = buf.get(..usize::from(*len)).unwrap_or_default();
                // SAFETY: an inline text is only made by `copy`, which copies
                // a whole `&str` (so valid UTF-8) into `buf[..len]`; the
                // fields are private and never changed afterwards.
                unsafe { std::str::from_utf8_unchecked(bytes) }
            }
            Repr::Shared(s) => s,
        }
    }

    /// Whether the text lives in a shared heap allocation (neither static
    /// nor inline).
    pub fn is_shared(&self) -> bool {
        matches!(self.0, Repr::Shared(_))
    }
}

impl Default for Text {
    fn default() -> Self {
        Text::EMPTY
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&'static str> for Text {
    fn from(s: &'static str) -> Self {
        Text::from_static(s)
    }
}

impl From<String> for Text {
    /// Inline when short (the `String`'s buffer is freed), otherwise moved
    /// into an `Arc<str>` (one allocation and a copy).
    fn from(s: String) -> Self {
        if s.len() <= INLINE_CAPACITY {
            Text::copy(&s)
        } else {
            Text(Repr::Shared(Arc::from(s)))
        }
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Self {
        Text::copy(s)
    }
}

impl From<Box<str>> for Text {
    fn from(s: Box<str>) -> Self {
        Text::from(String::from(s))
    }
}

impl From<Arc<str>> for Text {
    /// Shares the `Arc`: no copy, no allocation.
    fn from(s: Arc<str>) -> Self {
        Text(Repr::Shared(s))
    }
}

impl From<Cow<'static, str>> for Text {
    fn from(s: Cow<'static, str>) -> Self {
        match s {
            Cow::Borrowed(s) => Text::from_static(s),
            Cow::Owned(s) => Text::from(s),
        }
    }
}

impl From<Text> for String {
    fn from(t: Text) -> Self {
        t.as_str().to_owned()
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Text {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Text {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

macro_rules! eq_str {
    ($($t:ty),*) => {$(
        impl PartialEq<$t> for Text {
            fn eq(&self, other: &$t) -> bool {
                self.as_str() == AsRef::<str>::as_ref(other)
            }
        }
        impl PartialEq<Text> for $t {
            fn eq(&self, other: &Text) -> bool {
                AsRef::<str>::as_ref(self) == other.as_str()
            }
        }
    )*};
}
eq_str!(str, &str, String);

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl Visitor<'_> for TextVisitor {
            type Value = Text;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text::copy(v))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
                Ok(Text::from(v))
            }
        }

        deserializer.deserialize_str(TextVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_follows_the_source() {
        assert!(matches!(Text::from("x").0, Repr::Static("x")));
        let exact = "a".repeat(INLINE_CAPACITY);
        assert!(matches!(Text::copy(&exact).0, Repr::Inline { .. }));
        assert!(Text::copy(&format!("{exact}b")).is_shared());
        assert!(!Text::from(exact.clone()).is_shared());
        assert!(Text::from(format!("{exact}b")).is_shared());
        // Multi-byte characters are kept whole.
        let t = Text::copy("héllo wörld ✓");
        assert_eq!(t, "héllo wörld ✓");
        assert!(!t.is_shared());
    }

    #[test]
    fn equal_whatever_the_storage() {
        use std::collections::hash_map::DefaultHasher;
        let hash = |t: &Text| {
            let mut h = DefaultHasher::new();
            t.hash(&mut h);
            h.finish()
        };
        let a = Text::from("route");
        let b = Text::copy("route");
        let c = Text::from(Arc::<str>::from("route"));
        assert!(a == b && b == c);
        assert_eq!((hash(&a), hash(&b)), (hash(&c), hash(&c)));
        assert_eq!(Text::from("a").cmp(&Text::copy("b")), Ordering::Less);
        assert_eq!(format!("{a} {a:?}"), "route \"route\"");
        assert_eq!(Text::default(), "");
        assert_eq!(std::mem::size_of::<Text>(), 24);
    }

    #[test]
    fn serde_round_trip() {
        let t: Text = serde_json::from_str(r#""a\"b""#).unwrap();
        assert_eq!(t, "a\"b");
        assert_eq!(serde_json::to_string(&t).unwrap(), r#""a\"b""#);
    }
}
