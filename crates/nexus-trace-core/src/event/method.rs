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
        Some(match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "CONNECT" => Method::Connect,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "PATCH" => Method::Patch,
            _ => return None,
        })
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

/// How an [`Event`](super::Event) stores its method: one byte, the name of
/// a [`Method::Other`] kept out of line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MethodTag {
    None,
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
    Other,
}

impl MethodTag {
    /// The method's name (`""` for none), `None` for [`MethodTag::Other`].
    pub(super) fn name(self) -> Option<&'static str> {
        Some(match self {
            MethodTag::None => "",
            MethodTag::Get => "GET",
            MethodTag::Head => "HEAD",
            MethodTag::Post => "POST",
            MethodTag::Put => "PUT",
            MethodTag::Delete => "DELETE",
            MethodTag::Connect => "CONNECT",
            MethodTag::Options => "OPTIONS",
            MethodTag::Trace => "TRACE",
            MethodTag::Patch => "PATCH",
            MethodTag::Other => return None,
        })
    }

    /// The method for this tag; `other` is the name of an `Other` method.
    pub(super) fn method(self, other: &Text) -> Option<Method> {
        Some(match self {
            MethodTag::None => return None,
            MethodTag::Get => Method::Get,
            MethodTag::Head => Method::Head,
            MethodTag::Post => Method::Post,
            MethodTag::Put => Method::Put,
            MethodTag::Delete => Method::Delete,
            MethodTag::Connect => Method::Connect,
            MethodTag::Options => Method::Options,
            MethodTag::Trace => Method::Trace,
            MethodTag::Patch => Method::Patch,
            MethodTag::Other => Method::Other(other.clone()),
        })
    }

    /// The tag of `method`, and the name to keep when it is
    /// [`MethodTag::Other`]. An `Other` spelling a standard method becomes
    /// its tag, and an empty one no method (the wire omits it), so equal
    /// methods are stored alike.
    pub(super) fn of(method: Option<Method>) -> (MethodTag, Option<Text>) {
        let tag = match method {
            None => MethodTag::None,
            Some(Method::Get) => MethodTag::Get,
            Some(Method::Head) => MethodTag::Head,
            Some(Method::Post) => MethodTag::Post,
            Some(Method::Put) => MethodTag::Put,
            Some(Method::Delete) => MethodTag::Delete,
            Some(Method::Connect) => MethodTag::Connect,
            Some(Method::Options) => MethodTag::Options,
            Some(Method::Trace) => MethodTag::Trace,
            Some(Method::Patch) => MethodTag::Patch,
            Some(Method::Other(name)) => {
                return match Method::standard(&name) {
                    Some(standard) => MethodTag::of(Some(standard)),
                    None if name.is_empty() => (MethodTag::None, None),
                    None => (MethodTag::Other, Some(name)),
                }
            }
        };
        (tag, None)
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
