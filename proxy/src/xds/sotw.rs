//! State-of-the-World ADS: one `DiscoveryRequest` stream for every type; each response is the
//! full set of its type (LDS, CDS) or of the subscribed names (EDS, RDS, SDS: names not in a
//! response keep their last version). A response is ACKed (its `version_info` and `nonce`
//! echoed) once every shard runs the config it produced, or NACKed with `error_detail` and
//! the last accepted version, leaving the running config in force.

use std::time::Instant;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status;
use tokio::sync::mpsc::UnboundedSender;

use super::client::Client;
use super::state::Kind;
use super::Session;

fn request(c: &Client, k: Kind, error: Option<String>) -> DiscoveryRequest {
    let t = &c.types[&k];
    DiscoveryRequest {
        version_info: t.version.clone(),
        node: Some(c.node()),
        resource_names: if k.wildcard() {
            Vec::new()
        } else {
            t.subscribed.iter().cloned().collect()
        },
        type_url: k.url().into(),
        response_nonce: t.nonce.clone(),
        error_detail: error.map(|message| Status {
            code: 3,
            message,
            details: Vec::new(),
        }),
        ..Default::default()
    }
}

/// Sends a request for every named type whose wanted set changed.
fn resubscribe(c: &mut Client, tx: &UnboundedSender<DiscoveryRequest>, force: bool) {
    for k in [Kind::Endpoint, Kind::Route, Kind::Secret] {
        let wanted = c.res.wanted(k);
        if wanted != c.types[&k].subscribed || (force && !wanted.is_empty()) {
            c.state(k).subscribed = wanted;
            let _ = tx.send(request(c, k, None));
        }
    }
}

pub async fn session(
    c: &mut Client,
    channel: tonic::transport::Channel,
    s: &mut Session,
) -> Result<(), String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<DiscoveryRequest>();
    for k in [Kind::Cluster, Kind::Listener] {
        c.state(k).nonce.clear();
        let _ = tx.send(request(c, k, None));
    }
    for k in [Kind::Endpoint, Kind::Route, Kind::Secret] {
        c.state(k).nonce.clear();
        c.state(k).subscribed.clear();
    }
    resubscribe(c, &tx, true);
    let mut ads = AggregatedDiscoveryServiceClient::new(channel);
    let mut inbound = ads
        .stream_aggregated_resources(outbound(rx))
        .await
        .map_err(|e| format!("ADS stream: {e}"))?
        .into_inner();
    loop {
        let msg = tokio::select! {
            m = inbound.message() => m,
            () = super::until(c.deadline) => { c.tick(); c.publish(); continue; }
        };
        let resp = match msg {
            Ok(Some(r)) => r,
            Ok(None) => return Err("the control plane closed the stream".into()),
            Err(e) => return Err(format!("ADS stream: {e}")),
        };
        s.responses += 1;
        on_response(c, &tx, resp);
        c.publish();
    }
}

fn on_response(c: &mut Client, tx: &UnboundedSender<DiscoveryRequest>, resp: DiscoveryResponse) {
    let received = Instant::now();
    let Some(k) = Kind::from_url(&resp.type_url) else {
        tracing::warn!(type_url = %resp.type_url, "xds: response of an unknown type");
        return;
    };
    let result = resp
        .resources
        .iter()
        .map(|any| {
            c.decode(k, any)
                .map(|(n, i)| (n, resp.version_info.clone(), i))
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|items| c.update(k, items, &[], k.wildcard(), received));
    let t = c.state(k);
    t.nonce = resp.nonce.clone();
    match result {
        Ok(()) => {
            t.version = resp.version_info.clone();
            t.error = None;
            t.acks += 1;
            let _ = tx.send(request(c, k, None));
        }
        Err(e) => {
            tracing::error!(r#type = k.short(), version = %resp.version_info, error = %e, "xds: NACK; the running config stays in force");
            t.error = Some(e.clone());
            t.nacks += 1;
            let _ = tx.send(request(c, k, Some(e)));
        }
    }
    resubscribe(c, tx, false);
}

/// The request stream tonic sends from: whatever is sent on the channel's sender.
pub fn outbound<T: Send + 'static>(
    rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) })
}
