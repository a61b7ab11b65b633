//! Exporter configuration: the builder and how it reads the standard
//! `OTEL_EXPORTER_OTLP_*` environment variables; the errors are in
//! [`error`], the parsing of variable values in [`env`].

mod env;
mod error;

use std::time::Duration;

use nexus_trace_core::{Bus, Subscription};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

pub use env::parse_headers;
pub use error::ConfigError;

use crate::exporter::OtlpExporter;

/// The OTLP/HTTP endpoint used when none is configured.
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4318";

/// The path appended to a base endpoint for traces.
pub const TRACES_PATH: &str = "/v1/traces";

/// Longer waits are cut to this (a day), so that no deadline can overflow.
const MAX_WAIT: Duration = Duration::from_secs(86_400);

/// Builds an [`OtlpExporter`]; see [`OtlpExporter::builder`].
///
/// Nothing is validated until [`build`](OtlpExporterBuilder::build).
#[derive(Debug)]
pub struct OtlpExporterBuilder {
    pub(crate) sub: Subscription,
    pub(crate) url: Endpoint,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) batch_size: usize,
    pub(crate) max_pending: usize,
    pub(crate) max_queued_batches: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) max_retries: u32,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
}

#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    /// A base URL; `/v1/traces` is appended.
    Base(String),
    /// The full traces URL, used verbatim.
    Traces(String),
}

impl Endpoint {
    fn url(&self) -> String {
        match self {
            Endpoint::Base(base) => format!("{}{TRACES_PATH}", base.trim_end_matches('/')),
            Endpoint::Traces(url) => url.clone(),
        }
    }
}

/// The settings an exporter runs with, after validation.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) url: reqwest::Url,
    pub(crate) headers: HeaderMap,
    pub(crate) batch_size: usize,
    pub(crate) max_pending: usize,
    pub(crate) max_queued_batches: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) max_retries: u32,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
}

impl OtlpExporterBuilder {
    pub(crate) fn new(bus: &Bus) -> Self {
        OtlpExporterBuilder {
            sub: bus.subscribe_latest(),
            url: Endpoint::Base(DEFAULT_ENDPOINT.to_owned()),
            headers: Vec::new(),
            batch_size: 512,
            max_pending: 4096,
            max_queued_batches: 2,
            flush_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            max_retries: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }

    /// The OTLP/HTTP base endpoint (default [`DEFAULT_ENDPOINT`]); spans are
    /// POSTed to `{endpoint}/v1/traces`.
    #[must_use]
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.url = Endpoint::Base(endpoint.into());
        self
    }

    /// The full traces URL, used verbatim (like
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); overrides
    /// [`endpoint`](Self::endpoint).
    #[must_use]
    pub fn traces_endpoint(mut self, url: impl Into<String>) -> Self {
        self.url = Endpoint::Traces(url.into());
        self
    }

    /// Adds one header sent with every export request (e.g. an API key).
    /// A header of the same name set earlier is replaced.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        self.headers.push((name, value.into()));
        self
    }

    /// Adds headers sent with every export request; see
    /// [`header`](Self::header).
    #[must_use]
    pub fn headers<K, V>(mut self, headers: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        for (k, v) in headers {
            self = self.header(k, v);
        }
        self
    }

    /// The most spans sent in one export request (default 512). A batch is
    /// sent when it is full or when the flush interval elapses.
    #[must_use]
    pub fn batch_size(mut self, spans: usize) -> Self {
        self.batch_size = spans;
        self
    }

    /// The most requests kept open (started, not yet ended) at once (default
    /// 4096). Past that the oldest is forgotten and counted in
    /// [`Stats::pending_evicted`](crate::Stats::pending_evicted); its span
    /// is still exported from its `request.end` if that arrives, without
    /// the logs collected so far.
    #[must_use]
    pub fn max_pending(mut self, requests: usize) -> Self {
        self.max_pending = requests;
        self
    }

    /// The most full batches waiting for the HTTP sender (default 2). When
    /// the sender is behind (a slow or failing collector), further batches
    /// are dropped and counted in
    /// [`DroppedSpans::queue_full`](crate::DroppedSpans::queue_full).
    #[must_use]
    pub fn max_queued_batches(mut self, batches: usize) -> Self {
        self.max_queued_batches = batches;
        self
    }

    /// How long a partial batch may wait before it is sent (default 1 s).
    #[must_use]
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// The time limit of one export attempt, response included (default 10 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many times a batch is retried after a connection error, a 429 or
    /// a 5xx response (default 3). Other failures, timeouts included, are
    /// not retried.
    #[must_use]
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The wait before the first retry (default 100 ms); it doubles on each
    /// further retry up to `max` (default 5 s). A `Retry-After` of a 429 or
    /// 503 is honoured up to `max`.
    #[must_use]
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Applies the standard environment variables:
    ///
    /// * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: the traces URL, verbatim;
    ///   else `OTEL_EXPORTER_OTLP_ENDPOINT`: a base URL, `/v1/traces` appended;
    /// * `OTEL_EXPORTER_OTLP_HEADERS`, then `OTEL_EXPORTER_OTLP_TRACES_HEADERS`
    ///   (which wins for the same name): `key=value,key2=value2`, values
    ///   percent-decoded;
    /// * `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, else `OTEL_EXPORTER_OTLP_TIMEOUT`:
    ///   the per-attempt timeout in milliseconds.
    ///
    /// Unset and empty variables leave the setting as it is.
    ///
    /// # Errors
    /// [`ConfigError::MalformedHeaders`] for a header entry that is not
    /// `key=value` or whose value does not percent-decode to UTF-8, and
    /// [`ConfigError::InvalidTimeout`].
    pub fn with_env(self) -> Result<Self, ConfigError> {
        self.with_env_from(|name| std::env::var(name).ok())
    }

    /// [`with_env`](Self::with_env) reading variables through `var` instead
    /// of the process environment (for tests and custom sources).
    ///
    /// # Errors
    /// As [`with_env`](Self::with_env).
    pub fn with_env_from(
        mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if let Some(url) = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            self = self.traces_endpoint(url.trim());
        } else if let Some(base) = var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            self = self.endpoint(base.trim());
        }
        for name in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            if let Some(value) = var(name) {
                self = self.headers(parse_headers(name, &value)?);
            }
        }
        for name in [
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ] {
            if let Some(value) = var(name) {
                let ms: u64 = value
                    .trim()
                    .parse()
                    .map_err(|_| ConfigError::InvalidTimeout { var: name, value })?;
                self.timeout = Duration::from_millis(ms);
                break;
            }
        }
        Ok(self)
    }

    /// The URL spans will be POSTed to, as configured so far (unvalidated).
    pub fn traces_url(&self) -> String {
        self.url.url()
    }

    /// Validates the configuration and creates the HTTP client. The exporter
    /// reads the bus from where it was when
    /// [`OtlpExporter::builder`] was called: those events, and all later ones,
    /// are exported once it is [spawned](OtlpExporter::spawn).
    ///
    /// # Errors
    /// [`ConfigError`] for an invalid endpoint, header or setting, or when the
    /// HTTP client cannot be created.
    pub fn build(self) -> Result<OtlpExporter, ConfigError> {
        let settings = self.settings()?;
        let client = reqwest::Client::builder()
            .build()
            .map_err(ConfigError::Client)?;
        Ok(OtlpExporter::new(self.sub, settings, client))
    }

    pub(crate) fn settings(&self) -> Result<Settings, ConfigError> {
        let raw = self.url.url();
        let url = reqwest::Url::parse(&raw).map_err(|e| ConfigError::InvalidEndpoint {
            endpoint: raw.clone(),
            reason: e.to_string(),
        })?;
        match url.scheme() {
            "http" => {}
            "https" if cfg!(feature = "rustls-tls") => {}
            "https" => return Err(ConfigError::TlsUnavailable { endpoint: raw }),
            other => {
                return Err(ConfigError::InvalidEndpoint {
                    endpoint: raw.clone(),
                    reason: format!("scheme {other:?} is not http or https"),
                })
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(ConfigError::InvalidEndpoint {
                endpoint: raw,
                reason: "no host".into(),
            });
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let invalid = |reason: String| ConfigError::InvalidHeader {
                name: name.clone(),
                reason,
            };
            let n = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|e| invalid(e.to_string()))?;
            if n == CONTENT_TYPE {
                return Err(invalid(
                    "content-type is always application/x-protobuf".into(),
                ));
            }
            let v = HeaderValue::from_str(value).map_err(|e| invalid(e.to_string()))?;
            headers.insert(n, v);
        }
        let positive = |name: &'static str, n: usize| {
            if n == 0 {
                Err(ConfigError::InvalidSetting {
                    name,
                    reason: "must be at least 1",
                })
            } else {
                Ok(n)
            }
        };
        if self.flush_interval.is_zero() {
            return Err(ConfigError::InvalidSetting {
                name: "flush_interval",
                reason: "must be positive",
            });
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::InvalidSetting {
                name: "timeout",
                reason: "must be positive",
            });
        }
        Ok(Settings {
            url,
            headers,
            batch_size: positive("batch_size", self.batch_size)?,
            max_pending: self.max_pending,
            max_queued_batches: positive("max_queued_batches", self.max_queued_batches)?,
            flush_interval: self.flush_interval.min(MAX_WAIT),
            timeout: self.timeout.min(MAX_WAIT),
            max_retries: self.max_retries,
            initial_backoff: self.initial_backoff.min(MAX_WAIT),
            max_backoff: self.max_backoff.min(MAX_WAIT),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_and_env_endpoints() {
        let bus = Bus::new(8);
        let b = OtlpExporterBuilder::new(&bus);
        assert_eq!(b.traces_url(), "http://localhost:4318/v1/traces");
        let b = b
            .with_env_from(env(&[(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://collector:4318/",
            )]))
            .unwrap();
        assert_eq!(b.traces_url(), "http://collector:4318/v1/traces");
        let b = b
            .with_env_from(env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:1"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://x:9/custom/path",
                ),
            ]))
            .unwrap();
        assert_eq!(b.traces_url(), "http://x:9/custom/path");
        // Empty = unset.
        let b = OtlpExporterBuilder::new(&bus)
            .with_env_from(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "  ")]))
            .unwrap();
        assert_eq!(b.traces_url(), "http://localhost:4318/v1/traces");
    }

    #[test]
    fn env_headers_and_timeout() {
        let bus = Bus::new(8);
        let b = OtlpExporterBuilder::new(&bus)
            .with_env_from(env(&[
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "api-key = secret%20value%2C1 ,x-tenant=a,",
                ),
                ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "X-Tenant=b"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ]))
            .unwrap();
        assert_eq!(
            b.headers,
            vec![
                ("api-key".to_string(), "secret value,1".to_string()),
                ("X-Tenant".to_string(), "b".to_string()),
            ]
        );
        assert_eq!(b.timeout, Duration::from_millis(2500));
        let s = b.settings().unwrap();
        assert_eq!(s.headers["x-tenant"], "b");
        assert_eq!(s.url.as_str(), "http://localhost:4318/v1/traces");
    }

    #[test]
    fn malformed_env_is_a_clear_error() {
        let bus = Bus::new(8);
        for (value, reason) in [
            ("novalue", "expected key=value"),
            ("a=1,=2", "empty key"),
            ("a=%ff%fe", "not UTF-8"),
        ] {
            let e = OtlpExporterBuilder::new(&bus)
                .with_env_from(env(&[("OTEL_EXPORTER_OTLP_HEADERS", value)]))
                .unwrap_err();
            let text = e.to_string();
            assert!(text.starts_with("OTEL_EXPORTER_OTLP_HEADERS: malformed entry"));
            assert!(text.contains(reason), "{text}");
        }
        let e = OtlpExporterBuilder::new(&bus)
            .with_env_from(env(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")]))
            .unwrap_err();
        assert!(matches!(e, ConfigError::InvalidTimeout { .. }), "{e}");
    }

    #[test]
    fn invalid_settings_are_rejected() {
        let bus = Bus::new(8);
        let err = |b: OtlpExporterBuilder| b.settings().unwrap_err().to_string();
        let b = || OtlpExporterBuilder::new(&bus);
        assert!(err(b().endpoint("localhost:4318")).contains("scheme"));
        assert!(err(b().endpoint("not a url")).contains("invalid OTLP endpoint"));
        assert!(err(b().traces_endpoint("ftp://x/v1/traces")).contains("scheme"));
        if !cfg!(feature = "rustls-tls") {
            assert!(err(b().endpoint("https://api.example")).contains("rustls-tls"));
        }
        assert!(err(b().header("bad name", "v")).contains("bad name"));
        assert!(err(b().header("x", "line\nbreak")).contains("invalid OTLP header"));
        assert!(err(b().header("Content-Type", "text/plain")).contains("x-protobuf"));
        assert!(err(b().batch_size(0)).contains("batch_size"));
        assert!(err(b().max_queued_batches(0)).contains("max_queued_batches"));
        assert!(err(b().timeout(Duration::ZERO)).contains("timeout"));
        assert!(err(b().flush_interval(Duration::ZERO)).contains("flush_interval"));
        assert!(
            b().max_pending(0).settings().is_ok(),
            "0 pending is allowed"
        );
    }
}
