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
//!
//! The composed config is JSON text, written straight from the translations: a cluster's
//! translation is kept as its JSON text and an assignment as its endpoint list's, so the
//! thousands of EDS clusters an xDS config carries are never held (nor built per update) as
//! `serde_json::Value`s; the last applied form of a cluster is the pair of `Arc`s it came
//! from, shared with the accepted resources.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
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
    /// An assignment's endpoints, as the JSON text of the config's `endpoints` list.
    Endpoint(Box<str>),
    Listener(XListener),
    Route(XRoute),
    Secret(XSecret),
}

/// One type's accepted resources: name → (resource version, translation).
pub type Accepted = BTreeMap<String, (String, Arc<Item>)>;

/// The accepted resources per type. Cloning is shallow (an update works on a copy so that a
/// NACK leaves this untouched): a type's map is copied only when the update changes it, and
/// then only names, versions and `Arc`s — never the translations.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub by_kind: BTreeMap<Kind, Arc<Accepted>>,
}

impl Resources {
    pub fn of(&self, k: Kind) -> impl Iterator<Item = (&String, &Item)> {
        self.of_arcs(k).map(|(n, i)| (n, &**i))
    }

    fn of_arcs(&self, k: Kind) -> impl Iterator<Item = (&String, &Arc<Item>)> {
        self.by_kind
            .get(&k)
            .into_iter()
            .flat_map(|m| m.iter().map(|(n, (_, i))| (n, i)))
    }

    fn get(&self, k: Kind, name: &str) -> Option<&Item> {
        self.get_arc(k, name).map(|i| &**i)
    }

    fn get_arc(&self, k: Kind, name: &str) -> Option<&Arc<Item>> {
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
    /// Cluster → the translation and (EDS) the assignment its applied form came from (`None`:
    /// no endpoints, after the fetch timeout).
    pub clusters: HashMap<String, AppliedCluster>,
    /// Listener → (its config shape, the clusters it names).
    pub listeners: HashMap<String, (Value, Vec<String>)>,
    /// When a resource started waiting (EDS clusters, RDS listeners).
    pub waiting_since: HashMap<String, Instant>,
}

/// A cluster as applied: its translation and its assignment (shared with [`Resources`]).
pub type AppliedCluster = (Arc<Item>, Option<Arc<Item>>);

/// A cluster's config entry as JSON text: its translation, with an EDS cluster's endpoints.
fn cluster_text((cluster, eps): &AppliedCluster, out: &mut String) {
    let Item::Cluster(c) = &**cluster else {
        return;
    };
    if c.eds.is_none() {
        out.push_str(&c.raw);
        return;
    }
    let eps = match eps.as_deref() {
        Some(Item::Endpoint(e)) => &**e,
        _ => "[]",
    };
    // An EDS translation has no `endpoints` key: they are added here, before the closing brace.
    let body = c.raw.strip_suffix('}').unwrap_or(&c.raw);
    out.push_str(body);
    out.push_str(if body.len() > 1 {
        ",\"endpoints\":"
    } else {
        "\"endpoints\":"
    });
    out.push_str(eps);
    out.push('}');
}

/// One composition: the config document (JSON text), who each entry came from, what still
/// warms.
#[derive(Debug)]
pub struct Composed {
    pub doc: String,
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
    let static_clusters = statics(statics_doc, "clusters");
    let mut have: BTreeSet<String> = static_clusters.iter().map(|c| name_of(c)).collect();
    let mut cluster_from: Vec<String> = static_clusters
        .iter()
        .map(|c| format!("static cluster {:?}", name_of(c)))
        .collect();
    let mut clusters = String::from("[");
    for c in &static_clusters {
        if clusters.len() > 1 {
            clusters.push(',');
        }
        clusters.push_str(&c.to_string());
    }
    for (name, item) in res.of_arcs(Kind::Cluster) {
        let Item::Cluster(c) = &**item else { continue };
        let mut ready = secrets_ok(&c.secrets);
        let mut eps = None;
        if let Some(service) = &c.eds {
            match res.get_arc(Kind::Endpoint, service) {
                Some(e) if matches!(&**e, Item::Endpoint(_)) => eps = Some(e.clone()),
                _ if wait(format!("cluster/{name}"), &mut applied) => {}
                _ => ready = false,
            }
        }
        let chosen = if ready {
            Some((item.clone(), eps))
        } else {
            prev.clusters.get(name).cloned()
        };
        if !ready {
            warming.push(format!("Cluster {name:?}"));
        }
        if let Some(a) = chosen {
            if clusters.len() > 1 {
                clusters.push(',');
            }
            cluster_text(&a, &mut clusters);
            applied.clusters.insert(name.clone(), a);
            have.insert(name.clone());
            cluster_from.push(format!("Cluster {name:?}"));
        }
    }
    clusters.push(']');
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
    // The statics' other keys, then the two lists (written as text, not as values).
    let mut rest = statics_doc.as_object().cloned().unwrap_or_default();
    rest.remove("clusters");
    rest.remove("listeners");
    let mut doc = Value::Object(rest).to_string();
    doc.pop(); // the closing brace
    if doc.len() > 1 {
        doc.push(',');
    }
    doc.push_str("\"clusters\":");
    doc.push_str(&clusters);
    doc.push_str(",\"listeners\":");
    doc.push_str(&Value::Array(listeners).to_string());
    doc.push('}');
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

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
