//! Certificate material from files: [`CertSource`] names the files (identity certificate
//! chains and keys, trust bundles per trust domain) and loads them into a checked
//! [`Material`], or says which file is wrong and why ([`LoadError`]).
//!
//! Checks: each file reads and holds PEM of the right kind; each key matches its certificate;
//! each leaf is within its validity period; an identity marked `svid` passes the X509-SVID leaf
//! rules; each bundle holds at least one CA usable as a trust anchor. Loading is done on the
//! control thread, never on a shard.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::provider;
use super::spiffe_id::{SpiffeId, TrustDomain};
use super::svid::{check_leaf, CertRefusal};
use super::verify::TrustBundles;

/// One certificate chain (leaf first) and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The leaf must be an X509-SVID (a mesh identity, not a web server certificate).
    pub svid: bool,
}

/// A CA bundle file for one trust domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFile {
    pub trust_domain: TrustDomain,
    pub path: PathBuf,
}

/// The files one TLS config is built from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertSource {
    pub identities: Vec<IdentityFiles>,
    pub bundles: Vec<BundleFile>,
}

/// A loaded, checked identity.
#[derive(Debug, Clone)]
pub struct Identity {
    pub certified: Arc<CertifiedKey>,
    /// The SPIFFE ID, when the leaf is an SVID.
    pub id: Option<SpiffeId>,
    pub serial: Box<[u8]>,
}

/// Everything a [`CertSource`] names, loaded and checked.
#[derive(Debug, Clone)]
pub struct Material {
    pub identities: Vec<Identity>,
    pub bundles: TrustBundles,
    /// A hash of every file's bytes: equal fingerprints mean nothing changed.
    pub fingerprint: u64,
}

/// Which file could not be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", file.display())]
pub struct LoadError {
    pub file: PathBuf,
    pub reason: LoadReason,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadReason {
    #[error("cannot read: {0}")]
    Read(std::io::Error),
    #[error("bad PEM: {0}")]
    Pem(String),
    #[error("no CERTIFICATE block")]
    NoCertificate,
    #[error("unusable private key: {0}")]
    BadKey(String),
    #[error("the private key does not match the certificate")]
    KeyMismatch,
    #[error("certificate expired at {0}")]
    Expired(String),
    #[error("certificate not valid before {0}")]
    NotYetValid(String),
    #[error("not an X509-SVID: {0}")]
    NotSvid(CertRefusal),
    #[error("unparsable certificate: {0}")]
    BadCertificate(String),
    #[error("not usable as a trust anchor: {0}")]
    BadAnchor(String),
}

fn err(file: &Path, reason: LoadReason) -> LoadError {
    LoadError {
        file: file.to_path_buf(),
        reason,
    }
}

/// File contents, read once: hashed for change detection, then parsed.
#[derive(Debug)]
pub struct RawFiles {
    files: Vec<(PathBuf, Vec<u8>)>,
}

impl RawFiles {
    pub fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.files.hash(&mut h);
        h.finish()
    }
}

impl CertSource {
    /// Every file named, for the watcher.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        for i in &self.identities {
            v.push(i.cert.clone());
            v.push(i.key.clone());
        }
        v.extend(self.bundles.iter().map(|b| b.path.clone()));
        v
    }

    pub fn read(&self) -> Result<RawFiles, LoadError> {
        let files = self
            .paths()
            .into_iter()
            .map(|p| match std::fs::read(&p) {
                Ok(bytes) => Ok((p, bytes)),
                Err(e) => Err(err(&p, LoadReason::Read(e))),
            })
            .collect::<Result<_, _>>()?;
        Ok(RawFiles { files })
    }

    pub fn load(&self) -> Result<Material, LoadError> {
        let raw = self.read()?;
        self.parse(&raw)
    }

    /// Parses and checks what [`CertSource::read`] returned.
    pub fn parse(&self, raw: &RawFiles) -> Result<Material, LoadError> {
        let mut files = raw.files.iter();
        let mut next = || files.next().expect("read() reads every path in order");
        let mut identities = Vec::new();
        for i in &self.identities {
            let (cert_path, cert_pem) = next();
            let (key_path, key_pem) = next();
            identities.push(load_identity(
                cert_path, cert_pem, key_path, key_pem, i.svid,
            )?);
        }
        let mut bundles = TrustBundles::new();
        for b in &self.bundles {
            let (path, pem) = next();
            let cas = certs(path, pem)?;
            bundles
                .add(b.trust_domain.clone(), &cas)
                .map_err(|e| err(path, LoadReason::BadAnchor(format!("{e:?}"))))?;
        }
        Ok(Material {
            identities,
            bundles,
            fingerprint: raw.fingerprint(),
        })
    }
}

impl Material {
    /// Material from the SPIFFE Workload API: one SVID (DER chain, PKCS#8 key) and the CA
    /// certificates per trust domain, checked like files; `origin` names the source in errors.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        bundles: &[(TrustDomain, Vec<CertificateDer<'static>>)],
        origin: &Path,
        fingerprint: u64,
    ) -> Result<Material, LoadError> {
        let id = identity(chain, key, origin, origin, true)?;
        let mut tb = TrustBundles::new();
        for (td, cas) in bundles {
            if cas.is_empty() {
                return Err(err(origin, LoadReason::NoCertificate));
            }
            tb.add(td.clone(), cas)
                .map_err(|e| err(origin, LoadReason::BadAnchor(format!("{td}: {e:?}"))))?;
        }
        Ok(Material {
            identities: vec![id],
            bundles: tb,
            fingerprint,
        })
    }
}

fn certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| err(path, LoadReason::Pem(e.to_string())))?;
    if certs.is_empty() {
        return Err(err(path, LoadReason::NoCertificate));
    }
    Ok(certs)
}

fn load_identity(
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
    svid: bool,
) -> Result<Identity, LoadError> {
    let chain = certs(cert_path, cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| err(key_path, LoadReason::BadKey(e.to_string())))?;
    identity(chain, key, cert_path, key_path, svid)
}

/// Checks a DER chain (leaf first) and its key: the same rules as files (validity, key match,
/// the X509-SVID rules when `svid`); `cert_path` / `key_path` name the source in errors.
pub fn identity(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_path: &Path,
    key_path: &Path,
    svid: bool,
) -> Result<Identity, LoadError> {
    if chain.is_empty() {
        return Err(err(cert_path, LoadReason::NoCertificate));
    }
    let signer = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| err(key_path, LoadReason::BadKey(e.to_string())))?;
    let (_, leaf) = X509Certificate::from_der(&chain[0])
        .map_err(|e| err(cert_path, LoadReason::BadCertificate(e.to_string())))?;
    let validity = leaf.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now < validity.not_before {
        return Err(err(
            cert_path,
            LoadReason::NotYetValid(validity.not_before.to_string()),
        ));
    }
    if now > validity.not_after {
        return Err(err(
            cert_path,
            LoadReason::Expired(validity.not_after.to_string()),
        ));
    }
    let id = if svid {
        Some(check_leaf(&chain[0]).map_err(|r| err(cert_path, LoadReason::NotSvid(r)))?)
    } else {
        None
    };
    let serial = leaf.raw_serial().into();
    let certified = CertifiedKey::new(chain, signer);
    // `InconsistentKeys::Unknown` (a key type that cannot tell its public key) passes: the
    // handshake signature will tell.
    if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
        certified.keys_match()
    {
        return Err(err(key_path, LoadReason::KeyMismatch));
    }
    Ok(Identity {
        certified: Arc::new(certified),
        id,
        serial,
    })
}
