//! Incremental (Delta) ADS: `DeltaDiscoveryRequest`s subscribe and unsubscribe names (LDS
//! and CDS as wildcards), responses carry only changed resources plus `removed_resources`,
//! and a new stream sends `initial_resource_versions` so the server sends only what changed
//! while we were away. ACK/NACK echo the response's `nonce` (NACK with `error_detail`).

use std::collections::HashMap;
use std::time::Instant;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status;
use tokio::sync::mpsc::UnboundedSender;

use super::client::Client;
use super::state::Kind;
use super::Session;

fn versions(c: &Client, k: Kind) -> HashMap<String, String> {
    c.res
        .by_kind
        .get(&k)
        .map(|m| m.iter().map(|(n, (v, _))| (n.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn subscribe(c: &mut Client, tx: &UnboundedSender<DeltaDiscoveryRequest>, first: bool) {
    for k in [Kind::Endpoint, Kind::Route, Kind::Secret] {
        let wanted = c.res.wanted(k);
        let had = &c.types[&k].subscribed;
        let add: Vec<String> = wanted.difference(had).cloned().collect();
        let drop: Vec<String> = had.difference(&wanted).cloned().collect();
        if add.is_empty() && drop.is_empty() {
            continue;
        }
        let req = DeltaDiscoveryRequest {
            node: first.then(|| c.node()),
            type_url: k.url().into(),
            resource_names_subscribe: add,
            resource_names_unsubscribe: drop,
            initial_resource_versions: if first {
                versions(c, k)
            } else {
                HashMap::new()
            },
            ..Default::default()
        };
        c.state(k).subscribed = wanted;
        let _ = tx.send(req);
    }
}

pub async fn session(
    c: &mut Client,
    channel: tonic::transport::Channel,
    s: &mut Session,
) -> Result<(), String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<DeltaDiscoveryRequest>();
    for k in [Kind::Cluster, Kind::Listener] {
        let _ = tx.send(DeltaDiscoveryRequest {
            node: Some(c.node()),
            type_url: k.url().into(),
            initial_resource_versions: versions(c, k),
            ..Default::default()
        });
    }
    for k in [Kind::Endpoint, Kind::Route, Kind::Secret] {
        c.state(k).subscribed.clear();
    }
    subscribe(c, &tx, true);
    let mut ads = AggregatedDiscoveryServiceClient::new(channel);
    let mut inbound = ads
        .delta_aggregated_resources(super::sotw::outbound(rx))
        .await
        .map_err(|e| format!("delta ADS stream: {e}"))?
        .into_inner();
    loop {
        let msg = tokio::select! {
            m = inbound.message() => m,
            () = super::until(c.deadline) => { c.tick(); c.publish(); continue; }
        };
        let resp = match msg {
            Ok(Some(r)) => r,
            Ok(None) => return Err("the control plane closed the stream".into()),
            Err(e) => return Err(format!("delta ADS stream: {e}")),
        };
        s.responses += 1;
        on_response(c, &tx, resp);
        c.publish();
    }
}

fn on_response(
    c: &mut Client,
    tx: &UnboundedSender<DeltaDiscoveryRequest>,
    resp: DeltaDiscoveryResponse,
) {
    let received = Instant::now();
    let Some(k) = Kind::from_url(&resp.type_url) else {
        tracing::warn!(type_url = %resp.type_url, "xds: delta response of an unknown type");
        return;
    };
    let result = resp
        .resources
        .iter()
        .map(|r| {
            let any = r.resource.clone().unwrap_or_default();
            c.decode(k, &any).and_then(|(n, i)| {
                if n == r.name || r.name.is_empty() {
                    Ok((n, r.version.clone(), i))
                } else {
                    Err(format!("resource {:?} carries {n:?}", r.name))
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|items| c.update(k, items, &resp.removed_resources, false, received));
    let t = c.state(k);
    t.nonce = resp.nonce.clone();
    let error = match result {
        Ok(()) => {
            t.version = resp.system_version_info.clone();
            t.error = None;
            t.acks += 1;
            None
        }
        Err(e) => {
            tracing::error!(r#type = k.short(), error = %e, "xds: delta NACK; the running config stays in force");
            t.error = Some(e.clone());
            t.nacks += 1;
            Some(Status {
                code: 3,
                message: e,
                details: Vec::new(),
            })
        }
    };
    let _ = tx.send(DeltaDiscoveryRequest {
        type_url: k.url().into(),
        response_nonce: resp.nonce,
        error_detail: error,
        ..Default::default()
    });
    subscribe(c, tx, false);
}
