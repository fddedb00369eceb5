//! The bootstrap file (`shardcar --bootstrap FILE`): who this node is, which static cluster
//! the control plane is, how to talk to it, and optional static resources in the ordinary
//! config shape (they stay in force beside whatever xDS delivers).
//!
//! ```yaml
//! node: {id: sidecar~10.0.0.1~web-1.default~default.svc.cluster.local, cluster: web,
//!        metadata: {NAMESPACE: default}}
//! xds:
//!   cluster: xds                 # a static cluster below; its tls: block is used (mTLS)
//!   api: sotw                    # or delta
//!   initial_fetch_timeout: 15s   # EDS clusters / RDS listeners warm at most this long
//!   reconnect_base: 250ms        # backoff after a lost stream: base × 2^n, jittered,
//!   reconnect_max: 10s           #   capped here
//!   sds_dir: /run/shardcar/sds   # where SDS secrets are written (default: a temp dir)
//!   trust_domain: cluster.local  # of SDS validation contexts that name no spiffe:// SAN
//! static_resources:              # the ordinary config: listeners, clusters, admin, metrics …
//!   admin: {address: 127.0.0.1:15000}
//!   clusters:
//!     - {name: xds, endpoints: ["127.0.0.1:18000"], protocol: http2}
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{parse_duration, Cluster, ClusterKind, Config, ConfigError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBootstrap {
    node: RawNode,
    xds: RawXds,
    #[serde(default)]
    static_resources: Option<serde_yaml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: String,
    #[serde(default)]
    cluster: String,
    #[serde(default)]
    metadata: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawXds {
    cluster: String,
    api: Option<String>,
    initial_fetch_timeout: Option<String>,
    reconnect_base: Option<String>,
    reconnect_max: Option<String>,
    sds_dir: Option<PathBuf>,
    trust_domain: Option<String>,
}

/// State of the World (one full set per type per response) or incremental (Delta) xDS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Sotw,
    Delta,
}

/// The node as the control plane sees it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub id: String,
    pub cluster: String,
    pub metadata: BTreeMap<String, serde_json::Value>,
}

/// A checked bootstrap.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub node: NodeInfo,
    pub api: Api,
    /// The control plane: a static cluster of `static_resources` (its endpoints, its TLS).
    pub server: std::sync::Arc<Cluster>,
    pub initial_fetch_timeout: Duration,
    pub reconnect_base: Duration,
    pub reconnect_max: Duration,
    pub sds_dir: PathBuf,
    pub trust_domain: String,
    /// `static_resources` in the config's JSON shape (the xDS client adds to its lists).
    pub statics: serde_json::Value,
    /// The static resources alone, checked: what the proxy starts with.
    pub initial: Config,
}

fn duration(field: &str, v: &Option<String>, default: Duration) -> Result<Duration, ConfigError> {
    v.as_deref().map_or(Ok(default), |s| {
        parse_duration(s).map_err(|e| ConfigError::new(format!("xds.{field}"), e))
    })
}

impl Bootstrap {
    pub fn from_yaml(src: &str) -> Result<Bootstrap, ConfigError> {
        let de = serde_yaml::Deserializer::from_str(src);
        let raw: RawBootstrap = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            ConfigError {
                line: inner.location().map(|l| l.line()),
                path: if path == "." { String::new() } else { path },
                message: inner.to_string(),
            }
        })?;
        if raw.node.id.is_empty() {
            return Err(ConfigError::new("node.id", "must not be empty"));
        }
        let statics = match raw.static_resources {
            None => serde_json::json!({}),
            Some(v) => serde_json::to_value(v)
                .map_err(|e| ConfigError::new("static_resources", e.to_string()))?,
        };
        let initial = Config::from_xds_value(statics.clone()).map_err(|mut e| {
            e.path = format!("static_resources.{}", e.path);
            e
        })?;
        let server = initial
            .clusters
            .iter()
            .find(|c| c.name == raw.xds.cluster)
            .cloned()
            .ok_or_else(|| {
                ConfigError::new(
                    "xds.cluster",
                    format!("no static cluster {:?}", raw.xds.cluster),
                )
            })?;
        if !matches!(&server.kind, ClusterKind::Static(e) if !e.is_empty()) {
            return Err(ConfigError::new(
                "xds.cluster",
                "the control plane must be a static cluster with endpoints",
            ));
        }
        let api = match raw.xds.api.as_deref() {
            None | Some("sotw") => Api::Sotw,
            Some("delta") => Api::Delta,
            Some(o) => {
                return Err(ConfigError::new(
                    "xds.api",
                    format!("unknown api {o:?} (expected sotw or delta)"),
                ))
            }
        };
        let sds_dir = raw.xds.sds_dir.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("shardcar-sds-{}", std::process::id()))
        });
        Ok(Bootstrap {
            node: NodeInfo {
                id: raw.node.id,
                cluster: raw.node.cluster,
                metadata: raw.node.metadata,
            },
            api,
            server,
            initial_fetch_timeout: duration(
                "initial_fetch_timeout",
                &raw.xds.initial_fetch_timeout,
                Duration::from_secs(15),
            )?,
            reconnect_base: duration(
                "reconnect_base",
                &raw.xds.reconnect_base,
                Duration::from_millis(250),
            )?,
            reconnect_max: duration(
                "reconnect_max",
                &raw.xds.reconnect_max,
                Duration::from_secs(10),
            )?,
            sds_dir,
            trust_domain: raw
                .xds
                .trust_domain
                .unwrap_or_else(|| "cluster.local".into()),
            statics,
            initial,
        })
    }

    pub fn from_file(path: &std::path::Path) -> Result<Bootstrap, ConfigError> {
        let src = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("", format!("cannot read {}: {e}", path.display())))?;
        Bootstrap::from_yaml(&src)
    }
}
