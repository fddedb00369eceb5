//! The `tls:` blocks of listeners and clusters: raw YAML shapes (`deny_unknown_fields`), their
//! typed forms ([`ListenerTls`], [`ClusterTls`]), and how each turns loaded [`Material`] into
//! a rustls config. Errors name the field path under the block.
//!
//! ```yaml
//! listeners:
//!   - name: inbound
//!     tls:
//!       mode: STRICT                  # or PERMISSIVE: plaintext too, told apart by sniffing
//!       cert: certs/web.pem
//!       key: certs/web-key.pem
//!       trust_bundles: { example.org: certs/ca.pem }
//!       require_client_certificate: true
//!       allowed_identities: [ { prefix: "spiffe://example.org/ns/default/" } ]
//!       alpn: [h2, http/1.1]          # default
//!       min_version: "1.3"            # default; "1.2" switches TLS 1.2 on
//!       session_tickets: true         # default
//!       sni: [ { server_names: [api.example.com, "*.example.com"], cert: a.pem, key: a-key.pem } ]
//!       handshake_timeout: 10s        # default: the whole handshake must finish within this
//!   - name: via-spire                 # or: SVID + bundles from the SPIFFE Workload API
//!     tls:                            #   (instead of cert, key, trust_bundles, sni)
//!       workload_api: /run/spire/sockets/agent.sock
//!       require_client_certificate: true
//! clusters:
//!   - name: b
//!     tls:
//!       sni: b.example.org            # default: none (SPIFFE checks the URI SAN, not a name)
//!       cert: certs/client.pem        # client certificate (mTLS)
//!       key: certs/client-key.pem
//!       trust_bundles: { example.org: certs/ca.pem }
//!       expected_identities: [ { exact: "spiffe://example.org/ns/default/sa/b" } ]
//!       alpn: []                      # default
//!       session_resumption: true      # default
//! ```
//! Paths are used as written (relative ones from the working directory).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::client::ClientSettings;
use super::live::Live;
use super::server::{ClientAuth, ServerSettings};
use super::source::{BundleFile, CertSource, IdentityFiles, Material};
use super::spiffe_id::{SpiffeId, TrustDomain};
use super::verify::{IdentityMatch, IdentityMatcher};
use super::watch::{ReloadError, ReloadStats, Reloader};
use super::workload::WorkloadWatch;
use super::MinVersion;

/// A problem in a `tls:` block: the field path under it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TlsConfigError {
    pub field: String,
    pub message: String,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> TlsConfigError {
    TlsConfigError {
        field: field.into(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListenerTls {
    pub mode: Option<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// The SPIFFE Workload API's unix socket: SVID and bundles from there, not from files.
    pub workload_api: Option<PathBuf>,
    #[serde(default)]
    pub trust_bundles: BTreeMap<String, PathBuf>,
    #[serde(default)]
    pub require_client_certificate: bool,
    #[serde(default)]
    pub allowed_identities: Vec<RawIdentityMatch>,
    pub alpn: Option<Vec<String>>,
    pub min_version: Option<RawVersion>,
    pub session_tickets: Option<bool>,
    #[serde(default)]
    pub sni: Vec<RawSniCert>,
    pub handshake_timeout: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSniCert {
    pub server_names: Vec<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClusterTls {
    pub sni: Option<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// The SPIFFE Workload API's unix socket: client SVID and bundles from there.
    pub workload_api: Option<PathBuf>,
    #[serde(default)]
    pub trust_bundles: BTreeMap<String, PathBuf>,
    #[serde(default)]
    pub expected_identities: Vec<RawIdentityMatch>,
    #[serde(default)]
    pub alpn: Vec<String>,
    pub min_version: Option<RawVersion>,
    pub session_resumption: Option<bool>,
}

/// `{exact: ...}`, `{prefix: ...}` or `{trust_domain: ...}`: exactly one key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentityMatch {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub trust_domain: Option<String>,
}

/// `"1.3"`, `1.3`, `TLSv1.3`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawVersion {
    Num(f64),
    Str(String),
}

/// Istio PeerAuthentication modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS only.
    Strict,
    /// TLS and plaintext on the same port, told apart by `sniff::looks_like_tls`.
    Permissive,
}

/// A listener's TLS, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerTls {
    pub mode: TlsMode,
    /// identities[0] is the default certificate, then one per `sni` entry.
    pub source: CertSource,
    pub sni_names: Vec<Vec<String>>,
    pub require_client_certificate: bool,
    pub allowed: IdentityMatcher,
    pub alpn: Vec<Vec<u8>>,
    pub min_version: MinVersion,
    pub session_tickets: bool,
    /// A client must finish the handshake within this (default 10 s), else it is closed.
    pub handshake_timeout: Duration,
    /// SVID and bundles from the SPIFFE Workload API on this socket (`source` is then empty).
    pub workload_api: Option<PathBuf>,
}

/// Default [`ListenerTls::handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A cluster's TLS, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterTls {
    pub sni: Option<String>,
    /// identities: the client certificate, if any.
    pub source: CertSource,
    pub expected: IdentityMatcher,
    pub alpn: Vec<Vec<u8>>,
    pub min_version: MinVersion,
    pub resumption: bool,
    /// Client SVID and bundles from the SPIFFE Workload API on this socket.
    pub workload_api: Option<PathBuf>,
}

fn version(v: &Option<RawVersion>) -> Result<MinVersion, TlsConfigError> {
    let s = match v {
        None => return Ok(MinVersion::Tls13),
        Some(RawVersion::Num(n)) => format!("{n}"),
        Some(RawVersion::Str(s)) => s.clone(),
    };
    match s.trim_start_matches("TLSv") {
        "1.2" => Ok(MinVersion::Tls12),
        "1.3" => Ok(MinVersion::Tls13),
        _ => Err(bad(
            "min_version",
            format!("{s:?}: expected \"1.2\" or \"1.3\""),
        )),
    }
}

fn bundles(raw: &BTreeMap<String, PathBuf>) -> Result<Vec<BundleFile>, TlsConfigError> {
    raw.iter()
        .map(|(td, path)| {
            let trust_domain = TrustDomain::new(td)
                .map_err(|e| bad(format!("trust_bundles.{td}"), e.to_string()))?;
            Ok(BundleFile {
                trust_domain,
                path: path.clone(),
            })
        })
        .collect()
}

fn matcher(raw: &[RawIdentityMatch], field: &str) -> Result<IdentityMatcher, TlsConfigError> {
    let mut v = Vec::new();
    for (i, m) in raw.iter().enumerate() {
        let f = |e: String| bad(format!("{field}[{i}]"), e);
        v.push(match (&m.exact, &m.prefix, &m.trust_domain) {
            (Some(s), None, None) => {
                IdentityMatch::Exact(SpiffeId::parse(s).map_err(|e| f(format!("{s:?}: {e}")))?)
            }
            (None, Some(s), None) if s.starts_with("spiffe://") => IdentityMatch::Prefix(s.clone()),
            (None, Some(s), None) => return Err(f(format!("{s:?}: must start with spiffe://"))),
            (None, None, Some(s)) => IdentityMatch::TrustDomain(
                TrustDomain::new(s).map_err(|e| f(format!("{s:?}: {e}")))?,
            ),
            _ => return Err(f("needs exactly one of exact, prefix, trust_domain".into())),
        });
    }
    Ok(IdentityMatcher(v))
}

fn alpn(raw: &[String]) -> Vec<Vec<u8>> {
    raw.iter().map(|a| a.as_bytes().to_vec()).collect()
}

impl TryFrom<&RawListenerTls> for ListenerTls {
    type Error = TlsConfigError;
    fn try_from(r: &RawListenerTls) -> Result<ListenerTls, TlsConfigError> {
        let mode = match r.mode.as_deref() {
            None | Some("STRICT") => TlsMode::Strict,
            Some("PERMISSIVE") => TlsMode::Permissive,
            Some(m) => return Err(bad("mode", format!("{m:?}: expected STRICT or PERMISSIVE"))),
        };
        let bundles = bundles(&r.trust_bundles)?;
        let api = r.workload_api.is_some();
        if api && (r.cert.is_some() || r.key.is_some() || !bundles.is_empty() || !r.sni.is_empty())
        {
            return Err(bad(
                "workload_api",
                "takes the SVID and bundles from the Workload API: no cert, key, trust_bundles or sni",
            ));
        }
        if r.require_client_certificate && bundles.is_empty() && !api {
            return Err(bad(
                "trust_bundles",
                "require_client_certificate needs at least one trust bundle",
            ));
        }
        if !r.allowed_identities.is_empty() && bundles.is_empty() && !api {
            return Err(bad(
                "trust_bundles",
                "allowed_identities needs a trust bundle",
            ));
        }
        let mut identities = match (&r.cert, &r.key, api) {
            (Some(cert), Some(key), _) => vec![IdentityFiles {
                cert: cert.clone(),
                key: key.clone(),
                svid: false,
            }],
            (None, None, true) => Vec::new(),
            (_, None, _) => return Err(bad("key", "needs cert and key (or workload_api)")),
            (None, _, _) => return Err(bad("cert", "needs cert and key (or workload_api)")),
        };
        let mut sni_names = Vec::new();
        for (i, s) in r.sni.iter().enumerate() {
            if s.server_names.is_empty() {
                return Err(bad(format!("sni[{i}].server_names"), "is empty"));
            }
            identities.push(IdentityFiles {
                cert: s.cert.clone(),
                key: s.key.clone(),
                svid: false,
            });
            sni_names.push(s.server_names.clone());
        }
        Ok(ListenerTls {
            mode,
            source: CertSource {
                identities,
                bundles,
            },
            sni_names,
            require_client_certificate: r.require_client_certificate,
            allowed: matcher(&r.allowed_identities, "allowed_identities")?,
            alpn: alpn(
                r.alpn
                    .as_deref()
                    .unwrap_or(&["h2".into(), "http/1.1".into()]),
            ),
            min_version: version(&r.min_version)?,
            session_tickets: r.session_tickets.unwrap_or(true),
            handshake_timeout: match &r.handshake_timeout {
                None => DEFAULT_HANDSHAKE_TIMEOUT,
                Some(t) => match crate::config::parse_duration(t) {
                    Ok(d) if !d.is_zero() => d,
                    Ok(_) => return Err(bad("handshake_timeout", "must be above 0")),
                    Err(e) => return Err(bad("handshake_timeout", e)),
                },
            },
            workload_api: r.workload_api.clone(),
        })
    }
}

impl TryFrom<&RawClusterTls> for ClusterTls {
    type Error = TlsConfigError;
    fn try_from(r: &RawClusterTls) -> Result<ClusterTls, TlsConfigError> {
        let bundles = bundles(&r.trust_bundles)?;
        if r.workload_api.is_some() && (r.cert.is_some() || r.key.is_some() || !bundles.is_empty())
        {
            return Err(bad(
                "workload_api",
                "takes the SVID and bundles from the Workload API: no cert, key or trust_bundles",
            ));
        }
        if bundles.is_empty() && r.workload_api.is_none() {
            return Err(bad(
                "trust_bundles",
                "a cluster's TLS needs at least one trust bundle",
            ));
        }
        let identities = match (&r.cert, &r.key) {
            (Some(cert), Some(key)) => vec![IdentityFiles {
                cert: cert.clone(),
                key: key.clone(),
                svid: true,
            }],
            (None, None) => Vec::new(),
            (Some(_), None) => return Err(bad("key", "cert needs a key")),
            (None, Some(_)) => return Err(bad("cert", "key needs a cert")),
        };
        if let Some(sni) = &r.sni {
            rustls::pki_types::ServerName::try_from(sni.as_str())
                .map_err(|e| bad("sni", format!("{sni:?}: {e}")))?;
        }
        Ok(ClusterTls {
            sni: r.sni.clone(),
            source: CertSource {
                identities,
                bundles,
            },
            expected: matcher(&r.expected_identities, "expected_identities")?,
            alpn: alpn(&r.alpn),
            min_version: version(&r.min_version)?,
            resumption: r.session_resumption.unwrap_or(true),
            workload_api: r.workload_api.clone(),
        })
    }
}

/// What keeps a block's material current: its file watcher, or its Workload API stream.
#[derive(Debug)]
pub enum Watcher {
    Files(Reloader),
    Workload(WorkloadWatch),
}

impl Watcher {
    /// The Workload API stream when `workload_api` is set, else the file watcher.
    fn start<T, B, A>(
        name: &str,
        workload_api: Option<&PathBuf>,
        source: &CertSource,
        build: B,
        apply: A,
    ) -> Result<(Watcher, Arc<T>), ReloadError>
    where
        T: Send + Sync + 'static,
        B: Fn(&Material) -> Result<Arc<T>, String> + Send + 'static,
        A: Fn(Arc<T>) + Send + 'static,
    {
        match workload_api {
            Some(socket) => WorkloadWatch::start(name, socket.clone(), build, apply)
                .map(|(w, c)| (Watcher::Workload(w), c))
                .map_err(ReloadError::Build),
            None => Reloader::start(name, source.clone(), build, apply)
                .map(|(r, c)| (Watcher::Files(r), c)),
        }
    }

    pub fn stats(&self) -> &Arc<ReloadStats> {
        match self {
            Watcher::Files(r) => r.stats(),
            Watcher::Workload(w) => w.stats(),
        }
    }
}

/// A listener's `tls:` block in a loaded config: the settings, and the server config in force
/// (filled by [`super::runtime::activate`], swapped on rotation).
#[derive(Debug, Clone)]
pub struct ListenerTlsConf {
    pub settings: ListenerTls,
    pub live: Arc<Live<rustls::ServerConfig>>,
    /// Its watcher's reload counters (set by [`super::runtime::activate`]), for the admin.
    pub reloads: Option<Arc<ReloadStats>>,
}

/// A cluster's `tls:` block in a loaded config; see [`ListenerTlsConf`].
#[derive(Debug, Clone)]
pub struct ClusterTlsConf {
    pub settings: ClusterTls,
    pub live: Arc<Live<rustls::ClientConfig>>,
    /// See [`ListenerTlsConf::reloads`].
    pub reloads: Option<Arc<ReloadStats>>,
}

/// The same block *and* the same live config: a reload builds a new live config, so a cluster
/// with TLS never keeps its old balancer (whose connections use the old material's watcher).
impl PartialEq for ClusterTlsConf {
    fn eq(&self, o: &ClusterTlsConf) -> bool {
        self.settings == o.settings && Arc::ptr_eq(&self.live, &o.live)
    }
}

impl ListenerTlsConf {
    pub fn new(settings: ListenerTls) -> ListenerTlsConf {
        ListenerTlsConf {
            settings,
            live: Arc::default(),
            reloads: None,
        }
    }
}

impl ClusterTlsConf {
    pub fn new(settings: ClusterTls) -> ClusterTlsConf {
        ClusterTlsConf {
            settings,
            live: Arc::default(),
            reloads: None,
        }
    }
}

impl ListenerTls {
    /// The server config for this listener from loaded material.
    pub fn build(&self, m: &Material) -> Result<Arc<rustls::ServerConfig>, String> {
        let mut s = ServerSettings::new(m.identities[0].certified.clone());
        s.sni_certs = self
            .sni_names
            .iter()
            .zip(&m.identities[1..])
            .flat_map(|(names, id)| names.iter().map(|n| (n.clone(), id.certified.clone())))
            .collect();
        s.alpn = self.alpn.clone();
        s.min_version = self.min_version;
        s.session_tickets = self.session_tickets;
        if !m.bundles.is_empty() {
            s.client_auth = ClientAuth::Svid {
                bundles: m.bundles.clone(),
                matcher: self.allowed.clone(),
                required: self.require_client_certificate,
            };
        }
        s.build().map_err(|e| e.to_string())
    }

    /// Loads, builds and watches; new configs go to `apply`.
    pub fn watch(
        &self,
        name: &str,
        apply: impl Fn(Arc<rustls::ServerConfig>) + Send + 'static,
    ) -> Result<(Watcher, Arc<rustls::ServerConfig>), ReloadError> {
        let me = self.clone();
        Watcher::start(
            name,
            self.workload_api.as_ref(),
            &self.source,
            move |m| me.build(m),
            apply,
        )
    }
}

impl ClusterTls {
    /// The client config for this cluster from loaded material.
    pub fn build(&self, m: &Material) -> Result<Arc<rustls::ClientConfig>, String> {
        let mut c = ClientSettings::new(m.bundles.clone());
        c.client_cert = m.identities.first().map(|i| i.certified.clone());
        c.expected = self.expected.clone();
        c.alpn = self.alpn.clone();
        c.min_version = self.min_version;
        c.resumption = self.resumption;
        c.build().map_err(|e| e.to_string())
    }

    /// Loads, builds and watches; new configs go to `apply`.
    pub fn watch(
        &self,
        name: &str,
        apply: impl Fn(Arc<rustls::ClientConfig>) + Send + 'static,
    ) -> Result<(Watcher, Arc<rustls::ClientConfig>), ReloadError> {
        let me = self.clone();
        Watcher::start(
            name,
            self.workload_api.as_ref(),
            &self.source,
            move |m| me.build(m),
            apply,
        )
    }

    /// The name to send: the configured SNI, else the endpoint's IP (which sends no SNI).
    pub fn server_name(
        &self,
        endpoint: std::net::IpAddr,
    ) -> rustls::pki_types::ServerName<'static> {
        match &self.sni {
            Some(s) => rustls::pki_types::ServerName::try_from(s.clone())
                .expect("checked when the config was loaded"),
            None => rustls::pki_types::ServerName::IpAddress(endpoint.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(yaml: &str) -> Result<ListenerTls, String> {
        let raw: RawListenerTls = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        ListenerTls::try_from(&raw).map_err(|e| e.to_string())
    }

    fn cluster(yaml: &str) -> Result<ClusterTls, String> {
        let raw: RawClusterTls = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        ClusterTls::try_from(&raw).map_err(|e| e.to_string())
    }

    #[test]
    fn listener_defaults_and_full_form() {
        let l = listener("cert: a.pem\nkey: a-key.pem\n").unwrap();
        assert_eq!(l.mode, TlsMode::Strict);
        assert_eq!(l.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert_eq!(l.min_version, MinVersion::Tls13);
        assert!(l.session_tickets && !l.require_client_certificate);
        let l = listener(
            "mode: PERMISSIVE\ncert: a.pem\nkey: k.pem\ntrust_bundles: {example.org: ca.pem}\n\
             require_client_certificate: true\nallowed_identities: [{prefix: \"spiffe://example.org/ns/\"}, {trust_domain: other.org}]\n\
             alpn: [http/1.1]\nmin_version: 1.2\nsession_tickets: false\n\
             sni: [{server_names: [\"*.example.com\"], cert: w.pem, key: w-key.pem}]\n",
        )
        .unwrap();
        assert_eq!(l.mode, TlsMode::Permissive);
        assert_eq!(l.min_version, MinVersion::Tls12);
        assert_eq!(l.source.identities.len(), 2);
        assert_eq!(l.sni_names, vec![vec!["*.example.com".to_string()]]);
        assert_eq!(l.allowed.0.len(), 2);
    }

    #[test]
    fn errors_name_the_field() {
        let e = |y: &str| listener(y).unwrap_err();
        assert!(e("cert: a\nkey: b\nmode: strict\n").starts_with("mode: \"strict\""));
        assert!(e("cert: a\nkey: b\nmin_version: 1.1\n").starts_with("min_version:"));
        assert!(
            e("cert: a\nkey: b\nrequire_client_certificate: true\n").starts_with("trust_bundles:")
        );
        assert!(e("cert: a\nkey: b\ntrust_bundles: {Bad.Org: ca.pem}\n")
            .starts_with("trust_bundles.Bad.Org:"));
        assert!(e("cert: a\nkey: b\ntrust_bundles: {a.org: ca.pem}\nallowed_identities: [{exact: \"spiffe://a.org/x/\"}]\n")
            .starts_with("allowed_identities[0]:"));
        assert!(e("cert: a\nkey: b\nciphers: [x]\n").contains("unknown field `ciphers`"));
        let c = |y: &str| cluster(y).unwrap_err();
        assert!(c("sni: x\n").starts_with("trust_bundles:"));
        assert!(c("trust_bundles: {a.org: ca.pem}\ncert: c.pem\n").starts_with("key:"));
        assert!(c(
            "trust_bundles: {a.org: ca.pem}\nexpected_identities: [{prefix: \"http://a\"}]\n"
        )
        .starts_with("expected_identities[0]:"));
        assert!(c("trust_bundles: {a.org: ca.pem}\nexpected_identities: [{exact: \"spiffe://a.org/b\", prefix: \"spiffe://a\"}]\n")
            .contains("exactly one"));
        let ok = cluster("trust_bundles: {a.org: ca.pem}\nexpected_identities: [{exact: \"spiffe://a.org/b\"}]\n").unwrap();
        assert!(ok.source.identities.is_empty() && ok.resumption && ok.alpn.is_empty());
    }
}
