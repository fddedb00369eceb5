//! [`SpanRecord`]s → OTLP protobuf (on the exporter thread, never on a shard).
//!
//! Each request is one span, named by its method (OpenTelemetry's HTTP convention when no
//! route template is known). Kind is `SERVER` on inbound listeners and `CLIENT` on outbound
//! ones (the `metrics:` block's `outbound_listeners`), as Envoy reports a sidecar's hops. Its
//! span id is the one sent upstream in `traceparent`, its parent the caller's span. The
//! attributes are Envoy's tracing tags: `http.method`, `http.url`, `http.protocol`,
//! `http.status_code`, `grpc.status_code`, `upstream_cluster`, `upstream_address`,
//! `response_flags`, `component`; a 5xx (or no response at all) sets status `ERROR`.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
};

use super::SpanRecord;
use crate::config::Config;

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn text(key: &str, v: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Upstream addresses as text, formatted once each (`SocketAddr`'s `Display` costs ~2,000
/// instructions; a sidecar talks to few upstreams). Cleared when it grows past
/// [`Names::MAX`].
#[derive(Debug, Default)]
pub struct Names {
    upstreams: std::collections::HashMap<std::net::SocketAddr, String>,
}

impl Names {
    const MAX: usize = 4096;

    fn upstream(&mut self, a: std::net::SocketAddr) -> String {
        if self.upstreams.len() >= Names::MAX {
            self.upstreams.clear();
        }
        self.upstreams
            .entry(a)
            .or_insert_with(|| a.to_string())
            .clone()
    }
}

/// One span, with names resolved against the config it ran on.
pub fn span(config: &Config, r: &SpanRecord, names: &mut Names) -> Span {
    let method = lossy(r.method.as_bytes());
    let (authority, path) = (r.authority.as_bytes(), r.path.as_bytes());
    let mut url = Vec::with_capacity(7 + authority.len() + path.len());
    url.extend_from_slice(b"http://");
    url.extend_from_slice(authority);
    url.extend_from_slice(path);
    let mut attributes = Vec::with_capacity(10);
    attributes.extend([
        text("component", "proxy"),
        text("http.method", method.clone()),
        text("http.url", lossy(&url)),
        text("http.protocol", r.protocol.envoy_name().unwrap_or("-")),
        kv(
            "http.status_code",
            any_value::Value::IntValue(i64::from(r.status)),
        ),
    ]);
    if let Some(g) = r.grpc_status {
        attributes.push(kv(
            "grpc.status_code",
            any_value::Value::IntValue(i64::from(g)),
        ));
    }
    if let Some(c) = r.cluster.and_then(|i| config.clusters.get(usize::from(i))) {
        attributes.push(text("upstream_cluster", c.name.clone()));
    }
    if let Some(h) = r.upstream_host {
        attributes.push(text("upstream_address", names.upstream(h)));
    }
    let flags = if r.flags.is_empty() {
        "-".to_string()
    } else {
        r.flags.to_string()
    };
    attributes.push(text("response_flags", flags));
    let listener = usize::from(r.listener);
    let kind = if config.metrics.is_outbound(listener) {
        SpanKind::Client
    } else {
        SpanKind::Server
    };
    let error = r.status == 0 || r.status >= 500;
    Span {
        trace_id: r.trace_id.to_vec(),
        span_id: r.span_id.to_vec(),
        parent_span_id: r.parent_span_id.map(|p| p.to_vec()).unwrap_or_default(),
        flags: 0x1, // W3C trace flags: sampled
        name: method,
        kind: kind as i32,
        start_time_unix_nano: r.start_unix_nanos,
        end_time_unix_nano: r.end_unix_nanos,
        attributes,
        status: Some(Status {
            code: if error {
                StatusCode::Error as i32
            } else {
                StatusCode::Unset as i32
            },
            message: String::new(),
        }),
        ..Default::default()
    }
}

/// The export request for `spans` of service `service_name`.
pub fn request(service_name: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", service_name)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "shardcar".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::otlp::Inline;
    use crate::telemetry::{Flags, Protocol};
    use prost::Message;

    #[test]
    fn a_span_round_trips_through_protobuf() {
        let config = Config::from_yaml(
            "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    cluster: app\nclusters:\n  - name: app\n    endpoints: [\"127.0.0.1:1\"]\n",
        )
        .unwrap();
        let mut flags = Flags::NONE;
        flags.add("UF");
        let r = SpanRecord {
            trace_id: [7; 16],
            span_id: [8; 8],
            parent_span_id: Some([9; 8]),
            start_unix_nanos: 10,
            end_unix_nanos: 20,
            listener: 0,
            cluster: Some(0),
            status: 503,
            grpc_status: None,
            flags,
            protocol: Protocol::Http11,
            upstream_host: Some("10.0.0.1:8080".parse().unwrap()),
            method: Inline::new(b"GET"),
            authority: Inline::new(b"web"),
            path: Inline::new(b"/a"),
        };
        let bytes = request("svc", vec![span(&config, &r, &mut Names::default())]).encode_to_vec();
        let back = ExportTraceServiceRequest::decode(&bytes[..]).unwrap();
        let s = &back.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            (s.trace_id.as_slice(), s.span_id.as_slice()),
            (&[7; 16][..], &[8; 8][..])
        );
        assert_eq!(s.parent_span_id, vec![9; 8]);
        assert_eq!((s.name.as_str(), s.kind), ("GET", SpanKind::Server as i32));
        assert_eq!(s.status.as_ref().unwrap().code, StatusCode::Error as i32);
        let attr = |k: &str| {
            s.attributes
                .iter()
                .find(|a| a.key == k)
                .and_then(|a| a.value.clone())
                .and_then(|v| v.value)
        };
        assert_eq!(
            attr("upstream_cluster"),
            Some(any_value::Value::StringValue("app".into()))
        );
        assert_eq!(
            attr("response_flags"),
            Some(any_value::Value::StringValue("UF".into()))
        );
        assert_eq!(
            attr("upstream_address"),
            Some(any_value::Value::StringValue("10.0.0.1:8080".into()))
        );
        assert_eq!(
            attr("http.url"),
            Some(any_value::Value::StringValue("http://web/a".into()))
        );
    }
}
