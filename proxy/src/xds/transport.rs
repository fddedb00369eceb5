//! The gRPC channel to one endpoint of the xDS cluster: h2c, or TLS (mTLS with the cluster's
//! client certificate, SPIFFE verification of the server) when the cluster has a `tls:`
//! block — the same rustls config the data path would use, with ALPN `h2`.
//!
//! That config is the block's live one when the running server has activated it (files
//! watched, or an SVID streamed from the SPIFFE Workload API with `workload_api:`), so every
//! reconnect presents the identity in force after rotations; without it (the block not
//! activated) the block's files are loaded here.

use std::net::SocketAddr;
use std::sync::Arc;

use tonic::transport::{Channel, Endpoint};

use crate::config::Cluster;

pub async fn connect(cluster: &Cluster, addr: SocketAddr) -> Result<Channel, String> {
    let ep = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(cluster.connect_timeout)
        .http2_keep_alive_interval(std::time::Duration::from_secs(30))
        .keep_alive_while_idle(true);
    let Some(tls) = &cluster.tls else {
        return ep
            .connect()
            .await
            .map_err(|e| format!("connect {addr}: {e}"));
    };
    let live = match tls.live.get() {
        Some(c) => c,
        None if tls.settings.workload_api.is_some() => {
            return Err("xds tls: no SVID from the Workload API yet".into())
        }
        None => {
            let material = tls
                .settings
                .source
                .load()
                .map_err(|e| format!("xds tls: {e}"))?;
            tls.settings.build(&material)?
        }
    };
    let mut cfg = (*live).clone();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let cfg = Arc::new(cfg);
    let name = tls.settings.server_name(addr.ip());
    let connector = tower::service_fn(move |_uri: http::Uri| {
        let cfg = cfg.clone();
        let name = name.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            let _ = tcp.set_nodelay(true);
            let s = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
        }
    });
    ep.connect_with_connector(connector)
        .await
        .map_err(|e| format!("connect {addr} (TLS): {e}"))
}
