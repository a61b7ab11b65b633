//! Outbound HTTP with [`reqwest`], traced (feature `reqwest`).
//!
//! [`TracedRequest::send_traced`] sends a request inside a CLIENT span of
//! the current span: the span's id is made before the call and sent as the
//! `traceparent` header (with the trace's `tracestate`), so the callee's
//! server span becomes the call's child, in `/__nexus/traces/{id}` and in
//! OpenTelemetry alike. Outside a request it is a plain `send`.
//!
//! ```no_run
//! use nexus_trace_http::client::TracedRequest;
//!
//! # async fn charge(http: reqwest::Client) -> reqwest::Result<()> {
//! let res = http
//!     .post("http://payments.internal/charge")
//!     .send_traced("http.payments.charge")
//!     .await?;
//! # drop(res);
//! # Ok(())
//! # }
//! ```
//!
//! The span records `http.request.method`, `server.address`, `url.path`
//! (never the query string, which may carry secrets) and
//! `http.response.status_code`. A transport error, or a status of 400 or
//! more (OpenTelemetry's rule for client spans), ends it with an error.

use std::future::Future;

use nexus_trace_core::context;
use nexus_trace_core::Text;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{RequestBuilder, Response};

use crate::record::{TRACEPARENT_HEADER, TRACESTATE_HEADER};

/// Sends a [`reqwest`] request inside a CLIENT span; see the
/// [module docs](self).
pub trait TracedRequest {
    /// Sends the request inside a CLIENT span named `name`, injecting
    /// `traceparent` and `tracestate`. A request that fails to build is
    /// returned as reqwest's error, with no span.
    fn send_traced(
        self,
        name: impl Into<Text> + Send,
    ) -> impl Future<Output = reqwest::Result<Response>> + Send;
}

impl TracedRequest for RequestBuilder {
    fn send_traced(
        self,
        name: impl Into<Text> + Send,
    ) -> impl Future<Output = reqwest::Result<Response>> + Send {
        let (client, request) = self.build_split();
        let name = name.into();
        async move {
            let mut request = request?;
            let url = request.url();
            let mut span = context::span_builder(name)
                .client()
                .attr("http.request.method", Text::copy(request.method().as_str()))
                .attr("server.address", Text::copy(url.host_str().unwrap_or("")))
                .attr("url.path", Text::copy(url.path()))
                .start();
            if let Some(parent) = span.traceparent() {
                if let Ok(value) = HeaderValue::from_str(&parent.to_string()) {
                    request
                        .headers_mut()
                        .insert(HeaderName::from_static(TRACEPARENT_HEADER), value);
                }
            }
            if let Some(state) = span
                .tracestate()
                .and_then(|s| HeaderValue::from_str(s).ok())
            {
                request
                    .headers_mut()
                    .insert(HeaderName::from_static(TRACESTATE_HEADER), state);
            }
            // Dropped before the answer (a timeout, a lost `select!`): the
            // guard ends the span with this error.
            span.set_error("cancelled");
            let result = client.execute(request).await;
            span.clear_error();
            match &result {
                Ok(res) => {
                    let status = res.status().as_u16();
                    span.attr("http.response.status_code", i64::from(status));
                    if status >= 400 {
                        span.set_error(format_args!("HTTP {status}"));
                    }
                }
                Err(e) => {
                    span.set_error(error_text(e));
                }
            }
            span.end();
            result
        }
    }
}

/// What went wrong, without the URL: reqwest's own text ends with the full
/// URL, query string and credentials included, which must not reach the bus.
fn error_text(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "too many redirects"
    } else if e.is_body() || e.is_decode() {
        "bad response body"
    } else {
        "request failed"
    };
    let mut text = what.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_call_is_recorded_without_its_url() {
        use nexus_trace_core::{Bus, EventKind, SpanContext, TraceContext};
        let bus = Bus::new(16);
        let mut sub = bus.subscribe(0);
        let ctx = TraceContext::new(bus.clone(), SpanContext::new("shop", "GET /"));
        // Port 9 on loopback: nothing listens (connection refused).
        let call = reqwest::Client::new()
            .get("http://user:secret@127.0.0.1:9/pay?token=SECRET")
            .send_traced("http.pay");
        let result = nexus_trace_core::context::scope(ctx, call).await;
        assert!(result.is_err());
        let events: Vec<_> = std::iter::from_fn(|| sub.try_recv().ok()).collect();
        let end = events
            .iter()
            .find(|e| e.kind() == EventKind::Downstream)
            .expect("the call's end");
        assert!(!end.error.is_empty());
        assert!(
            !end.error.contains("SECRET") && !end.error.contains("secret"),
            "{}",
            end.error
        );
        assert_eq!(end.attrs["url.path"], "/pay");
    }

    #[tokio::test]
    async fn a_dropped_call_is_cancelled() {
        use nexus_trace_core::{Bus, EventKind, SpanContext, TraceContext};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts and never answers.
        let _hold = tokio::spawn(async move {
            let (_socket, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
        });
        let bus = Bus::new(16);
        let mut sub = bus.subscribe(0);
        let ctx = TraceContext::new(bus.clone(), SpanContext::new("shop", "GET /"));
        let call = reqwest::Client::new()
            .get(format!("http://{addr}/slow"))
            .send_traced("http.slow");
        let timed_out = nexus_trace_core::context::scope(
            ctx,
            tokio::time::timeout(std::time::Duration::from_millis(100), call),
        )
        .await;
        assert!(timed_out.is_err());
        let events: Vec<_> = std::iter::from_fn(|| sub.try_recv().ok()).collect();
        let end = events
            .iter()
            .find(|e| e.kind() == EventKind::Downstream)
            .expect("the call's end");
        assert_eq!(end.error, "cancelled");
    }
}
