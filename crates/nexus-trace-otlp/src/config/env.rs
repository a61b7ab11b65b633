//! Values of the standard `OTEL_EXPORTER_OTLP_*` environment variables.

use super::ConfigError;

/// Parses an `OTEL_EXPORTER_OTLP_HEADERS` value: comma-separated
/// `key=value` entries, whitespace around keys and values ignored, values
/// percent-decoded. Empty entries (a trailing comma) are skipped.
///
/// # Errors
/// [`ConfigError::MalformedHeaders`] naming `var` and the offending entry.
pub fn parse_headers(var: &'static str, value: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for entry in value.split(',') {
        if entry.trim().is_empty() {
            continue;
        }
        let malformed = |reason| ConfigError::MalformedHeaders {
            var,
            entry: entry.trim().to_owned(),
            reason,
        };
        let (k, v) = entry
            .split_once('=')
            .ok_or_else(|| malformed("expected key=value"))?;
        let k = k.trim();
        if k.is_empty() {
            return Err(malformed("empty key"));
        }
        let v = percent_encoding::percent_decode_str(v.trim())
            .decode_utf8()
            .map_err(|_| malformed("value is not UTF-8 after percent-decoding"))?;
        out.push((k.to_owned(), v.into_owned()));
    }
    Ok(out)
}
