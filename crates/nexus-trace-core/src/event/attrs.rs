//! [`Attrs`] and [`Value`]: an event's attributes (its JSON `meta`).

use std::fmt;
use std::ops::Index;
use std::sync::Arc;

use thin_vec::ThinVec;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::json::SortedValue;
use super::text::Text;

/// An attribute value. Scalars and strings are stored directly; arrays,
/// objects and `null` (from decoded JSON, or built by hand) as a shared
/// [`serde_json::Value`].
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `true` / `false`.
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer above `i64::MAX` (smaller ones are [`I64`](Value::I64)
    /// when decoded).
    U64(u64),
    /// A float, written like Go writes a `float64` (`2.0` as `2`).
    F64(f64),
    /// A string.
    Str(Text),
    /// Any other JSON: `null`, an array or an object.
    Json(Arc<serde_json::Value>),
}

impl Value {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The integer, if this is one that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::I64(i) => Some(*i),
            Value::U64(u) => i64::try_from(*u).ok(),
            _ => None,
        }
    }

    /// The value as a [`serde_json::Value`] (copies strings).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Bool(b) => (*b).into(),
            Value::I64(i) => (*i).into(),
            Value::U64(u) => (*u).into(),
            Value::F64(f) => (*f).into(),
            Value::Str(s) => s.as_str().into(),
            Value::Json(v) => (**v).clone(),
        }
    }
}

macro_rules! from_scalar {
    ($($t:ty => $variant:ident as $as:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$variant(<$as>::from(v))
            }
        }
    )*};
}
from_scalar!(
    bool => Bool as bool,
    i8 => I64 as i64, i16 => I64 as i64, i32 => I64 as i64, i64 => I64 as i64,
    u8 => I64 as i64, u16 => I64 as i64, u32 => I64 as i64,
    f32 => F64 as f64, f64 => F64 as f64,
    &'static str => Str as Text, String => Str as Text, Text => Str as Text
);

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or(Value::U64(v), Value::I64)
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::from(v as u64)
    }
}

impl From<serde_json::Value> for Value {
    /// Scalars become their own variant; `null`, arrays and objects are
    /// shared as [`Value::Json`].
    fn from(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Value::I64(i),
                (None, Some(u)) => Value::U64(u),
                (None, None) => Value::F64(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Str(Text::from(s)),
            other => Value::Json(Arc::new(other)),
        }
    }
}

impl PartialEq<bool> for Value {
    fn eq(&self, other: &bool) -> bool {
        self.as_bool() == Some(*other)
    }
}

impl PartialEq<str> for Value {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}

impl PartialEq<&str> for Value {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl PartialEq<i64> for Value {
    fn eq(&self, other: &i64) -> bool {
        self.as_i64() == Some(*other)
    }
}

impl PartialEq<i32> for Value {
    fn eq(&self, other: &i32) -> bool {
        self.as_i64() == Some(i64::from(*other))
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::I64(i) => serializer.serialize_i64(*i),
            Value::U64(u) => serializer.serialize_u64(*u),
            Value::F64(f) => serializer.serialize_f64(*f),
            Value::Str(s) => serializer.serialize_str(s),
            Value::Json(v) => SortedValue(v).serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(deserializer).map(Value::from)
    }
}

/// An event's attributes: key/value pairs, kept sorted by key (byte order,
/// like Go sorts map keys), keys unique. Written as the JSON `meta` object.
///
/// Attributes are one word (a [`thin_vec::ThinVec`]: length and capacity
/// live in the heap block), so an event without any pays 8 bytes. Empty
/// attributes hold no heap memory; the first insert allocates one small
/// vector. Keys are [`Text`], so a `&'static str` key costs nothing.
///
/// ```
/// use nexus_trace_core::Attrs;
///
/// let mut attrs = Attrs::new();
/// attrs.insert("user.id", 42);
/// attrs.insert("db.system", "sqlite");
/// assert_eq!(attrs["user.id"], 42);
/// assert_eq!(attrs.keys().collect::<Vec<_>>(), ["db.system", "user.id"]);
/// ```
#[derive(Clone, Default, PartialEq)]
pub struct Attrs(ThinVec<(Text, Value)>);

impl Attrs {
    /// No attributes (no allocation).
    #[must_use]
    pub const fn new() -> Attrs {
        Attrs(ThinVec::new())
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// Sets `key` to `value`, returning the value it replaced.
    pub fn insert(&mut self, key: impl Into<Text>, value: impl Into<Value>) -> Option<Value> {
        let key = key.into();
        let value = value.into();
        match self.find(&key) {
            Ok(i) => self
                .0
                .get_mut(i)
                .map(|(_, old)| std::mem::replace(old, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.find(key)
            .ok()
            .and_then(|i| self.0.get(i))
            .map(|(_, v)| v)
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.find(key).ok().map(|i| self.0.remove(i).1)
    }

    /// The pairs, sorted by key.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Text, &Value)> + '_ {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// The keys, sorted.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.0.iter().map(|(k, _)| k.as_str())
    }
}

impl Index<&str> for Attrs {
    type Output = Value;

    /// The value of `key`.
    ///
    /// # Panics
    ///
    /// If `key` is not set (like `BTreeMap`'s index).
    fn index(&self, key: &str) -> &Value {
        match self.get(key) {
            Some(v) => v,
            None => panic!("no attribute {key:?}"),
        }
    }
}

impl<'a> IntoIterator for &'a Attrs {
    type Item = (&'a Text, &'a Value);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Text, Value)>,
        fn(&'a (Text, Value)) -> (&'a Text, &'a Value),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl<K: Into<Text>, V: Into<Value>> FromIterator<(K, V)> for Attrs {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut attrs = Attrs::new();
        attrs.extend(iter);
        attrs
    }
}

impl<K: Into<Text>, V: Into<Value>> Extend<(K, V)> for Attrs {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl fmt::Debug for Attrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Attrs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (k, v) in self {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Attrs {
    /// A JSON object; a repeated key keeps its last value (like Go).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AttrsVisitor;

        impl<'de> Visitor<'de> for AttrsVisitor {
            type Value = Attrs;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attrs, A::Error> {
                let mut attrs = Attrs::new();
                while let Some((k, v)) = map.next_entry::<Text, Value>()? {
                    attrs.insert(k, v);
                }
                Ok(attrs)
            }
        }

        deserializer.deserialize_map(AttrsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorted_unique_keys() {
        let mut a: Attrs = [("b", 1), ("a", 2), ("c", 3)].into_iter().collect();
        assert_eq!(a.insert("a", "x"), Some(Value::I64(2)));
        assert_eq!(a.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(a["a"], "x");
        assert_eq!(a.remove("b"), Some(Value::I64(1)));
        assert!(!a.contains_key("b") && a.get("b").is_none());
        assert_eq!(a.len(), 2);
        assert_eq!(format!("{a:?}"), r#"{"a": Str("x"), "c": I64(3)}"#);
    }

    #[test]
    fn values_from_json_keep_their_kind() {
        assert_eq!(Value::from(json!(3)), Value::I64(3));
        assert_eq!(Value::from(json!(u64::MAX)), Value::U64(u64::MAX));
        assert_eq!(Value::from(json!(-1.5)), Value::F64(-1.5));
        assert_eq!(Value::from(json!("s")), "s");
        assert_eq!(Value::from(json!(true)), true);
        assert_eq!(Value::from(json!([1])), Value::Json(Arc::new(json!([1]))));
        assert_eq!(Value::from(7u64), 7);
        assert_eq!(Value::from(json!({"a": 1})).to_json(), json!({"a": 1}));
    }

    #[test]
    fn empty_attrs_hold_no_heap() {
        assert_eq!(Attrs::new().0.capacity(), 0);
        assert_eq!(Attrs::default().0.capacity(), 0);
    }
}
