//! SPIFFE peer verification as rustls verifiers: [`SvidVerifier`] implements both
//! `ClientCertVerifier` (listeners) and `ServerCertVerifier` (clusters).
//!
//! A peer certificate is accepted when its leaf passes the X509-SVID leaf rules
//! ([`super::svid::check_leaf`]), chains (through the peer's intermediates) to the
//! [`TrustBundles`] entry of *the trust domain in its own SPIFFE ID* — so a CA trusted for one
//! domain cannot vouch for another — is within its validity period, and its ID satisfies the
//! [`IdentityMatcher`] (Envoy's `match_typed_subject_alt_names`: exact, prefix, trust domain).
//! DNS names and the SNI are not checked against the server certificate: in SPIFFE the URI SAN
//! is the identity. Handshake signatures are checked with the crypto provider's algorithms.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError};
use rustls::{Error, SignatureScheme};

use super::spiffe_id::{SpiffeId, TrustDomain};
use super::svid::{check_leaf, CertRefusal};

/// Trust anchors per trust domain.
#[derive(Debug, Clone, Default)]
pub struct TrustBundles {
    by_domain: HashMap<TrustDomain, Vec<TrustAnchor<'static>>>,
}

impl TrustBundles {
    pub fn new() -> TrustBundles {
        TrustBundles::default()
    }

    /// Adds the CA certificates of `domain`'s bundle.
    pub fn add(
        &mut self,
        domain: TrustDomain,
        cas: &[CertificateDer<'_>],
    ) -> Result<(), webpki::Error> {
        let anchors = self.by_domain.entry(domain).or_default();
        for ca in cas {
            anchors.push(webpki::anchor_from_trusted_cert(ca)?.to_owned());
        }
        Ok(())
    }

    pub fn get(&self, domain: &str) -> Option<&[TrustAnchor<'static>]> {
        // HashMap<TrustDomain, _> cannot be indexed by &str without a Borrow impl that would
        // let any string pose as a validated trust domain; bundles are few, so scan.
        self.by_domain
            .iter()
            .find(|(td, _)| td.as_str() == domain)
            .map(|(_, a)| a.as_slice())
    }

    pub fn is_empty(&self) -> bool {
        self.by_domain.values().all(|a| a.is_empty())
    }

    pub fn domains(&self) -> impl Iterator<Item = &TrustDomain> {
        self.by_domain.keys()
    }
}

/// One accepted peer identity pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityMatch {
    /// Exactly this ID.
    Exact(SpiffeId),
    /// Any ID whose URI starts with this string (`spiffe://td/ns/prod/`).
    Prefix(String),
    /// Any ID in this trust domain.
    TrustDomain(TrustDomain),
}

impl IdentityMatch {
    pub fn matches(&self, id: &SpiffeId) -> bool {
        match self {
            IdentityMatch::Exact(want) => want == id,
            IdentityMatch::Prefix(p) => id.as_str().starts_with(p.as_str()),
            IdentityMatch::TrustDomain(td) => id.trust_domain_str() == td.as_str(),
        }
    }
}

/// The identities a verifier accepts: any of the listed patterns; an empty list accepts every
/// ID whose trust domain has a bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityMatcher(pub Vec<IdentityMatch>);

impl IdentityMatcher {
    pub fn any() -> IdentityMatcher {
        IdentityMatcher(Vec::new())
    }

    pub fn allows(&self, id: &SpiffeId) -> bool {
        self.0.is_empty() || self.0.iter().any(|m| m.matches(id))
    }
}

/// Verifies peers' X509-SVIDs; see the module doc.
#[derive(Debug)]
pub struct SvidVerifier {
    bundles: TrustBundles,
    matcher: IdentityMatcher,
    algs: WebPkiSupportedAlgorithms,
    client_auth_mandatory: bool,
}

impl SvidVerifier {
    /// `client_auth_mandatory` only matters on a listener (`require_client_certificate`).
    pub fn new(
        bundles: TrustBundles,
        matcher: IdentityMatcher,
        provider: &rustls::crypto::CryptoProvider,
        client_auth_mandatory: bool,
    ) -> SvidVerifier {
        SvidVerifier {
            bundles,
            matcher,
            algs: provider.signature_verification_algorithms,
            client_auth_mandatory,
        }
    }

    /// The whole check; returns the peer's ID.
    pub fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        usage: webpki::KeyUsage,
    ) -> Result<SpiffeId, CertRefusal> {
        let id = check_leaf(end_entity)?;
        let anchors = self
            .bundles
            .get(id.trust_domain_str())
            .ok_or_else(|| CertRefusal::UnknownTrustDomain(id.trust_domain()))?;
        let ee = webpki::EndEntityCert::try_from(end_entity).map_err(refusal_of_webpki)?;
        ee.verify_for_usage(
            self.algs.all,
            anchors,
            intermediates,
            now,
            usage,
            None,
            None,
        )
        .map_err(refusal_of_webpki)?;
        if !self.matcher.allows(&id) {
            return Err(CertRefusal::IdentityNotAllowed(id));
        }
        Ok(id)
    }
}

fn refusal_of_webpki(e: webpki::Error) -> CertRefusal {
    use webpki::Error as W;
    match e {
        // A CA with the anchor's name but another key: still not signed by the bundle.
        W::UnknownIssuer | W::InvalidSignatureForPublicKey => CertRefusal::UnknownCa,
        W::CertExpired { .. } => CertRefusal::Expired,
        W::CertNotValidYet { .. } => CertRefusal::NotYetValid,
        W::CaUsedAsEndEntity => CertRefusal::CaAsLeaf,
        W::RequiredEkuNotFoundContext(_) => {
            CertRefusal::BadKeyUsage("extended key usage lacks this side's purpose")
        }
        other => CertRefusal::Malformed(format!("{other:?}")),
    }
}

impl From<CertRefusal> for Error {
    /// Standard certificate errors where one fits (so the peer gets the usual alert:
    /// unknown_ca, certificate_expired), otherwise the refusal itself, carried as `Other`.
    fn from(r: CertRefusal) -> Error {
        match r {
            CertRefusal::NoCertificate => Error::NoCertificatesPresented,
            CertRefusal::UnknownCa => Error::InvalidCertificate(CertificateError::UnknownIssuer),
            CertRefusal::Expired => Error::InvalidCertificate(CertificateError::Expired),
            CertRefusal::NotYetValid => Error::InvalidCertificate(CertificateError::NotValidYet),
            other => {
                Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(other))))
            }
        }
    }
}

impl CertRefusal {
    /// The refusal a rustls error stands for, if it is one.
    pub fn from_rustls(e: &Error) -> Option<CertRefusal> {
        match e {
            Error::NoCertificatesPresented => Some(CertRefusal::NoCertificate),
            Error::InvalidCertificate(c) => Some(match c {
                CertificateError::UnknownIssuer => CertRefusal::UnknownCa,
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    CertRefusal::Expired
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    CertRefusal::NotYetValid
                }
                CertificateError::Other(OtherError(inner)) => {
                    match inner.downcast_ref::<CertRefusal>() {
                        Some(r) => r.clone(),
                        None => CertRefusal::Malformed(inner.to_string()),
                    }
                }
                other => CertRefusal::Malformed(other.to_string()),
            }),
            _ => None,
        }
    }
}

impl ClientCertVerifier for SvidVerifier {
    fn client_auth_mandatory(&self) -> bool {
        self.client_auth_mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // SVID clients have one certificate; hints would only grow the CertificateRequest.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.verify(
            end_entity,
            intermediates,
            now,
            webpki::KeyUsage::client_auth(),
        )?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

impl ServerCertVerifier for SvidVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.verify(
            end_entity,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_matchers() {
        let id = SpiffeId::parse("spiffe://td/ns/prod/sa/web").unwrap();
        let exact = IdentityMatch::Exact(id.clone());
        let prefix = IdentityMatch::Prefix("spiffe://td/ns/prod/".into());
        let other_prefix = IdentityMatch::Prefix("spiffe://td/ns/dev/".into());
        let td = IdentityMatch::TrustDomain(TrustDomain::new("td").unwrap());
        let other_td = IdentityMatch::TrustDomain(TrustDomain::new("td2").unwrap());
        assert!(exact.matches(&id) && prefix.matches(&id) && td.matches(&id));
        assert!(!other_prefix.matches(&id) && !other_td.matches(&id));
        let td_lookalike = SpiffeId::parse("spiffe://td2/ns/prod/sa/web").unwrap();
        assert!(
            !td.matches(&td_lookalike),
            "trust domain match is not a prefix match"
        );
        assert!(IdentityMatcher::any().allows(&id));
        assert!(!IdentityMatcher(vec![other_td, other_prefix.clone()]).allows(&id));
        assert!(IdentityMatcher(vec![other_prefix, exact]).allows(&id));
    }

    #[test]
    fn refusals_survive_the_trip_through_rustls_errors() {
        let all = [
            CertRefusal::NoCertificate,
            CertRefusal::UnknownCa,
            CertRefusal::Expired,
            CertRefusal::NotYetValid,
            CertRefusal::MultipleUriSans(2),
            CertRefusal::CaAsLeaf,
            CertRefusal::IdentityNotAllowed(SpiffeId::parse("spiffe://td/x").unwrap()),
        ];
        for r in all {
            let e: Error = r.clone().into();
            assert_eq!(CertRefusal::from_rustls(&e), Some(r));
        }
    }
}
