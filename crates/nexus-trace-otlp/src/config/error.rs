//! Why a configuration was rejected.

use std::fmt;

/// Why a configuration was rejected.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// The endpoint is not an absolute `http://` or `https://` URL.
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An `https://` endpoint, but the crate was built without the
    /// `rustls-tls` feature.
    TlsUnavailable {
        /// The endpoint as given.
        endpoint: String,
    },
    /// A header name or value is not valid in HTTP.
    InvalidHeader {
        /// The header name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An `OTEL_EXPORTER_OTLP_*HEADERS` entry is not `key=value` (with a
    /// percent-encoded value).
    MalformedHeaders {
        /// The environment variable.
        var: &'static str,
        /// The offending entry.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An `OTEL_EXPORTER_OTLP_*TIMEOUT` value is not a number of milliseconds.
    InvalidTimeout {
        /// The environment variable.
        var: &'static str,
        /// The value as given.
        value: String,
    },
    /// A setting is out of range (e.g. a batch size of 0).
    InvalidSetting {
        /// The setting.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The HTTP client could not be created.
    Client(reqwest::Error),
    /// [`OtlpExporter::spawn`](crate::OtlpExporter::spawn) was called outside a tokio runtime.
    NoRuntime,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::InvalidEndpoint { endpoint, reason } => {
                write!(f, "invalid OTLP endpoint {endpoint:?}: {reason}")
            }
            ConfigError::TlsUnavailable { endpoint } => write!(
                f,
                "OTLP endpoint {endpoint:?} is https, but nexus-trace-otlp was built \
                 without the `rustls-tls` feature"
            ),
            ConfigError::InvalidHeader { name, reason } => {
                write!(f, "invalid OTLP header {name:?}: {reason}")
            }
            ConfigError::MalformedHeaders { var, entry, reason } => {
                write!(f, "{var}: malformed entry {entry:?}: {reason}")
            }
            ConfigError::InvalidTimeout { var, value } => {
                write!(f, "{var}: {value:?} is not a whole number of milliseconds")
            }
            ConfigError::InvalidSetting { name, reason } => write!(f, "{name}: {reason}"),
            ConfigError::Client(e) => write!(f, "cannot create the OTLP HTTP client: {e}"),
            ConfigError::NoRuntime => {
                f.write_str("the OTLP exporter must be spawned inside a tokio runtime")
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Client(e) => Some(e),
            _ => None,
        }
    }
}
