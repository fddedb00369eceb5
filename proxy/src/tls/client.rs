//! Cluster-side TLS: [`ClientSettings`] → `Arc<rustls::ClientConfig>`.
//!
//! The server is verified as an SVID against the trust bundles, and its ID against the
//! cluster's expected identities (exact / prefix / trust domain). The server name (SNI) is
//! chosen per connect; see `handshake::connect`. A client certificate is presented when set.
//! Session resumption uses rustls's in-memory client cache (a mutex, taken once per handshake;
//! upstream connections are pooled, so handshakes are rare) and can be switched off.

use std::sync::Arc;

use rustls::client::{ResolvesClientCert, Resumption};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, SignatureScheme};

use super::verify::{IdentityMatcher, SvidVerifier, TrustBundles};
use super::{provider, MinVersion};

/// Everything an upstream TLS connection needs.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub bundles: TrustBundles,
    pub expected: IdentityMatcher,
    pub client_cert: Option<Arc<CertifiedKey>>,
    pub alpn: Vec<Vec<u8>>,
    pub min_version: MinVersion,
    pub resumption: bool,
}

impl ClientSettings {
    /// TLS 1.3, no ALPN, no client certificate, any identity from `bundles`, resumption on.
    pub fn new(bundles: TrustBundles) -> ClientSettings {
        ClientSettings {
            bundles,
            expected: IdentityMatcher::any(),
            client_cert: None,
            alpn: Vec::new(),
            min_version: MinVersion::Tls13,
            resumption: true,
        }
    }

    pub fn build(&self) -> Result<Arc<ClientConfig>, rustls::Error> {
        let p = provider();
        let verifier = SvidVerifier::new(self.bundles.clone(), self.expected.clone(), &p, false);
        let builder = ClientConfig::builder_with_provider(p)
            .with_protocol_versions(self.min_version.versions())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let mut cfg = match &self.client_cert {
            Some(ck) => builder.with_client_cert_resolver(Arc::new(FixedClientCert(ck.clone()))),
            None => builder.with_no_client_auth(),
        };
        cfg.alpn_protocols = self.alpn.clone();
        if !self.resumption {
            cfg.resumption = Resumption::disabled();
        }
        Ok(Arc::new(cfg))
    }
}

/// Presents the one SVID whatever the server asks for (SVID servers send no CA hints).
#[derive(Debug)]
struct FixedClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for FixedClientCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
