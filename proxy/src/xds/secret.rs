//! SDS: `Secret` resources and the TLS transport sockets that name them.
//!
//! A secret becomes files in the bootstrap's `sds_dir` (`<name>.cert.pem` + `<name>.key.pem`
//! for a `tls_certificate`, `<name>.ca.pem` for a `validation_context`), written atomically
//! (temp file + rename). Listener and cluster `tls:` blocks point at those files, so the
//! existing certificate watch (`crate::tls::watch`) does the rotation: new handshakes use a
//! rotated secret within its 2 s poll, live connections keep theirs, a bad secret keeps the
//! old material. One path for file-based and SDS-delivered certificates, nothing duplicated.
//!
//! Transport sockets: `UpstreamTlsContext` (`sni`, `common_tls_context`) and
//! `DownstreamTlsContext` (`require_client_certificate`, `common_tls_context`).
//! `common_tls_context`: one `tls_certificate_sds_secret_configs` entry, the validation
//! context by SDS (`validation_context_sds_secret_config`, or `combined_validation_context`
//! with `match_subject_alt_names` / `match_typed_subject_alt_names` URI `exact` / `prefix`
//! SPIFFE matchers), `alpn_protocols`. Inline certificates are NACKed (use SDS).

// Deprecated fields are still what many control planes send; they are mapped, not refused.
#![allow(deprecated)]

use std::path::{Path, PathBuf};

use envoy_types::pb::envoy::config::core::v3::{
    data_source, transport_socket, DataSource, TransportSocket,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context, secret, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig, Secret,
    UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher, StringMatcher};
use prost::Message;
use serde_json::{json, Map, Value};

use super::check::{done, nack, Unsupported};

/// Where secrets live, and the trust domain of a validation context that names none.
#[derive(Debug, Clone, Copy)]
pub struct TlsUse<'a> {
    pub dir: &'a Path,
    pub trust_domain: &'a str,
}

/// A translated secret: the files to write.
#[derive(Debug, Clone, PartialEq)]
pub struct XSecret {
    pub name: String,
    pub files: Vec<(PathBuf, Vec<u8>)>,
}

/// A file-system-safe stem for a secret name (`kubernetes://x` → `kubernetes___x-<hash>`).
fn stem(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{safe}-{:08x}",
        crate::reload::fingerprint(name.as_bytes()) as u32
    )
}

impl TlsUse<'_> {
    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}.cert.pem", stem(name)))
    }
    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}.key.pem", stem(name)))
    }
    pub fn ca(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}.ca.pem", stem(name)))
    }

    /// A cluster's `transport_socket` → its `tls:` block and the secrets it needs.
    pub fn upstream(
        &self,
        who: &str,
        ts: TransportSocket,
    ) -> Result<(Value, Vec<String>), Unsupported> {
        let mut u: UpstreamTlsContext = typed(who, "transport_socket", ts)?;
        let mut block = Map::new();
        if !u.sni.is_empty() {
            block.insert("sni".into(), json!(std::mem::take(&mut u.sni)));
        }
        let common = u.common_tls_context.take().unwrap_or_default();
        let (names, ids) = self.common(
            who,
            "transport_socket.common_tls_context.",
            common,
            &mut block,
        )?;
        if !ids.is_empty() {
            block.insert("expected_identities".into(), Value::Array(ids));
        }
        done(who, "transport_socket.", &u)?;
        Ok((Value::Object(block), names))
    }

    /// A filter chain's `transport_socket` → the listener's `tls:` block and its secrets.
    pub fn downstream(
        &self,
        who: &str,
        at: &str,
        ts: TransportSocket,
    ) -> Result<(Value, Vec<String>), Unsupported> {
        let mut d: DownstreamTlsContext = typed(who, at, ts)?;
        let mut block = Map::new();
        block.insert("mode".into(), json!("STRICT"));
        if let Some(r) = d.require_client_certificate.take() {
            block.insert("require_client_certificate".into(), json!(r.value));
        }
        let common = d.common_tls_context.take().unwrap_or_default();
        let (names, ids) = self.common(
            who,
            &format!("{at}.common_tls_context."),
            common,
            &mut block,
        )?;
        if !ids.is_empty() {
            block.insert("allowed_identities".into(), Value::Array(ids));
        }
        done(who, &format!("{at}."), &d)?;
        if !block.contains_key("cert") {
            return Err(nack(
                who,
                format!("{at}.common_tls_context.tls_certificate_sds_secret_configs"),
                "a listener needs a certificate",
            ));
        }
        Ok((Value::Object(block), names))
    }

    /// Fills cert/key/trust_bundles/alpn; returns the secret names and identity matchers.
    fn common(
        &self,
        who: &str,
        at: &str,
        mut c: CommonTlsContext,
        block: &mut Map<String, Value>,
    ) -> Result<(Vec<String>, Vec<Value>), Unsupported> {
        let mut names = Vec::new();
        let mut ids = Vec::new();
        let mut certs = std::mem::take(&mut c.tls_certificate_sds_secret_configs);
        if certs.len() > 1 {
            return Err(nack(
                who,
                format!("{at}tls_certificate_sds_secret_configs"),
                "at most one certificate",
            ));
        }
        if let Some(s) = certs.pop() {
            let n = sds_name(
                who,
                &format!("{at}tls_certificate_sds_secret_configs[0]."),
                s,
            )?;
            block.insert("cert".into(), json!(self.cert(&n)));
            block.insert("key".into(), json!(self.key(&n)));
            names.push(n);
        }
        let (ca, sans) = match c.validation_context_type.take() {
            None => (None, Vec::new()),
            Some(common_tls_context::ValidationContextType::ValidationContextSdsSecretConfig(
                s,
            )) => (
                Some(sds_name(
                    who,
                    &format!("{at}validation_context_sds_secret_config."),
                    s,
                )?),
                Vec::new(),
            ),
            Some(common_tls_context::ValidationContextType::CombinedValidationContext(mut cv)) => {
                let at = format!("{at}combined_validation_context.");
                let s = cv
                    .validation_context_sds_secret_config
                    .take()
                    .ok_or_else(|| {
                        nack(
                            who,
                            format!("{at}validation_context_sds_secret_config"),
                            "required",
                        )
                    })?;
                let n = sds_name(
                    who,
                    &format!("{at}validation_context_sds_secret_config."),
                    s,
                )?;
                let mut sans = Vec::new();
                if let Some(mut v) = cv.default_validation_context.take() {
                    sans.extend(std::mem::take(&mut v.match_subject_alt_names));
                    for (i, mut t) in std::mem::take(&mut v.match_typed_subject_alt_names)
                        .into_iter()
                        .enumerate()
                    {
                        let f = format!(
                            "{at}default_validation_context.match_typed_subject_alt_names[{i}]"
                        );
                        if t.san_type != 3 {
                            return Err(nack(
                                who,
                                format!("{f}.san_type"),
                                "only URI (SPIFFE) names are matched",
                            ));
                        }
                        sans.extend(t.matcher.take());
                        t.san_type = 0;
                        done(who, &format!("{f}."), &t)?;
                    }
                    done(who, &format!("{at}default_validation_context."), &v)?;
                }
                done(who, &at, &cv)?;
                (Some(n), sans)
            }
            Some(_) => {
                return Err(nack(who, format!("{at}validation_context_type"), "only an SDS validation context (inline ones and certificate providers are not supported)"));
            }
        };
        let mut domain = None;
        for (i, m) in sans.into_iter().enumerate() {
            let (v, s) = san(who, &format!("{at}…subject_alt_names[{i}]"), m)?;
            domain.get_or_insert_with(|| trust_domain(&s));
            ids.push(v);
        }
        if let Some(n) = ca {
            let td = domain
                .flatten()
                .unwrap_or_else(|| self.trust_domain.to_string());
            block.insert("trust_bundles".into(), json!({ td: self.ca(&n) }));
            names.push(n);
        }
        if !c.alpn_protocols.is_empty() {
            block.insert("alpn".into(), json!(std::mem::take(&mut c.alpn_protocols)));
        }
        // TLS parameters: only the minimum version maps (1.2 / 1.3).
        if let Some(mut p) = c.tls_params.take() {
            match std::mem::take(&mut p.tls_minimum_protocol_version) {
                0 | 4 => {}
                3 => {
                    block.insert("min_version".into(), json!("1.2"));
                }
                o => {
                    return Err(nack(
                        who,
                        format!("{at}tls_params.tls_minimum_protocol_version"),
                        format!("{o}: TLS 1.2 or 1.3 only"),
                    ))
                }
            }
            p.tls_maximum_protocol_version = 0;
            done(who, &format!("{at}tls_params."), &p)?;
        }
        done(who, at, &c)?;
        Ok((names, ids))
    }
}

fn typed<M: Message + Default>(
    who: &str,
    at: &str,
    mut ts: TransportSocket,
) -> Result<M, Unsupported> {
    let Some(transport_socket::ConfigType::TypedConfig(any)) = ts.config_type.take() else {
        return Err(nack(who, format!("{at}.typed_config"), "required"));
    };
    M::decode(any.value.as_slice()).map_err(|e| {
        nack(
            who,
            format!("{at}.typed_config"),
            format!("{}: {e}", any.type_url),
        )
    })
}

fn sds_name(who: &str, at: &str, mut s: SdsSecretConfig) -> Result<String, Unsupported> {
    // Secrets always come over the ADS stream; whatever source is named, that is where.
    s.sds_config = None;
    let n = std::mem::take(&mut s.name);
    done(who, at, &s)?;
    Ok(n)
}

fn san(who: &str, at: &str, mut m: StringMatcher) -> Result<(Value, String), Unsupported> {
    if m.ignore_case {
        return Err(nack(
            who,
            format!("{at}.ignore_case"),
            "SPIFFE IDs match case-sensitively",
        ));
    }
    match m.match_pattern.take() {
        Some(string_matcher::MatchPattern::Exact(s)) => Ok((json!({"exact": s}), s)),
        Some(string_matcher::MatchPattern::Prefix(s)) => Ok((json!({"prefix": s}), s)),
        _ => Err(nack(
            who,
            format!("{at}.match_pattern"),
            "only exact and prefix",
        )),
    }
}

/// `spiffe://td/…` → `td`.
fn trust_domain(id: &str) -> Option<String> {
    let rest = id.strip_prefix("spiffe://")?;
    Some(rest.split('/').next().unwrap_or(rest).to_string()).filter(|s| !s.is_empty())
}

fn bytes(who: &str, at: &str, d: Option<DataSource>) -> Result<Vec<u8>, Unsupported> {
    match d.and_then(|d| d.specifier) {
        Some(data_source::Specifier::InlineBytes(b)) => Ok(b),
        Some(data_source::Specifier::InlineString(s)) => Ok(s.into_bytes()),
        Some(data_source::Specifier::Filename(f)) => {
            std::fs::read(&f).map_err(|e| nack(who, format!("{at}.filename"), format!("{f}: {e}")))
        }
        _ => Err(nack(
            who,
            at,
            "inline_bytes, inline_string or filename required",
        )),
    }
}

pub fn translate(mut s: Secret, tls: &TlsUse<'_>) -> Result<XSecret, Unsupported> {
    let name = std::mem::take(&mut s.name);
    let who = format!("Secret {name:?}");
    let files = match s.r#type.take() {
        Some(secret::Type::TlsCertificate(mut c)) => {
            let chain = bytes(
                &who,
                "tls_certificate.certificate_chain",
                c.certificate_chain.take(),
            )?;
            let key = bytes(&who, "tls_certificate.private_key", c.private_key.take())?;
            done(&who, "tls_certificate.", &c)?;
            vec![(tls.key(&name), key), (tls.cert(&name), chain)]
        }
        Some(secret::Type::ValidationContext(mut v)) => {
            let ca = bytes(&who, "validation_context.trusted_ca", v.trusted_ca.take())?;
            done(&who, "validation_context.", &v)?;
            vec![(tls.ca(&name), ca)]
        }
        _ => {
            return Err(nack(
                &who,
                "type",
                "only tls_certificate and validation_context",
            ))
        }
    };
    done(&who, "", &s)?;
    Ok(XSecret { name, files })
}

/// Writes a secret's files (temp + rename each, so a watcher never reads half a file).
pub fn write(dir: &Path, s: &XSecret) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (path, data) in &s.files {
        if std::fs::read(path).is_ok_and(|old| old == *data) {
            continue;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, data)?;
        std::fs::rename(&tmp, path)?;
    }
    Ok(())
}
