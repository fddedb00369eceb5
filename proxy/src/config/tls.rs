//! The `tls:` blocks of listeners and clusters in the config loader: the shapes and checks live
//! in [`crate::tls::config`]; this turns their errors into [`ConfigError`]s naming the full
//! field path (`listeners[0].tls.mode`), and applies the cluster ALPN default.

use super::raw::{RawCluster, RawListener};
use super::ConfigError;
use crate::tls::config::{ClusterTls, ClusterTlsConf, ListenerTls, ListenerTlsConf};

pub(super) fn listener_tls(
    at: &str,
    raw: &RawListener,
) -> Result<Option<ListenerTlsConf>, ConfigError> {
    let Some(t) = &raw.tls else { return Ok(None) };
    let settings = ListenerTls::try_from(t)
        .map_err(|e| ConfigError::new(format!("{at}.{}", e.field), e.message))?;
    Ok(Some(ListenerTlsConf::new(settings)))
}

pub(super) fn cluster_tls(
    at: &str,
    raw: &RawCluster,
) -> Result<Option<ClusterTlsConf>, ConfigError> {
    let Some(t) = &raw.tls else { return Ok(None) };
    let mut settings = ClusterTls::try_from(t)
        .map_err(|e| ConfigError::new(format!("{at}.{}", e.field), e.message))?;
    if settings.alpn.is_empty() {
        // An HTTP/2 cluster over TLS offers h2 (servers pick the protocol by ALPN).
        match raw.protocol.as_deref() {
            Some("http2") => settings.alpn = vec![b"h2".to_vec()],
            Some("auto") => settings.alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            _ => {}
        }
    }
    Ok(Some(ClusterTlsConf::new(settings)))
}
