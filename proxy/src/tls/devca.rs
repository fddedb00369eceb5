//! A development certificate authority (rcgen, ECDSA P-256): a self-signed root for one trust
//! domain and X509-SVIDs signed by it. Used by `shardcar certs init|issue`, the README quick
//! start and the tests, which also make deliberately broken SVIDs with [`SvidSpec`]'s knobs.
//! Not for production: keys are written unencrypted.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::spiffe_id::{SpiffeId, TrustDomain};

/// A root CA: certificate and key, PEM.
pub struct DevCa {
    pub trust_domain: TrustDomain,
    pub cert_pem: String,
    pub key_pem: String,
    issuer: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa")
            .field("trust_domain", &self.trust_domain)
            .finish()
    }
}

/// An issued certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub serial: u64,
}

/// What to put in a certificate. `SvidSpec::new(id)` is a valid leaf SVID; the fields exist so
/// tests can break one rule at a time.
#[derive(Debug, Clone)]
pub struct SvidSpec {
    /// URI SANs (a valid SVID has exactly one, a SPIFFE ID).
    pub uris: Vec<String>,
    pub dns: Vec<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub is_ca: bool,
    pub key_usages: Vec<KeyUsagePurpose>,
    pub serial: u64,
}

impl SvidSpec {
    /// A leaf SVID for `id`, valid from an hour ago for `valid`.
    pub fn new(id: &SpiffeId, valid: std::time::Duration) -> SvidSpec {
        let now = OffsetDateTime::now_utc();
        SvidSpec {
            uris: vec![id.to_string()],
            dns: Vec::new(),
            not_before: now - Duration::hours(1),
            not_after: now + valid,
            is_ca: false,
            key_usages: vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
                KeyUsagePurpose::KeyAgreement,
            ],
            serial: rand_serial(),
        }
    }
}

/// A positive 63-bit serial from the clock and the process: unique enough for a dev CA.
fn rand_serial() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now()) >> 1
}

fn ca_params(
    td: &TrustDomain,
    valid: std::time::Duration,
) -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, td.as_str());
    dn.push(
        DnType::CommonName,
        format!("Shardcar development CA for {td}"),
    );
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.subject_alt_names = vec![SanType::URI(td.id_string().try_into()?)];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::hours(1);
    p.not_after = now + valid;
    p.serial_number = Some(SerialNumber::from(rand_serial()));
    Ok(p)
}

impl DevCa {
    /// A new root for `td`, valid for `valid`.
    pub fn new(td: &TrustDomain, valid: std::time::Duration) -> Result<DevCa, rcgen::Error> {
        let key = KeyPair::generate()?;
        let issuer = ca_params(td, valid)?.self_signed(&key)?;
        Ok(DevCa {
            trust_domain: td.clone(),
            cert_pem: issuer.pem(),
            key_pem: key.serialize_pem(),
            issuer,
            key,
        })
    }

    /// A root written by [`DevCa::new`] earlier (its trust domain is read from its URI SAN).
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<DevCa, String> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| format!("CA key: {e}"))?;
        let params = CertificateParams::from_ca_cert_pem(cert_pem)
            .map_err(|e| format!("CA certificate: {e}"))?;
        let td = params
            .subject_alt_names
            .iter()
            .find_map(|s| match s {
                SanType::URI(u) => TrustDomain::new(u.as_str()).ok(),
                _ => None,
            })
            .ok_or("CA certificate has no spiffe://trust-domain URI SAN")?;
        // Re-signing the parsed parameters yields the same subject and key, which is all an
        // issued certificate refers to.
        let issuer = params.self_signed(&key).map_err(|e| format!("CA: {e}"))?;
        Ok(DevCa {
            trust_domain: td,
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            issuer,
            key,
        })
    }

    /// A certificate per `spec`, signed by this root, with a fresh P-256 key.
    pub fn issue(&self, spec: &SvidSpec) -> Result<Issued, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, self.trust_domain.as_str());
        p.distinguished_name = dn;
        for u in &spec.uris {
            p.subject_alt_names
                .push(SanType::URI(u.as_str().try_into()?));
        }
        for d in &spec.dns {
            p.subject_alt_names
                .push(SanType::DnsName(d.as_str().try_into()?));
        }
        p.not_before = spec.not_before;
        p.not_after = spec.not_after;
        p.is_ca = if spec.is_ca {
            IsCa::Ca(BasicConstraints::Unconstrained)
        } else {
            IsCa::ExplicitNoCa
        };
        p.key_usages = spec.key_usages.clone();
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.serial_number = Some(SerialNumber::from(spec.serial));
        p.use_authority_key_identifier_extension = true;
        let cert = p.signed_by(&key, &self.issuer, &self.key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial: spec.serial,
        })
    }
}
