//! The access decision every `/__nexus` route needs.
//!
//! There is no "open" default: mounting the routes requires one of
//! * [`Access::loopback`]: only peers whose socket address is a loopback
//!   address (`X-Forwarded-For` and similar headers are never consulted);
//! * [`Access::bearer`]: `Authorization: Bearer <token>` (or, for browsers'
//!   `EventSource`, which cannot set headers, `?access_token=<token>`),
//!   compared in constant time; an empty token is refused at configuration;
//! * [`Access::custom`]: your own decision from the peer and headers.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use subtle::ConstantTimeEq;

/// What the gate sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    /// The TCP peer, if the server exposes it.
    pub peer: Option<SocketAddr>,
    /// The raw `Authorization` header value.
    pub authorization: Option<&'a [u8]>,
    /// The raw query string.
    pub query: Option<&'a str>,
}

/// The gate's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Serve the request.
    Allow,
    /// 401: credentials missing or wrong (with `WWW-Authenticate: Bearer`).
    Unauthorized,
    /// 403: this peer may not see the routes.
    Forbidden,
}

type Authorizer = dyn Fn(&AccessRequest<'_>) -> Decision + Send + Sync;

/// Who may use the `/__nexus` routes.
#[derive(Clone)]
pub enum Access {
    /// Loopback peers only.
    Loopback,
    /// A bearer token (never empty).
    Bearer(BearerToken),
    /// A user-supplied decision.
    Custom(Arc<Authorizer>),
}

/// A non-empty bearer token. Its `Debug` output does not reveal it.
#[derive(Clone)]
pub struct BearerToken(Arc<[u8]>);

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::Loopback => f.write_str("Access::Loopback"),
            Access::Bearer(t) => write!(f, "Access::Bearer({t:?})"),
            Access::Custom(_) => f.write_str("Access::Custom(..)"),
        }
    }
}

/// A gate that cannot be configured safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateError {
    /// The bearer token is empty (or only whitespace).
    EmptyToken,
    /// The bearer token contains characters not allowed in a header.
    InvalidToken,
}

impl fmt::Display for GateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateError::EmptyToken => f.write_str(
                "refusing to mount /__nexus with an empty bearer token; \
                 set a token or use Access::loopback()",
            ),
            GateError::InvalidToken => {
                f.write_str("bearer token must be visible ASCII without spaces")
            }
        }
    }
}

impl std::error::Error for GateError {}

impl Access {
    /// Loopback peers only.
    pub fn loopback() -> Access {
        Access::Loopback
    }

    /// Requires `Authorization: Bearer <token>`; errors on an empty token.
    pub fn bearer(token: impl AsRef<str>) -> Result<Access, GateError> {
        let token = token.as_ref();
        if token.trim().is_empty() {
            return Err(GateError::EmptyToken);
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(GateError::InvalidToken);
        }
        Ok(Access::Bearer(BearerToken(token.as_bytes().into())))
    }

    /// Your own decision.
    pub fn custom(f: impl Fn(&AccessRequest<'_>) -> Decision + Send + Sync + 'static) -> Access {
        Access::Custom(Arc::new(f))
    }

    /// Decides one request.
    pub fn check(&self, req: &AccessRequest<'_>) -> Decision {
        match self {
            Access::Loopback => match req.peer {
                Some(peer) if is_loopback(peer) => Decision::Allow,
                _ => Decision::Forbidden,
            },
            Access::Bearer(BearerToken(token)) => {
                let presented = req
                    .authorization
                    .and_then(|h| strip_bearer(h))
                    .or_else(|| req.query.and_then(query_token));
                match presented {
                    // ct_eq is constant-time in the contents; only the
                    // length can leak, and it is not secret enough to matter.
                    Some(p) if bool::from(p.ct_eq(token)) => Decision::Allow,
                    _ => Decision::Unauthorized,
                }
            }
            Access::Custom(f) => f(req),
        }
    }
}

fn is_loopback(peer: SocketAddr) -> bool {
    match peer {
        SocketAddr::V4(a) => a.ip().is_loopback(),
        SocketAddr::V6(a) => {
            a.ip().is_loopback() || a.ip().to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

fn strip_bearer(header: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = header.split_at(header.iter().position(|b| *b == b' ')?);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| rest.trim_ascii())
}

fn query_token(query: &str) -> Option<&[u8]> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("access_token="))
        .map(str::as_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(peer: &str, auth: Option<&'a str>, query: Option<&'a str>) -> AccessRequest<'a> {
        AccessRequest {
            peer: Some(peer.parse().unwrap()),
            authorization: auth.map(str::as_bytes),
            query,
        }
    }

    #[test]
    fn loopback_only() {
        let a = Access::loopback();
        assert_eq!(a.check(&req("127.0.0.1:5", None, None)), Decision::Allow);
        assert_eq!(a.check(&req("[::1]:5", None, None)), Decision::Allow);
        assert_eq!(
            a.check(&req("[::ffff:127.0.0.1]:5", None, None)),
            Decision::Allow
        );
        assert_eq!(a.check(&req("10.0.0.1:5", None, None)), Decision::Forbidden);
        let no_peer = AccessRequest {
            peer: None,
            authorization: None,
            query: None,
        };
        assert_eq!(a.check(&no_peer), Decision::Forbidden);
    }

    #[test]
    fn bearer_token() {
        assert_eq!(Access::bearer("").unwrap_err(), GateError::EmptyToken);
        assert_eq!(Access::bearer("  ").unwrap_err(), GateError::EmptyToken);
        assert_eq!(Access::bearer("a b").unwrap_err(), GateError::InvalidToken);
        let a = Access::bearer("s3cret").unwrap();
        assert!(!format!("{a:?}").contains("s3cret"));
        let p = "10.0.0.1:5";
        assert_eq!(
            a.check(&req(p, Some("Bearer s3cret"), None)),
            Decision::Allow
        );
        assert_eq!(
            a.check(&req(p, Some("bearer s3cret"), None)),
            Decision::Allow
        );
        assert_eq!(
            a.check(&req(p, None, Some("x=1&access_token=s3cret"))),
            Decision::Allow
        );
        assert_eq!(
            a.check(&req(p, Some("Bearer s3cre"), None)),
            Decision::Unauthorized
        );
        assert_eq!(
            a.check(&req(p, Some("Bearer s3cretx"), None)),
            Decision::Unauthorized
        );
        assert_eq!(
            a.check(&req(p, Some("Basic s3cret"), None)),
            Decision::Unauthorized
        );
        assert_eq!(
            a.check(&req(p, Some("Bearer"), None)),
            Decision::Unauthorized
        );
        assert_eq!(a.check(&req(p, None, None)), Decision::Unauthorized);
    }

    #[test]
    fn custom_decision() {
        let a = Access::custom(|r| {
            if r.authorization == Some(b"yes") {
                Decision::Allow
            } else {
                Decision::Forbidden
            }
        });
        assert_eq!(
            a.check(&req("10.0.0.1:5", Some("yes"), None)),
            Decision::Allow
        );
        assert_eq!(a.check(&req("10.0.0.1:5", None, None)), Decision::Forbidden);
    }
}
