//! [`Method`]: an event's request method.

use std::fmt;

use super::text::Text;

/// An HTTP (or other transport's) request method. The nine standard HTTP
/// methods are a tag with no heap; anything else is kept verbatim.
///
/// ```
/// use nexus_trace_core::Method;
///
/// assert_eq!(Method::parse("GET"), Method::Get);
/// assert_eq!(Method::parse("PROPFIND").as_str(), "PROPFIND");
/// assert_eq!(Method::parse("get").as_str(), "get"); // not GET: kept as sent
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `CONNECT`
    Connect,
    /// `OPTIONS`
    Options,
    /// `TRACE`
    Trace,
    /// `PATCH`
    Patch,
    /// Any other method, as given.
    Other(Text),
}

impl Method {
    /// The standard method spelled exactly `s`, if there is one.
    fn standard(s: &str) -> Option<Method> {
        STANDARD.iter().find(|m| m.as_str() == s).cloned()
    }

    /// The method named `s` (case-sensitive, as HTTP methods are); a
    /// non-standard one is copied into [`Method::Other`].
    pub fn parse(s: &str) -> Method {
        Method::standard(s).unwrap_or_else(|| Method::Other(Text::copy(s)))
    }

    /// The method's name.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
            Method::Other(s) => s,
        }
    }
}

/// The standard methods; a [`MethodTag`] above 0 is an index here plus one.
static STANDARD: [Method; 9] = [
    Method::Get,
    Method::Head,
    Method::Post,
    Method::Put,
    Method::Delete,
    Method::Connect,
    Method::Options,
    Method::Trace,
    Method::Patch,
];

/// How an [`Event`](super::Event) stores its method: one byte, no method,
/// a standard one, or [`MethodTag::OTHER`], whose name is kept out of line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct MethodTag(u8);

impl MethodTag {
    /// No method.
    pub(super) const NONE: MethodTag = MethodTag(0);
    /// A non-standard method.
    pub(super) const OTHER: MethodTag = MethodTag(STANDARD.len() as u8 + 1);

    fn standard(self) -> Option<&'static Method> {
        usize::from(self.0)
            .checked_sub(1)
            .and_then(|i| STANDARD.get(i))
    }

    /// The method's name (`""` for none), `None` for [`MethodTag::OTHER`].
    pub(super) fn name(self) -> Option<&'static str> {
        if self == MethodTag::NONE {
            return Some("");
        }
        self.standard().map(Method::as_str)
    }

    /// The method for this tag; `other` is the name of an `Other` method.
    pub(super) fn method(self, other: &Text) -> Option<Method> {
        if self == MethodTag::NONE {
            return None;
        }
        Some(
            self.standard()
                .map_or_else(|| Method::Other(other.clone()), Method::clone),
        )
    }

    /// The tag of `method`, and the name to keep when it is
    /// [`MethodTag::OTHER`]. An `Other` spelling a standard method becomes
    /// its tag, and an empty one no method (the wire omits it), so equal
    /// methods are stored alike.
    pub(super) fn of(method: Option<Method>) -> (MethodTag, Option<Text>) {
        let Some(method) = method else {
            return (MethodTag::NONE, None);
        };
        let same = |standard: &Method| match &method {
            Method::Other(name) => standard.as_str() == name.as_str(),
            m => std::mem::discriminant(standard) == std::mem::discriminant(m),
        };
        match STANDARD.iter().position(same) {
            // At most 9: `i + 1` fits.
            Some(i) => (MethodTag(i as u8 + 1), None),
            None => match method {
                Method::Other(name) if !name.is_empty() => (MethodTag::OTHER, Some(name)),
                // An empty name (every standard method is in `STANDARD`).
                _ => (MethodTag::NONE, None),
            },
        }
    }
}

impl From<&'static str> for Method {
    fn from(s: &'static str) -> Self {
        Method::standard(s).unwrap_or(Method::Other(Text::from_static(s)))
    }
}

impl From<Text> for Method {
    fn from(s: Text) -> Self {
        Method::standard(&s).unwrap_or(Method::Other(s))
    }
}

impl PartialEq<str> for Method {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Method {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_are_tags() {
        for name in [
            "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        ] {
            let m = Method::parse(name);
            assert!(!matches!(m, Method::Other(_)), "{name}");
            assert_eq!(m, name);
            assert_eq!(Method::from(Text::copy(name)), m);
        }
        assert_eq!(Method::from("QUERY"), Method::Other("QUERY".into()));
        assert!(std::mem::size_of::<Option<Method>>() <= 16);
    }
}
