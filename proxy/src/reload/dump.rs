//! `/config_dump`: the config version in force, where it came from, the reload counters and
//! the last attempt's outcome, a summary of the live listeners and clusters (names,
//! addresses, protocols), and the whole config in force as JSON (`config`) with secrets
//! redacted: every `key` (private keys of `tls:` blocks) reads `"[redacted]"`, and inline
//! JWKS (`jwks`) keep only their public members.

use std::fmt::Write as _;
use std::path::Path;

use super::LastReload;
use crate::config::{ClusterKind, Config};

/// What the control thread knows beside the config itself.
#[derive(Debug)]
pub struct Facts<'a> {
    pub version: u64,
    pub applied: u64,
    pub rejected: u64,
    pub source: Option<&'a Path>,
    pub fingerprint: u64,
    pub last: Option<&'a LastReload>,
    /// Each listener's bound address (the resolved port where the config says 0).
    pub bound: &'a [(String, std::net::SocketAddr)],
    /// The YAML text of the config in force.
    pub text: &'a str,
    /// The xDS client's state (a JSON object), when the proxy runs from a bootstrap.
    pub xds: Option<&'a str>,
}

/// One JSON object, newline-terminated.
pub fn render(config: &Config, f: &Facts<'_>) -> String {
    let mut o = String::with_capacity(512);
    let source = f.source.map_or_else(
        || "(embedded default)".to_string(),
        |p| p.display().to_string(),
    );
    let _ = write!(
        o,
        "{{\"version\":{},\"source\":{},\"fingerprint\":\"{:016x}\",\"reloads_applied\":{},\"reloads_rejected\":{}",
        f.version,
        json(&source),
        f.fingerprint,
        f.applied,
        f.rejected
    );
    if let Some(l) = f.last {
        let _ = write!(
            o,
            ",\"last_reload\":{{\"trigger\":{},\"ok\":{}",
            json(l.trigger.as_str()),
            l.error.is_none()
        );
        if let Some(e) = &l.error {
            let _ = write!(o, ",\"error\":{}", json(e));
        }
        o.push('}');
    }
    if let Some(x) = f.xds {
        let _ = write!(o, ",\"xds\":{x}");
    }
    o.push_str(",\"listeners\":[");
    for (i, l) in config.listeners.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let bound = f
            .bound
            .iter()
            .find(|(n, _)| *n == l.name)
            .map_or(l.address, |(_, a)| *a);
        let _ = write!(
            o,
            "{{\"name\":{},\"address\":\"{}\",\"bound\":\"{bound}\",\"protocol\":\"{:?}\"}}",
            json(&l.name),
            l.address,
            l.protocol
        );
    }
    o.push_str("],\"clusters\":[");
    for (i, c) in config.clusters.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let endpoints: Vec<String> = match &c.kind {
            ClusterKind::Static(eps) => eps.iter().map(|e| json(&e.written())).collect(),
            ClusterKind::OriginalDst { .. } => Vec::new(),
        };
        let _ = write!(
            o,
            "{{\"name\":{},\"endpoints\":[{}]}}",
            json(&c.name),
            endpoints.join(",")
        );
    }
    o.push(']');
    if let Some(config) = redacted(f.text) {
        let _ = write!(o, ",\"config\":{config}");
    }
    o.push_str("}\n");
    o
}

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// JWK members that are private key material (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037).
const JWK_PRIVATE: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The YAML config as JSON with secrets redacted (`None` if the text is not YAML).
pub fn redacted(text: &str) -> Option<serde_json::Value> {
    let yaml: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
    let mut v = serde_json::to_value(yaml).ok()?;
    redact(&mut v);
    Some(v)
}

fn redact(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                match k.as_str() {
                    "key" | "private_key" | "password" | "secret" => {
                        *val = Value::String(REDACTED.into());
                    }
                    "jwks" => {
                        if let Value::String(s) = val {
                            *val = Value::String(redact_jwks(s));
                        }
                    }
                    _ => redact(val),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

/// An inline JWKS with private members replaced (unparseable text is redacted whole).
fn redact_jwks(s: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(s) else {
        return REDACTED.into();
    };
    if let Some(keys) = v.get_mut("keys").and_then(|k| k.as_array_mut()) {
        for k in keys.iter_mut().filter_map(|k| k.as_object_mut()) {
            for m in JWK_PRIVATE {
                if let Some(x) = k.get_mut(*m) {
                    *x = serde_json::Value::String(REDACTED.into());
                }
            }
        }
    }
    v.to_string()
}

fn json(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    crate::telemetry::access_log::render::json_str(s.as_bytes(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_private_jwk_members_are_redacted() {
        let yaml = r#"
listeners:
  - name: l
    tls: {cert: /c.pem, key: /secret/k.pem}
request_authentication:
  - jwtRules: [{issuer: i, jwks: '{"keys":[{"kty":"oct","k":"c2VjcmV0"},{"kty":"RSA","n":"AQAB","e":"AQAB","d":"cHJpdg"}]}'}]
"#;
        let v = redacted(yaml).unwrap();
        let text = v.to_string();
        assert!(!text.contains("/secret/k.pem"), "{text}");
        assert!(
            !text.contains("c2VjcmV0") && !text.contains("cHJpdg"),
            "{text}"
        );
        assert_eq!(v["listeners"][0]["tls"]["cert"], "/c.pem");
        assert_eq!(v["listeners"][0]["tls"]["key"], REDACTED);
        assert!(text.contains("AQAB"), "public members stay: {text}");
    }
}
