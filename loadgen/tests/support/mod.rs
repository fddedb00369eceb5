//! Test builders: an in-process origin, TLS material, a lock that keeps timing-sensitive runs
//! from overlapping each other inside one test binary.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use shardload::origin::{Origin, OriginOptions};
use shardload::{Mode, Plan, Stop};

static TIMING: Mutex<()> = Mutex::new(());

/// Serialises tests whose assertions depend on timing.
pub fn timing() -> MutexGuard<'static, ()> {
    TIMING.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn origin(f: impl FnOnce(&mut OriginOptions)) -> Origin {
    let mut o = OriginOptions::default();
    f(&mut o);
    Origin::start(o).expect("origin starts")
}

pub fn open(url: &str, rps: f64, secs: f64) -> Plan {
    Plan::get(
        url,
        Mode::Open { rps },
        Stop::Duration(Duration::from_secs_f64(secs)),
    )
    .unwrap()
}

pub fn closed(url: &str, concurrency: u64, secs: f64) -> Plan {
    Plan::get(
        url,
        Mode::Closed { concurrency },
        Stop::Duration(Duration::from_secs_f64(secs)),
    )
    .unwrap()
}

/// A CA, a server certificate for `localhost` and a client certificate, as PEM files.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn pki(name: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let dir = std::env::temp_dir().join(format!("shardload-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf = |names: Vec<String>| {
        let k = KeyPair::generate().unwrap();
        let c = CertificateParams::new(names)
            .unwrap()
            .signed_by(&k, &ca, &ca_key)
            .unwrap();
        (c.pem(), k.serialize_pem())
    };
    let (sc, sk) = leaf(vec!["localhost".into()]);
    let (cc, ck) = leaf(vec!["client.test".into()]);
    let w = |f: &str, s: &str| {
        let p = dir.join(f);
        std::fs::write(&p, s).unwrap();
        p
    };
    Pki {
        ca: w("ca.pem", &ca.pem()),
        server_cert: w("server.pem", &sc),
        server_key: w("server.key", &sk),
        client_cert: w("client.pem", &cc),
        client_key: w("client.key", &ck),
        dir,
    }
}

/// The origin's TLS config from `pki`; with `mtls`, client certificates are required.
pub fn server_tls(p: &Pki, mtls: bool) -> Arc<rustls::ServerConfig> {
    let ca = mtls.then(|| shardload::tls::load_certs(&p.ca).unwrap());
    Arc::new(
        shardload::tls::server_config(
            shardload::tls::load_certs(&p.server_cert).unwrap(),
            shardload::tls::load_key(&p.server_key).unwrap(),
            ca,
        )
        .unwrap(),
    )
}
