//! Listener-side TLS: [`ServerSettings`] → `Arc<rustls::ServerConfig>`.
//!
//! TLS 1.3 only by default, TLS 1.2 on request ([`MinVersion`]); ALPN as configured (`h2`,
//! `http/1.1`); a certificate chosen by SNI (exact names and one-label `*.` wildcards, like
//! Envoy's `server_names`), else the default; client certificates verified as SVIDs
//! ([`super::verify::SvidVerifier`]), optional or required (`require_client_certificate`);
//! session resumption through stateless tickets, on or off. The stateful session cache is off:
//! it is a mutex shared by every shard. The ticketer is rustls's rotating one (a read lock per
//! resumed or issued ticket, once per handshake, never per byte).

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use super::verify::{IdentityMatcher, SvidVerifier, TrustBundles};
use super::{provider, MinVersion};

/// Client certificate policy of a listener.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// No CertificateRequest is sent; the peer has no identity.
    Off,
    /// Request an SVID; `required: false` lets clients without one through with no identity,
    /// but a presented certificate must still be valid.
    Svid {
        bundles: TrustBundles,
        matcher: IdentityMatcher,
        required: bool,
    },
}

/// Everything a listener's TLS needs; the material is already loaded (see `source`).
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub default_cert: Arc<CertifiedKey>,
    /// Server name pattern (`api.example.com`, `*.example.com`) → certificate.
    pub sni_certs: Vec<(String, Arc<CertifiedKey>)>,
    pub alpn: Vec<Vec<u8>>,
    pub min_version: MinVersion,
    pub session_tickets: bool,
    pub client_auth: ClientAuth,
}

impl ServerSettings {
    /// TLS 1.3, ALPN h2 and http/1.1, tickets on, no client auth.
    pub fn new(default_cert: Arc<CertifiedKey>) -> ServerSettings {
        ServerSettings {
            default_cert,
            sni_certs: Vec::new(),
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            min_version: MinVersion::Tls13,
            session_tickets: true,
            client_auth: ClientAuth::Off,
        }
    }

    pub fn build(&self) -> Result<Arc<ServerConfig>, rustls::Error> {
        let p = provider();
        let builder = ServerConfig::builder_with_provider(p.clone())
            .with_protocol_versions(self.min_version.versions())?;
        let builder = match &self.client_auth {
            ClientAuth::Off => builder.with_no_client_auth(),
            ClientAuth::Svid {
                bundles,
                matcher,
                required,
            } => builder.with_client_cert_verifier(Arc::new(SvidVerifier::new(
                bundles.clone(),
                matcher.clone(),
                &p,
                *required,
            ))),
        };
        let mut cfg = builder.with_cert_resolver(Arc::new(SniResolver::new(
            self.default_cert.clone(),
            &self.sni_certs,
        )));
        cfg.alpn_protocols = self.alpn.clone();
        cfg.session_storage = Arc::new(NoServerSessionStorage {});
        if self.session_tickets {
            cfg.ticketer = ticketer()?;
        } else {
            cfg.send_tls13_tickets = 0;
        }
        Ok(Arc::new(cfg))
    }
}

#[cfg(not(feature = "aws-lc-rs"))]
fn ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, rustls::Error> {
    rustls::crypto::ring::Ticketer::new()
}

#[cfg(feature = "aws-lc-rs")]
fn ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, rustls::Error> {
    rustls::crypto::aws_lc_rs::Ticketer::new()
}

/// Picks the certificate for a ClientHello's server name: exact, then `*.parent`, then default.
#[derive(Debug)]
pub struct SniResolver {
    default: Arc<CertifiedKey>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` stored as `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl SniResolver {
    pub fn new(default: Arc<CertifiedKey>, names: &[(String, Arc<CertifiedKey>)]) -> SniResolver {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (name, ck) in names {
            let name = name.to_ascii_lowercase();
            match name.strip_prefix("*.") {
                Some(parent) => wildcard.insert(parent.to_string(), ck.clone()),
                None => exact.insert(name, ck.clone()),
            };
        }
        SniResolver {
            default,
            exact,
            wildcard,
        }
    }

    pub fn pick(&self, server_name: Option<&str>) -> &Arc<CertifiedKey> {
        // rustls hands the name over lowercased and without a trailing dot.
        let Some(name) = server_name else {
            return &self.default;
        };
        if let Some(ck) = self.exact.get(name) {
            return ck;
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(ck) = self.wildcard.get(parent) {
                return ck;
            }
        }
        &self.default
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()).clone())
    }
}
