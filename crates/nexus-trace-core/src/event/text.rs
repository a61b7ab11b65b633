//! [`Text`]: the string type of an event's fields, cheap to clone.
//!
//! Backed by [`lean_string::LeanStr`]: two words, a `&'static str` or up to
//! 16 bytes stored without allocating, anything longer in one
//! reference-counted buffer. The earlier hand-written enum (a static
//! slice, 22 inline bytes, or an `Arc<str>`) was 24 bytes: its tag could
//! not share a word. Packing the three forms into 16 bytes takes a tagged
//! last byte and unsafe code, which that crate already has, tested under
//! Miri and loom. With six texts per event, and the niches it leaves for
//! `WireId`, `EventKind`, `Method` and `Value`, an event went from 336 to
//! 240 bytes.

use std::borrow::{Borrow, Cow};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use lean_string::LeanStr;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest text kept inline, without a heap allocation (in bytes).
pub const INLINE_CAPACITY: usize = 16;

/// An immutable string that is cheap to clone: a `&'static str`, up to
/// [`INLINE_CAPACITY`] bytes stored inline, or a shared, reference-counted
/// buffer. It is two words (16 bytes), and `Option<Text>` is too.
///
/// Cloning never copies the text and never allocates: a static or inline
/// text is copied bitwise, a shared one adds a reference count. Making one
/// allocates only for text that is neither static nor short:
///
/// ```
/// use nexus_trace_core::Text;
///
/// let fixed = Text::from("GET /users/{id}/orders"); // a &'static str: no allocation
/// let short = Text::from(format!("HTTP {}", 503)); // 8 bytes: kept inline
/// let long = Text::copy(&"x".repeat(100)); // one shared buffer
/// let again = long.clone(); // shares it
/// assert_eq!(fixed, "GET /users/{id}/orders");
/// assert_eq!(short.as_str(), "HTTP 503");
/// assert!(!fixed.is_shared() && !short.is_shared());
/// assert!(again.is_shared() && again.len() == 100);
/// assert_eq!(std::mem::size_of::<Text>(), 16);
/// ```
///
/// Equality, ordering and hashing are those of the string, whatever the
/// storage.
#[derive(Clone, Default)]
pub struct Text(LeanStr);

impl Text {
    /// The empty text.
    pub const EMPTY: Text = Text(LeanStr::new());

    /// A text borrowing a static string; `const`, for constants.
    ///
    /// # Panics
    ///
    /// If `s` is longer than 2<sup>56</sup> − 1 bytes.
    #[must_use]
    pub const fn from_static(s: &'static str) -> Text {
        Text(LeanStr::from_static_str(s))
    }

    /// A text holding a copy of `s`: inline when it is short, otherwise in
    /// a new shared buffer (one allocation).
    #[must_use]
    pub fn copy(s: &str) -> Text {
        Text(LeanStr::from(s))
    }

    /// The text as a string slice.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether the text lives in a shared heap allocation (neither static
    /// nor inline).
    pub fn is_shared(&self) -> bool {
        self.0.is_heap_allocated()
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
    /// Inline when short (the `String`'s buffer is freed), otherwise copied
    /// into a shared buffer (one allocation).
    fn from(s: String) -> Self {
        Text(LeanStr::from(s))
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Self {
        Text::copy(s)
    }
}

impl From<Box<str>> for Text {
    fn from(s: Box<str>) -> Self {
        Text(LeanStr::from(s))
    }
}

impl From<Arc<str>> for Text {
    /// Copies the text (one allocation when it is longer than
    /// [`INLINE_CAPACITY`]); convert once and clone the `Text` to share it.
    fn from(s: Arc<str>) -> Self {
        Text::copy(&s)
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
        let long_static = "a static text longer than the inline capacity";
        assert!(!Text::from(long_static).is_shared());
        assert_eq!(Text::from(long_static).as_ptr(), long_static.as_ptr());
        let exact = "a".repeat(INLINE_CAPACITY);
        assert!(!Text::copy(&exact).is_shared());
        assert!(Text::copy(&format!("{exact}b")).is_shared());
        assert!(!Text::from(exact.clone()).is_shared());
        assert!(Text::from(format!("{exact}b")).is_shared());
        // Multi-byte characters are kept whole.
        let t = Text::copy("héllo ✓");
        assert_eq!(t, "héllo ✓");
        assert!(t.len() <= INLINE_CAPACITY && !t.is_shared());
        // A clone of a shared text shares its buffer.
        let shared = Text::copy(&"x".repeat(40));
        assert_eq!(shared.clone().as_ptr(), shared.as_ptr());
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
        assert_eq!(std::mem::size_of::<Text>(), 16);
        assert_eq!(std::mem::size_of::<Option<Text>>(), 16);
    }

    #[test]
    fn serde_round_trip() {
        let t: Text = serde_json::from_str(r#""a\"b""#).unwrap();
        assert_eq!(t, "a\"b");
        assert_eq!(serde_json::to_string(&t).unwrap(), r#""a\"b""#);
    }
}
