//! [`RouteCache`]: one shared [`Text`] per route template, so a request's
//! endpoint is a reference count, not a copy.

use std::collections::HashSet;
use std::sync::{Arc, PoisonError, RwLock};

use crate::record::redact;
use nexus_trace_core::{Text, INLINE_CAPACITY};

/// A layer's route templates as shared texts, made on a route's first
/// request and reused for every later one.
///
/// Short templates (up to [`INLINE_CAPACITY`] bytes) are copied inline and
/// never touch the cache. Longer ones are looked up under a read lock;
/// the first request of a route takes the write lock once to add it. The
/// cache holds at most [`RouteCache::MAX_ROUTES`] templates: routes are a
/// fixed set, and past the bound a template is simply copied per request.
/// Clones share one cache.
#[derive(Clone, Debug, Default)]
pub struct RouteCache {
    routes: Arc<RwLock<HashSet<Text>>>,
}

impl RouteCache {
    /// The most templates kept.
    pub const MAX_ROUTES: usize = 1024;

    /// A new, empty cache.
    pub fn new() -> RouteCache {
        RouteCache::default()
    }

    /// The endpoint text of `route`: capped like a path
    /// ([`redact::capture_path`]), shared with earlier requests of the
    /// same route when it is too long to be inline.
    pub fn endpoint(&self, route: &str) -> Text {
        if route.len() <= INLINE_CAPACITY || route.len() > redact::MAX_PATH {
            return redact::capture_path(route);
        }
        // A panic while holding the lock cannot leave the set half-changed
        // (an insert either happened or not), so a poisoned lock is usable.
        if let Some(text) = self
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
        {
            return text.clone();
        }
        let text = Text::copy(route);
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        if routes.len() < Self::MAX_ROUTES {
            routes.insert(text.clone());
        }
        text
    }

    /// How many templates are cached.
    pub fn len(&self) -> usize {
        self.routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether none is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_templates_are_shared_short_ones_inline() {
        let cache = RouteCache::new();
        let short = cache.endpoint("/users/{id}");
        assert!(!short.is_shared());
        assert!(cache.is_empty());
        let route = "/api/v1/accounts/{account}/orders/{order}";
        let (a, b) = (cache.endpoint(route), cache.endpoint(route));
        assert!(a.is_shared() && a == route);
        // The second is a clone of the first: one allocation for both.
        assert_eq!(a.as_ptr(), b.as_ptr());
        assert_eq!(cache.len(), 1);
        let huge = "x".repeat(redact::MAX_PATH + 1);
        assert!(cache.endpoint(&huge).ends_with('…'));
        assert_eq!(cache.clone().len(), 1);
    }

    #[test]
    // Safe code only, and 1034 inserts took 90 s of Miri's time in CI.
    #[cfg_attr(miri, ignore = "slow under Miri; no unsafe code involved")]
    fn bounded() {
        let cache = RouteCache::new();
        for i in 0..RouteCache::MAX_ROUTES + 10 {
            let route = format!("/a-fairly-long-route/{i:08}");
            assert_eq!(cache.endpoint(&route), route.as_str());
        }
        assert_eq!(cache.len(), RouteCache::MAX_ROUTES);
    }
}
