//! X509-SVID leaf checks, as the SPIFFE X509-SVID spec says, and [`CertRefusal`]: every reason a
//! peer certificate is refused, with a stable label for counters and logs.
//!
//! A leaf SVID carries exactly one URI SAN, a valid SPIFFE ID; it is not a CA (`cA` false);
//! its key usage is present, includes `digitalSignature` and excludes `keyCertSign` and
//! `cRLSign`. The chain, the validity period and the trust domain's bundle are checked in
//! [`super::verify`]; this module only reads the leaf (one x509-parser pass, no allocation
//! beyond the returned ID).

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::spiffe_id::{SpiffeId, SpiffeIdError, TrustDomain};

/// Why a peer's certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertRefusal {
    #[error("no client certificate presented")]
    NoCertificate,
    #[error("certificate is not signed by the trust bundle of its trust domain (unknown CA)")]
    UnknownCa,
    #[error("certificate has expired")]
    Expired,
    #[error("certificate is not yet valid")]
    NotYetValid,
    #[error("certificate has no URI SAN (no SPIFFE ID)")]
    NoSpiffeId,
    #[error("certificate has {0} URI SANs; an SVID has exactly one")]
    MultipleUriSans(usize),
    #[error("URI SAN {uri:?} is not a SPIFFE ID: {error}")]
    BadSpiffeId { uri: String, error: SpiffeIdError },
    #[error("a CA certificate is used as a leaf")]
    CaAsLeaf,
    #[error("bad key usage: {0}")]
    BadKeyUsage(&'static str),
    #[error("no trust bundle for trust domain {0}")]
    UnknownTrustDomain(TrustDomain),
    #[error("peer identity {0} is not one of the expected identities")]
    IdentityNotAllowed(SpiffeId),
    #[error("malformed certificate: {0}")]
    Malformed(String),
}

impl CertRefusal {
    /// A short stable label, for counters by reason and the access log.
    pub fn label(&self) -> &'static str {
        match self {
            CertRefusal::NoCertificate => "no_cert",
            CertRefusal::UnknownCa => "unknown_ca",
            CertRefusal::Expired => "expired",
            CertRefusal::NotYetValid => "not_yet_valid",
            CertRefusal::NoSpiffeId => "no_spiffe_id",
            CertRefusal::MultipleUriSans(_) => "multiple_uri_sans",
            CertRefusal::BadSpiffeId { .. } => "bad_spiffe_id",
            CertRefusal::CaAsLeaf => "ca_as_leaf",
            CertRefusal::BadKeyUsage(_) => "bad_key_usage",
            CertRefusal::UnknownTrustDomain(_) => "unknown_trust_domain",
            CertRefusal::IdentityNotAllowed(_) => "identity_not_allowed",
            CertRefusal::Malformed(_) => "malformed",
        }
    }
}

/// The SPIFFE ID of a leaf that passes the leaf rules (not the chain: see `verify`).
pub fn check_leaf(der: &[u8]) -> Result<SpiffeId, CertRefusal> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| CertRefusal::Malformed(e.to_string()))?;
    let id = spiffe_id_of(&cert)?;
    let bc = cert
        .basic_constraints()
        .map_err(|e| CertRefusal::Malformed(e.to_string()))?;
    if bc.is_some_and(|bc| bc.value.ca) {
        return Err(CertRefusal::CaAsLeaf);
    }
    let ku = cert
        .key_usage()
        .map_err(|e| CertRefusal::Malformed(e.to_string()))?
        .ok_or(CertRefusal::BadKeyUsage("no key usage extension"))?;
    if ku.value.key_cert_sign() {
        return Err(CertRefusal::BadKeyUsage("keyCertSign set on a leaf"));
    }
    if ku.value.crl_sign() {
        return Err(CertRefusal::BadKeyUsage("cRLSign set on a leaf"));
    }
    if !ku.value.digital_signature() {
        return Err(CertRefusal::BadKeyUsage("digitalSignature not set"));
    }
    Ok(id)
}

/// The one URI SAN of a certificate, parsed as a SPIFFE ID.
pub fn spiffe_id_of(cert: &X509Certificate<'_>) -> Result<SpiffeId, CertRefusal> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| CertRefusal::Malformed(e.to_string()))?
        .ok_or(CertRefusal::NoSpiffeId)?;
    let mut uris = san.value.general_names.iter().filter_map(|n| match n {
        GeneralName::URI(u) => Some(*u),
        _ => None,
    });
    let uri = uris.next().ok_or(CertRefusal::NoSpiffeId)?;
    let more = uris.count();
    if more > 0 {
        return Err(CertRefusal::MultipleUriSans(more + 1));
    }
    SpiffeId::parse(uri).map_err(|error| CertRefusal::BadSpiffeId {
        uri: uri.to_string(),
        error,
    })
}

/// The serial number of a certificate, big-endian bytes as encoded.
pub fn serial_of(der: &[u8]) -> Option<Box<[u8]>> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(cert.raw_serial().into())
}
