//! OTLP protobuf pieces: attribute values, status, ids, times, span kinds
//! and names, and the export request that groups spans by service.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use nexus_trace_core::Event;
use nexus_trace_core::Value as Attr;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::Value;

use super::{Item, Key};

pub(super) fn span_kind(s: &str) -> Option<SpanKind> {
    Some(match s.to_ascii_lowercase().as_str() {
        "internal" => SpanKind::Internal,
        "client" => SpanKind::Client,
        "server" => SpanKind::Server,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        _ => return None,
    })
}

/// `{method} {endpoint}`, unless the endpoint already names the method.
pub(super) fn server_name(method: &str, endpoint: &str) -> String {
    match (method.is_empty(), endpoint.is_empty()) {
        (true, true) => "request".to_owned(),
        (true, false) => endpoint.to_owned(),
        (false, true) => method.to_owned(),
        (false, false)
            if endpoint
                .strip_prefix(method)
                .is_some_and(|rest| rest.starts_with(' ')) =>
        {
            endpoint.to_owned()
        }
        (false, false) => format!("{method} {endpoint}"),
    }
}

pub(super) fn error_status(message: String) -> Option<Status> {
    Some(Status {
        message,
        code: StatusCode::Error as i32,
    })
}

/// The request's trace and span ids, if both are W3C ids (an event from
/// elsewhere may carry text ids, which OTLP cannot take).
pub(super) fn key(ev: &Event) -> Option<Key> {
    Some((ev.trace_id.id()?.to_bytes(), ev.span_id.id()?.to_bytes()))
}

pub(super) fn parent_span_id(ev: &Event) -> Vec<u8> {
    ev.parent_id
        .id()
        .map_or_else(Vec::new, |p| p.to_bytes().to_vec())
}

pub(super) fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

pub(super) fn duration_nanos(ev: &Event) -> u64 {
    let d: Duration = ev.duration();
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

pub(super) fn kv(key: &str, value: Any) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

pub(super) fn string(s: &str) -> Any {
    Any::StringValue(s.to_owned())
}

/// An event attribute as an OTLP attribute value.
pub(super) fn attr_value(v: &Attr) -> Option<Any> {
    Some(match v {
        Attr::Bool(b) => Any::BoolValue(*b),
        Attr::I64(i) => Any::IntValue(*i),
        // Beyond OTLP's int64.
        Attr::U64(u) => Any::DoubleValue(*u as f64),
        Attr::F64(f) => Any::DoubleValue(*f),
        Attr::Str(s) => Any::StringValue(s.to_string()),
        Attr::Json(v) => return any(v),
    })
}

/// A JSON value as an attribute value; `null` has none.
pub(super) fn any(v: &Value) -> Option<Any> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => Any::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Any::IntValue(i),
            None => Any::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Any::StringValue(s.clone()),
        Value::Array(items) => Any::ArrayValue(ArrayValue {
            values: items
                .iter()
                .filter_map(any)
                .map(|v| AnyValue { value: Some(v) })
                .collect(),
        }),
        Value::Object(map) => Any::KvlistValue(KeyValueList {
            values: map
                .iter()
                .filter_map(|(k, v)| any(v).map(|v| kv(k, v)))
                .collect(),
        }),
    })
}

/// Groups finished spans into one `ResourceSpans` per service (in order of
/// first appearance), each with `service.name` as its resource.
pub(crate) fn request(items: Vec<Item>) -> ExportTraceServiceRequest {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<(String, Vec<Span>)> = Vec::new();
    for Item { service, span } in items {
        match index.get(&service) {
            Some(&i) => groups[i].1.push(span),
            None => {
                index.insert(service.clone(), groups.len());
                groups.push((service, vec![span]));
            }
        }
    }
    let scope = InstrumentationScope {
        name: "nexus-trace".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..InstrumentationScope::default()
    };
    ExportTraceServiceRequest {
        resource_spans: groups
            .into_iter()
            .map(|(service, spans)| {
                let service = if service.is_empty() {
                    "unknown_service".to_owned()
                } else {
                    service
                };
                ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![
                            kv("service.name", Any::StringValue(service)),
                            kv("telemetry.sdk.name", string("nexus-trace")),
                            kv("telemetry.sdk.language", string("rust")),
                            kv("telemetry.sdk.version", string(env!("CARGO_PKG_VERSION"))),
                        ],
                        ..Resource::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(scope.clone()),
                        spans,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }
            })
            .collect(),
    }
}
