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
