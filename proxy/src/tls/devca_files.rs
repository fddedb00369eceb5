//! `shardcar certs init|issue` on disk: a development CA in a directory (`ca.pem`,
//! `ca-key.pem`) and SVIDs issued from it (`<name>.pem`, `<name>-key.pem`). Keys are written
//! with mode 0600; an existing CA is never overwritten without `force`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::devca::{DevCa, SvidSpec};
use super::spiffe_id::{SpiffeId, TrustDomain};

pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca-key.pem";

/// Writes a new root for `td` into `dir`; returns the certificate path.
pub fn init(dir: &Path, td: &TrustDomain, valid: Duration, force: bool) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let cert = dir.join(CA_CERT);
    if cert.exists() && !force {
        return Err(format!(
            "{} exists (pass --force to replace the CA)",
            cert.display()
        ));
    }
    let ca = DevCa::new(td, valid).map_err(|e| e.to_string())?;
    write(&dir.join(CA_KEY), &ca.key_pem, 0o600)?;
    write(&cert, &ca.cert_pem, 0o644)?;
    Ok(cert)
}

/// What `issue` wrote.
#[derive(Debug)]
pub struct IssuedFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub serial: u64,
}

/// Issues an SVID for `id` from the CA in `ca_dir`, written to `out_dir` as `<name>.pem` and
/// `<name>-key.pem` (`name` defaults to the ID's last path segment).
pub fn issue(
    ca_dir: &Path,
    out_dir: &Path,
    id: &SpiffeId,
    name: Option<&str>,
    dns: &[String],
    valid: Duration,
) -> Result<IssuedFiles, String> {
    let read = |f: &str| {
        let p = ca_dir.join(f);
        std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))
    };
    let ca = DevCa::load(&read(CA_CERT)?, &read(CA_KEY)?)?;
    if id.trust_domain_str() != ca.trust_domain.as_str() {
        return Err(format!(
            "{id} is not in the CA's trust domain {}",
            ca.trust_domain
        ));
    }
    let name = name
        .map(str::to_string)
        .or_else(|| {
            id.path()
                .rsplit('/')
                .next()
                .filter(|s| !s.is_empty())
                .map(Into::into)
        })
        .unwrap_or_else(|| "svid".into());
    let mut spec = SvidSpec::new(id, valid);
    spec.dns = dns.to_vec();
    let issued = ca.issue(&spec).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let cert = out_dir.join(format!("{name}.pem"));
    let key = out_dir.join(format!("{name}-key.pem"));
    write(&key, &issued.key_pem, 0o600)?;
    write(&cert, &issued.cert_pem, 0o644)?;
    Ok(IssuedFiles {
        cert,
        key,
        serial: issued.serial,
    })
}

/// Writes through a temporary file and a rename, so a watcher never sees half a file.
fn write(path: &Path, contents: &str, mode: u32) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let e = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(e)?;
    f.write_all(contents.as_bytes()).map_err(e)?;
    std::fs::rename(&tmp, path).map_err(e)
}
