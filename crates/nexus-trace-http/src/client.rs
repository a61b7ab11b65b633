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
            let result = client.execute(request).await;
            match &result {
                Ok(res) => {
                    let status = res.status().as_u16();
                    span.attr("http.response.status_code", i64::from(status));
                    if status >= 400 {
                        span.set_error(format_args!("HTTP {status}"));
                    }
                }
                Err(e) => {
                    span.set_error(e);
                }
            }
            span.end();
            result
        }
    }
}
