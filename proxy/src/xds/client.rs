//! The protocol-independent half of the client: decode and translate resources, keep the
//! last accepted set per type, compose, validate and hand the config to the control thread
//! (the same `Server::swap` path hot reload uses), and report state for `/config_dump`.
//! [`super::sotw`] and [`super::delta`] speak the two wire variants on top of it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use serde_json::{json, Value};

use super::bootstrap::{Api, Bootstrap};
use super::secret::TlsUse;
use super::state::{blame, compose, Applied, Item, Kind, Resources};
use crate::config::Config;
use crate::reload::ControlHandle;

/// Per type: what was accepted last, the last nonce seen, the last rejection.
#[derive(Debug, Clone, Default)]
pub struct TypeState {
    pub version: String,
    pub nonce: String,
    pub error: Option<String>,
    /// Names subscribed on the current stream (non-wildcard types).
    pub subscribed: BTreeSet<String>,
    pub acks: u64,
    pub nacks: u64,
}

/// Samples kept for the propagation percentiles in `/config_dump`.
const SAMPLES: usize = 4096;

#[derive(Debug)]
pub struct Client {
    pub boot: Bootstrap,
    control: ControlHandle,
    pub res: Resources,
    applied: Applied,
    /// Fingerprint of the config text in force (a composition equal to it is not applied
    /// again); the text itself lives on the control thread, for `/config_dump`.
    last_doc: Option<u64>,
    pub types: BTreeMap<Kind, TypeState>,
    pub deadline: Option<Instant>,
    pub warming: Vec<String>,
    /// Response received → every shard swapped, in milliseconds.
    propagation: Vec<f64>,
    pub connected: Option<String>,
    pub connects: u64,
    applies: u64,
}

impl Client {
    pub fn new(boot: Bootstrap, control: ControlHandle) -> Client {
        Client {
            boot,
            control,
            res: Resources::default(),
            applied: Applied::default(),
            last_doc: None,
            types: Kind::ALL
                .into_iter()
                .map(|k| (k, TypeState::default()))
                .collect(),
            deadline: None,
            warming: Vec::new(),
            propagation: Vec::new(),
            connected: None,
            connects: 0,
            applies: 0,
        }
    }

    pub fn tls(&self) -> TlsUse<'_> {
        TlsUse {
            dir: &self.boot.sds_dir,
            trust_domain: &self.boot.trust_domain,
        }
    }

    pub fn state(&mut self, k: Kind) -> &mut TypeState {
        self.types.entry(k).or_default()
    }

    /// Decodes and translates one resource of type `kind`: its name and translation, or the
    /// NACK text (naming the resource and the field).
    pub fn decode(&self, kind: Kind, any: &Any) -> Result<(String, Item), String> {
        if any.type_url != kind.url() {
            return Err(format!(
                "{} response carries a {}",
                kind.short(),
                any.type_url
            ));
        }
        let bad = |e: prost::DecodeError| format!("{}: cannot decode: {e}", kind.short());
        let v = any.value.as_slice();
        let tls = self.tls();
        use envoy_types::pb::envoy::config as c;
        let item = match kind {
            Kind::Cluster => {
                super::cluster::translate(c::cluster::v3::Cluster::decode(v).map_err(bad)?, &tls)
                    .map(Item::Cluster)
            }
            Kind::Listener => {
                super::listener::translate(c::listener::v3::Listener::decode(v).map_err(bad)?, &tls)
                    .map(Item::Listener)
            }
            Kind::Route => {
                super::route::translate(c::route::v3::RouteConfiguration::decode(v).map_err(bad)?)
                    .map(Item::Route)
            }
            Kind::Endpoint => {
                let cla = c::endpoint::v3::ClusterLoadAssignment::decode(v).map_err(bad)?;
                let name = cla.cluster_name.clone();
                let who = format!("ClusterLoadAssignment {name:?}");
                return super::cluster::endpoints(&who, "", cla)
                    .map(|e| (name, Item::Endpoint(json!(e).to_string().into_boxed_str())))
                    .map_err(|e| e.to_string());
            }
            Kind::Secret => {
                use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
                super::secret::translate(Secret::decode(v).map_err(bad)?, &tls).map(Item::Secret)
            }
        }
        .map_err(|e| e.to_string())?;
        let name = match &item {
            Item::Cluster(x) => x.name.clone(),
            Item::Listener(x) => x.name.clone(),
            Item::Route(x) => x.name.clone(),
            Item::Secret(x) => x.name.clone(),
            Item::Endpoint(_) => unreachable!("returned above"),
        };
        Ok((name, item))
    }

    /// Applies one response's worth of changes: `upserts` (name, version, item), `removed`
    /// names, and with `replace` every other resource of the type dropped (SotW LDS/CDS).
    /// On error nothing changes and the error is the NACK text.
    pub fn update(
        &mut self,
        kind: Kind,
        upserts: Vec<(String, String, Item)>,
        removed: &[String],
        replace: bool,
        received: Instant,
    ) -> Result<(), String> {
        let mut res = self.res.clone();
        let map = std::sync::Arc::make_mut(res.by_kind.entry(kind).or_default());
        if replace {
            map.clear();
        }
        for n in removed {
            map.remove(n);
        }
        for (name, version, item) in upserts {
            if let Item::Secret(s) = &item {
                super::secret::write(&self.boot.sds_dir, s).map_err(|e| {
                    format!(
                        "Secret {name:?}: cannot write to {}: {e}",
                        self.boot.sds_dir.display()
                    )
                })?;
            }
            map.insert(name, (version, std::sync::Arc::new(item)));
        }
        // Named types keep only what is still wanted (a removed EDS cluster drops its CLA).
        for k in [Kind::Endpoint, Kind::Route, Kind::Secret] {
            let wanted = res.wanted(k);
            if let Some(m) = res.by_kind.get_mut(&k) {
                if m.keys().any(|n| !wanted.contains(n)) {
                    std::sync::Arc::make_mut(m).retain(|n, _| wanted.contains(n));
                }
            }
        }
        self.apply(res, received)
    }

    /// Composes `res` and, when the result differs from what runs, installs it.
    fn apply(&mut self, res: Resources, started: Instant) -> Result<(), String> {
        let now = Instant::now();
        let mut c = compose(
            &self.boot.statics,
            &res,
            &self.applied,
            self.boot.initial_fetch_timeout,
            now,
        );
        let text = std::mem::take(&mut c.doc);
        let fp = crate::reload::fingerprint(text.as_bytes());
        if self.last_doc != Some(fp) {
            // The text goes to the control thread: no copy of a 1,000-cluster config is kept here.
            let config = Config::from_xds_text(&text).map_err(|e| {
                format!(
                    "{}: {}: {}",
                    blame(&c.listener_from, &c.cluster_from, &e.path),
                    e.path,
                    e.message
                )
            })?;
            self.control.apply(config, text)?;
            self.applies += 1;
            if self.propagation.len() == SAMPLES {
                self.propagation.remove(0);
            }
            self.propagation
                .push(started.elapsed().as_secs_f64() * 1000.0);
            tracing::info!(
                listeners = c.listener_from.len(),
                clusters = c.cluster_from.len(),
                warming = c.warming.len(),
                ms = started.elapsed().as_secs_f64() * 1000.0,
                "xds config applied"
            );
        }
        self.last_doc = Some(fp);
        self.deadline = c.deadline;
        self.warming = c.warming;
        self.applied = c.applied;
        self.res = res;
        Ok(())
    }

    /// Re-composes once a warming resource's initial fetch timeout has passed.
    pub fn tick(&mut self) {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            tracing::warn!(warming = ?self.warming, "xds initial fetch timeout: using what is there");
            if let Err(e) = self.apply(self.res.clone(), Instant::now()) {
                tracing::error!(error = %e, "xds config after fetch timeout rejected");
            }
        }
    }

    /// The xDS section of `/config_dump`.
    pub fn publish(&self) {
        let mut types = serde_json::Map::new();
        for (k, t) in &self.types {
            let count = self.res.by_kind.get(k).map_or(0, |m| m.len());
            types.insert(
                k.short().into(),
                json!({
                    "type_url": k.url(),
                    "version": t.version,
                    "nonce": t.nonce,
                    "resources": count,
                    "subscribed": t.subscribed.len(),
                    "acks": t.acks,
                    "nacks": t.nacks,
                    "last_error": t.error,
                }),
            );
        }
        let mut p = self.propagation.clone();
        p.sort_by(f64::total_cmp);
        let q = |f: f64| {
            p.get(((p.len() as f64 * f).ceil() as usize).saturating_sub(1))
                .copied()
        };
        let status = json!({
            "api": match self.boot.api { Api::Sotw => "sotw", Api::Delta => "delta" },
            "node": {"id": self.boot.node.id, "cluster": self.boot.node.cluster},
            "server_cluster": self.boot.server.name,
            "connected": self.connected,
            "connects": self.connects,
            "applies": self.applies,
            "types": types,
            "warming": self.warming,
            "propagation_ms": {"count": p.len(), "p50": q(0.5), "p99": q(0.99), "max": p.last()},
        });
        self.control.set_xds_status(status.to_string());
    }

    /// The node sent with the first request of each type.
    pub fn node(&self) -> envoy_types::pb::envoy::config::core::v3::Node {
        use envoy_types::pb::envoy::config::core::v3::{node, Node};
        use envoy_types::pb::google::protobuf::Struct;
        Node {
            id: self.boot.node.id.clone(),
            cluster: self.boot.node.cluster.clone(),
            metadata: Some(Struct {
                fields: self
                    .boot
                    .node
                    .metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), pb_value(v)))
                    .collect(),
            }),
            user_agent_name: "shardcar".into(),
            user_agent_version_type: Some(node::UserAgentVersionType::UserAgentVersion(
                env!("CARGO_PKG_VERSION").into(),
            )),
            ..Default::default()
        }
    }
}

fn pb_value(v: &Value) -> envoy_types::pb::google::protobuf::Value {
    use envoy_types::pb::google::protobuf::{value::Kind as K, ListValue, Struct, Value as V};
    let kind = match v {
        Value::Null => K::NullValue(0),
        Value::Bool(b) => K::BoolValue(*b),
        Value::Number(n) => K::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => K::StringValue(s.clone()),
        Value::Array(a) => K::ListValue(ListValue {
            values: a.iter().map(pb_value).collect(),
        }),
        Value::Object(o) => K::StructValue(Struct {
            fields: o.iter().map(|(k, v)| (k.clone(), pb_value(v))).collect(),
        }),
    };
    V { kind: Some(kind) }
}
