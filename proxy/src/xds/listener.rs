//! `Listener` → the config's listener shape.
//!
//! Mapped: `name`, `address` (IP socket address), `use_original_dst`, `transparent`,
//! `tcp_backlog_size`, listener filters `original_dst` (→ `original_dst: true`),
//! `tls_inspector` and `http_inspector` (no-ops: detection is built in), and exactly one
//! filter chain (`filter_chains[0]` or `default_filter_chain`, without `filter_chain_match`)
//! whose `transport_socket` may be a `DownstreamTlsContext` (SDS, see [`super::secret`]) and
//! whose one network filter is either
//! - `envoy.filters.network.http_connection_manager`: `codec_type` AUTO / HTTP1 (→ `http`,
//!   which also serves h2c) or HTTP2 (→ `http2`); `rds.route_config_name` or an inline
//!   `route_config` ([`super::route`]); `http_filters` = the router only; `normalize_path`,
//!   `merge_slashes`, `path_with_escaped_slashes_action`, `request_headers_timeout`,
//!   `max_request_headers_kb`, `common_http_protocol_options.idle_timeout`;
//! - `envoy.filters.network.tcp_proxy`: `cluster`, `idle_timeout`.
//!
//! Labels ignored: `stat_prefix`, `metadata`, `traffic_direction`, chain `name`. Anything
//! else set → NACK naming it.

use envoy_types::pb::envoy::config::listener::v3::{
    filter, listener_filter, FilterChain, Listener,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, http_filter, HttpConnectionManager,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{tcp_proxy, TcpProxy};
use prost::Message;
use serde_json::{json, Map, Value};

use super::check::{done, duration, nack, Unsupported};
use super::secret::TlsUse;

const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const TCP_PROXY: &str = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
const ROUTER: &str = "envoy.extensions.filters.http.router.v3.Router";

/// A translated listener: its config shape, plus what it waits for.
#[derive(Debug, Clone, PartialEq)]
pub struct XListener {
    pub name: String,
    /// Without `virtual_hosts` when they come from RDS.
    pub raw: Value,
    pub rds: Option<String>,
    /// Clusters it names directly (tcp_proxy, inline routes).
    pub clusters: Vec<String>,
    pub secrets: Vec<String>,
}

fn type_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

pub fn translate(mut l: Listener, tls: &TlsUse<'_>) -> Result<XListener, Unsupported> {
    let name = std::mem::take(&mut l.name);
    let who = format!("Listener {name:?}");
    let mut raw = Map::new();
    raw.insert("name".into(), json!(name));
    raw.insert(
        "address".into(),
        json!(super::cluster::socket(&who, "address.", l.address.take())?),
    );
    l.stat_prefix.clear();
    l.metadata = None;
    l.traffic_direction = 0;
    l.listener_filters_timeout = None;
    l.continue_on_listener_filters_timeout = false;
    let mut original_dst = l.use_original_dst.take().is_some_and(|b| b.value);
    if l.transparent.take().is_some_and(|b| b.value) {
        raw.insert("transparent".into(), json!(true));
    }
    if let Some(b) = l.tcp_backlog_size.take() {
        raw.insert("backlog".into(), json!(b.value));
    }
    for (i, mut f) in std::mem::take(&mut l.listener_filters)
        .into_iter()
        .enumerate()
    {
        let url = match f.config_type.take() {
            Some(listener_filter::ConfigType::TypedConfig(a)) => a.type_url,
            _ => String::new(),
        };
        match (f.name.as_str(), type_name(&url)) {
            (_, "envoy.extensions.filters.listener.original_dst.v3.OriginalDst")
            | ("envoy.filters.listener.original_dst", _) => original_dst = true,
            (_, "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector")
            | ("envoy.filters.listener.tls_inspector", _)
            | (_, "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector")
            | ("envoy.filters.listener.http_inspector", _) => {}
            (n, _) => {
                return Err(nack(
                    &who,
                    format!("listener_filters[{i}]"),
                    format!("{n:?} is not supported"),
                ))
            }
        }
        f.name.clear();
        done(&who, &format!("listener_filters[{i}]."), &f)?;
    }
    if original_dst {
        raw.insert("original_dst".into(), json!(true));
    }
    let mut chains = std::mem::take(&mut l.filter_chains);
    let (at, chain) = match (chains.len(), l.default_filter_chain.take()) {
        (1, None) => ("filter_chains[0]", chains.pop().unwrap_or_default()),
        (0, Some(c)) => ("default_filter_chain", c),
        _ => {
            return Err(nack(
                &who,
                "filter_chains",
                "exactly one filter chain is supported",
            ))
        }
    };
    let (clusters, secrets, rds) = chain_into(&who, at, chain, tls, &mut raw)?;
    done(&who, "", &l)?;
    Ok(XListener {
        name,
        raw: Value::Object(raw),
        rds,
        clusters,
        secrets,
    })
}

type ChainParts = (Vec<String>, Vec<String>, Option<String>);

fn chain_into(
    who: &str,
    at: &str,
    mut c: FilterChain,
    tls: &TlsUse<'_>,
    raw: &mut Map<String, Value>,
) -> Result<ChainParts, Unsupported> {
    if c.filter_chain_match
        .take()
        .is_some_and(|m| m != Default::default())
    {
        return Err(nack(
            who,
            format!("{at}.filter_chain_match"),
            "filter chain matching is not supported",
        ));
    }
    c.name.clear();
    c.metadata = None;
    let mut secrets = Vec::new();
    if let Some(ts) = c.transport_socket.take() {
        let (block, names) = tls.downstream(who, &format!("{at}.transport_socket"), ts)?;
        raw.insert("tls".into(), block);
        secrets = names;
    }
    let mut filters = std::mem::take(&mut c.filters);
    if filters.len() != 1 {
        return Err(nack(
            who,
            format!("{at}.filters"),
            "exactly one network filter (http_connection_manager or tcp_proxy)",
        ));
    }
    let mut f = filters.pop().unwrap_or_default();
    let fat = format!("{at}.filters[0]");
    let any = match f.config_type.take() {
        Some(filter::ConfigType::TypedConfig(a)) => a,
        _ => return Err(nack(who, format!("{fat}.typed_config"), "required")),
    };
    f.name.clear();
    done(who, &format!("{fat}."), &f)?;
    done(who, &format!("{at}."), &c)?;
    let bad = |e: prost::DecodeError| nack(who, format!("{fat}.typed_config"), e.to_string());
    match type_name(&any.type_url) {
        HCM => {
            let h = HttpConnectionManager::decode(any.value.as_slice()).map_err(bad)?;
            hcm(who, &format!("{fat}.typed_config."), h, raw).map(|(cl, rds)| (cl, secrets, rds))
        }
        TCP_PROXY => {
            let mut t = TcpProxy::decode(any.value.as_slice()).map_err(bad)?;
            let at = format!("{fat}.typed_config.");
            t.stat_prefix.clear();
            let cluster = match t.cluster_specifier.take() {
                Some(tcp_proxy::ClusterSpecifier::Cluster(c)) => c,
                _ => return Err(nack(who, format!("{at}cluster_specifier"), "only cluster")),
            };
            if let Some(d) = t.idle_timeout.take() {
                raw.insert("idle_timeout".into(), json!(duration(&d)));
            }
            done(who, &at, &t)?;
            raw.insert("protocol".into(), json!("tcp"));
            raw.insert("cluster".into(), json!(cluster));
            Ok((vec![cluster], secrets, None))
        }
        other => Err(nack(
            who,
            fat.to_string(),
            format!("{other:?} is not supported"),
        )),
    }
}

fn hcm(
    who: &str,
    at: &str,
    mut h: HttpConnectionManager,
    raw: &mut Map<String, Value>,
) -> Result<(Vec<String>, Option<String>), Unsupported> {
    raw.insert(
        "protocol".into(),
        json!(match std::mem::take(&mut h.codec_type) {
            0 | 1 => "http",
            2 => "http2",
            o =>
                return Err(nack(
                    who,
                    format!("{at}codec_type"),
                    format!("{o}: only AUTO, HTTP1, HTTP2")
                )),
        }),
    );
    h.stat_prefix.clear();
    for (i, mut f) in std::mem::take(&mut h.http_filters).into_iter().enumerate() {
        let url = match f.config_type.take() {
            Some(http_filter::ConfigType::TypedConfig(a)) => a.type_url,
            _ => String::new(),
        };
        if type_name(&url) != ROUTER && f.name != "envoy.filters.http.router" {
            return Err(nack(
                who,
                format!("{at}http_filters[{i}]"),
                format!("{:?}: only the router filter is supported", f.name),
            ));
        }
        f.name.clear();
        done(who, &format!("{at}http_filters[{i}]."), &f)?;
    }
    if let Some(b) = h.normalize_path.take() {
        raw.insert("normalize_path".into(), json!(b.value));
    }
    if std::mem::take(&mut h.merge_slashes) {
        raw.insert("merge_slashes".into(), json!(true));
    }
    match std::mem::take(&mut h.path_with_escaped_slashes_action) {
        0 => {}
        1 => {
            raw.insert("path_with_escaped_slashes".into(), json!("keep_unchanged"));
        }
        2 => {
            raw.insert("path_with_escaped_slashes".into(), json!("reject_request"));
        }
        4 => {
            raw.insert(
                "path_with_escaped_slashes".into(),
                json!("unescape_and_forward"),
            );
        }
        o => {
            return Err(nack(
                who,
                format!("{at}path_with_escaped_slashes_action"),
                format!("{o} is not supported"),
            ))
        }
    }
    if let Some(d) = h.request_headers_timeout.take() {
        raw.insert("request_headers_timeout".into(), json!(duration(&d)));
    }
    if let Some(kb) = h.max_request_headers_kb.take() {
        raw.insert(
            "max_request_headers_size".into(),
            json!(format!("{}KiB", kb.value)),
        );
    }
    if let Some(mut o) = h.common_http_protocol_options.take() {
        if let Some(d) = o.idle_timeout.take() {
            raw.insert("idle_timeout".into(), json!(duration(&d)));
        }
        done(who, &format!("{at}common_http_protocol_options."), &o)?;
    }
    let out = match h.route_specifier.take() {
        Some(RouteSpecifier::Rds(mut r)) => {
            r.config_source = None;
            let n = std::mem::take(&mut r.route_config_name);
            done(who, &format!("{at}rds."), &r)?;
            (Vec::new(), Some(n))
        }
        Some(RouteSpecifier::RouteConfig(rc)) => {
            let r = super::route::translate(rc).map_err(|mut e| {
                e.field = format!("{at}route_config.{}", e.field);
                e.resource = who.to_string();
                e
            })?;
            raw.insert("virtual_hosts".into(), r.vhosts);
            (r.clusters, None)
        }
        _ => {
            return Err(nack(
                who,
                format!("{at}route_specifier"),
                "rds or route_config",
            ))
        }
    };
    done(who, at, &h)?;
    Ok(out)
}
