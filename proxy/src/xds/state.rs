//! What the client holds: the last accepted resources of each type, and how they are put
//! together into one config ([`compose`]) with Envoy's warming rules:
//! - a cluster is used once its dependencies are there: an EDS cluster's
//!   `ClusterLoadAssignment` (or, after `initial_fetch_timeout`, with no endpoints) and its
//!   SDS secrets;
//! - a listener once its `RouteConfiguration` (RDS; after the timeout, with no routes: 404),
//!   its secrets and every cluster it names are in the config — so clusters always come
//!   before the listeners that use them;
//! - a resource whose new version still waits keeps its last applied version meanwhile (as
//!   long as what that one names is still there), so an update never takes traffic away
//!   while it warms.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::cluster::XCluster;
use super::listener::XListener;
use super::route::XRoute;
use super::secret::XSecret;

/// The five resource types, in the order ADS subscribes to them (CDS before LDS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Cluster,
    Endpoint,
    Listener,
    Route,
    Secret,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Cluster,
        Kind::Endpoint,
        Kind::Listener,
        Kind::Route,
        Kind::Secret,
    ];

    pub fn url(self) -> &'static str {
        match self {
            Kind::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            Kind::Endpoint => "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
            Kind::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            Kind::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            Kind::Secret => "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
        }
    }

    pub fn from_url(url: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.url() == url)
    }

    /// LDS and CDS are wildcard subscriptions; the others name their resources.
    pub fn wildcard(self) -> bool {
        matches!(self, Kind::Cluster | Kind::Listener)
    }

    pub fn short(self) -> &'static str {
        match self {
            Kind::Cluster => "CDS",
            Kind::Endpoint => "EDS",
            Kind::Listener => "LDS",
            Kind::Route => "RDS",
            Kind::Secret => "SDS",
        }
    }
}

/// One translated resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Cluster(XCluster),
    Endpoint(Vec<String>),
    Listener(XListener),
    Route(XRoute),
    Secret(XSecret),
}

/// The accepted resources: per type, name → (resource version, translation).
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub by_kind: BTreeMap<Kind, BTreeMap<String, (String, Item)>>,
}

impl Resources {
    pub fn of(&self, k: Kind) -> impl Iterator<Item = (&String, &Item)> {
        self.by_kind
            .get(&k)
            .into_iter()
            .flat_map(|m| m.iter().map(|(n, (_, i))| (n, i)))
    }

    fn get(&self, k: Kind, name: &str) -> Option<&Item> {
        self.by_kind.get(&k)?.get(name).map(|(_, i)| i)
    }

    /// The names the other types must subscribe to, from what CDS and LDS said.
    pub fn wanted(&self, k: Kind) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (_, item) in self.of(Kind::Cluster).chain(self.of(Kind::Listener)) {
            match (k, item) {
                (Kind::Endpoint, Item::Cluster(c)) => out.extend(c.eds.clone()),
                (Kind::Route, Item::Listener(l)) => out.extend(l.rds.clone()),
                (Kind::Secret, Item::Cluster(c)) => out.extend(c.secrets.iter().cloned()),
                (Kind::Secret, Item::Listener(l)) => out.extend(l.secrets.iter().cloned()),
                _ => {}
            }
        }
        out
    }
}

/// Last applied forms and warming clocks, carried between compositions.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub clusters: HashMap<String, Value>,
    /// Listener → (its config shape, the clusters it names).
    pub listeners: HashMap<String, (Value, Vec<String>)>,
    /// When a resource started waiting (EDS clusters, RDS listeners).
    pub waiting_since: HashMap<String, Instant>,
}

/// One composition: the config document, who each entry came from, what still warms.
#[derive(Debug)]
pub struct Composed {
    pub doc: Value,
    /// Per `listeners[i]` / `clusters[i]` of `doc`: the resource it came from.
    pub listener_from: Vec<String>,
    pub cluster_from: Vec<String>,
    pub warming: Vec<String>,
    /// The earliest moment a waiting resource times out (compose again then).
    pub deadline: Option<Instant>,
    pub applied: Applied,
}

fn statics<'a>(doc: &'a Value, key: &str) -> Vec<&'a Value> {
    doc.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn name_of(v: &Value) -> String {
    v.get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub fn compose(
    statics_doc: &Value,
    res: &Resources,
    prev: &Applied,
    timeout: Duration,
    now: Instant,
) -> Composed {
    let mut applied = Applied::default();
    let mut warming = Vec::new();
    let mut deadline: Option<Instant> = None;
    let mut wait = |key: String, applied: &mut Applied| -> bool {
        let since = *prev.waiting_since.get(&key).unwrap_or(&now);
        applied.waiting_since.insert(key, since);
        let end = since + timeout;
        if now >= end {
            return true;
        }
        deadline = Some(deadline.map_or(end, |d| d.min(end)));
        false
    };
    let secrets_ok = |names: &[String]| names.iter().all(|n| res.get(Kind::Secret, n).is_some());
    let mut clusters: Vec<Value> = statics(statics_doc, "clusters")
        .into_iter()
        .cloned()
        .collect();
    let mut cluster_from: Vec<String> = clusters
        .iter()
        .map(|c| format!("static cluster {:?}", name_of(c)))
        .collect();
    for (name, item) in res.of(Kind::Cluster) {
        let Item::Cluster(c) = item else { continue };
        let mut raw = c.raw.clone();
        let mut ready = secrets_ok(&c.secrets);
        if let Some(service) = &c.eds {
            match res.get(Kind::Endpoint, service) {
                Some(Item::Endpoint(eps)) => raw["endpoints"] = json!(eps),
                _ if wait(format!("cluster/{name}"), &mut applied) => raw["endpoints"] = json!([]),
                _ => ready = false,
            }
        }
        let chosen = if ready {
            Some(raw)
        } else {
            prev.clusters.get(name).cloned()
        };
        if !ready {
            warming.push(format!("Cluster {name:?}"));
        }
        if let Some(v) = chosen {
            applied.clusters.insert(name.clone(), v.clone());
            clusters.push(v);
            cluster_from.push(format!("Cluster {name:?}"));
        }
    }
    let have: BTreeSet<String> = clusters.iter().map(name_of).collect();
    let mut listeners: Vec<Value> = statics(statics_doc, "listeners")
        .into_iter()
        .cloned()
        .collect();
    let mut listener_from: Vec<String> = listeners
        .iter()
        .map(|l| format!("static listener {:?}", name_of(l)))
        .collect();
    for (name, item) in res.of(Kind::Listener) {
        let Item::Listener(l) = item else { continue };
        let mut raw = l.raw.clone();
        let mut names = l.clusters.clone();
        let mut from = format!("Listener {name:?}");
        let mut ready = secrets_ok(&l.secrets);
        if let Some(rds) = &l.rds {
            match res.get(Kind::Route, rds) {
                Some(Item::Route(r)) => {
                    raw["virtual_hosts"] = r.vhosts.clone();
                    names.extend(r.clusters.iter().cloned());
                    from = format!("Listener {name:?} (RouteConfiguration {rds:?})");
                }
                _ if wait(format!("listener/{name}"), &mut applied) => {
                    raw["virtual_hosts"] = json!([])
                }
                _ => ready = false,
            }
        }
        ready = ready && names.iter().all(|c| have.contains(c));
        let chosen = if ready {
            Some((raw, names))
        } else {
            warming.push(format!("Listener {name:?}"));
            prev.listeners
                .get(name)
                .filter(|(_, n)| n.iter().all(|c| have.contains(c)))
                .cloned()
        };
        if let Some((v, n)) = chosen {
            listeners.push(v.clone());
            listener_from.push(from);
            applied.listeners.insert(name.clone(), (v, n));
        }
    }
    let mut doc = statics_doc.clone();
    if !doc.is_object() {
        doc = json!({});
    }
    doc["clusters"] = Value::Array(clusters);
    doc["listeners"] = Value::Array(listeners);
    Composed {
        doc,
        listener_from,
        cluster_from,
        warming,
        deadline,
        applied,
    }
}

/// Names the resource a config error's path (`listeners[3].…`) points into.
pub fn blame(listener_from: &[String], cluster_from: &[String], path: &str) -> String {
    for (key, from) in [("listeners[", listener_from), ("clusters[", cluster_from)] {
        if let Some(rest) = path.strip_prefix(key) {
            if let Some(i) = rest.split(']').next().and_then(|n| n.parse::<usize>().ok()) {
                if let Some(f) = from.get(i) {
                    return f.clone();
                }
            }
        }
    }
    "config".into()
}
