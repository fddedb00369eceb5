//! mTLS handshake cost, in memory (no sockets, so the figure is crypto + rustls + our SPIFFE
//! verifiers, per core): a full TLS 1.3 handshake with P-256 SVIDs on both sides, X25519, no
//! resumption. Times are this thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), so other work on
//! a shared machine does not count; `server` and `client` count only that side's calls (plus
//! ~1 µs of clock reads), `both` is one thread doing both ends. `svid_verify` is our verifier
//! alone (x509 parse, SVID rules, chain to the bundle).
//!
//! `cargo bench -p shardcar --bench tls_handshake -- --warm-up-time 1 --measurement-time 3`
//! (add `--features aws-lc-rs` for the other provider). Figures: see `tls/mod.rs`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConnection, ServerConnection};
use shardcar::tls::devca::{DevCa, Issued, SvidSpec};
use shardcar::tls::{
    provider, ClientAuth, ClientSettings, IdentityMatch, IdentityMatcher, ServerSettings, SpiffeId,
    SvidVerifier, TrustBundles, TrustDomain,
};

/// This thread's CPU time so far.
fn cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn certified(i: &Issued) -> Arc<CertifiedKey> {
    let chain = vec![CertificateDer::from_pem_slice(i.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(i.key_pem.as_bytes()).unwrap();
    Arc::new(CertifiedKey::new(
        chain,
        provider().key_provider.load_private_key(key).unwrap(),
    ))
}

struct Setup {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    client_leaf: CertificateDer<'static>,
    bundles: TrustBundles,
}

fn setup() -> Setup {
    let td = TrustDomain::new("example.org").unwrap();
    let day = Duration::from_secs(86_400);
    let ca = DevCa::new(&td, day).unwrap();
    let sid = SpiffeId::parse("spiffe://example.org/ns/default/sa/server").unwrap();
    let cid = SpiffeId::parse("spiffe://example.org/ns/default/sa/client").unwrap();
    let server_svid = ca.issue(&SvidSpec::new(&sid, day)).unwrap();
    let client_svid = ca.issue(&SvidSpec::new(&cid, day)).unwrap();
    let mut bundles = TrustBundles::new();
    bundles
        .add(
            td,
            &[CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap()],
        )
        .unwrap();
    let mut s = ServerSettings::new(certified(&server_svid));
    s.session_tickets = false;
    s.client_auth = ClientAuth::Svid {
        bundles: bundles.clone(),
        matcher: IdentityMatcher(vec![IdentityMatch::Prefix(
            "spiffe://example.org/ns/default/".into(),
        )]),
        required: true,
    };
    let mut c = ClientSettings::new(bundles.clone());
    c.client_cert = Some(certified(&client_svid));
    c.expected = IdentityMatcher(vec![IdentityMatch::Exact(sid)]);
    c.resumption = false;
    Setup {
        server: s.build().unwrap(),
        client: c.build().unwrap(),
        client_leaf: CertificateDer::from_pem_slice(client_svid.cert_pem.as_bytes()).unwrap(),
        bundles,
    }
}

/// One handshake; returns (server time, client time).
fn handshake(s: &Setup, buf: &mut Vec<u8>) -> (Duration, Duration) {
    let (mut ts, mut tc) = (Duration::ZERO, Duration::ZERO);
    let t = cpu();
    let mut client =
        ClientConnection::new(s.client.clone(), ServerName::try_from("localhost").unwrap())
            .unwrap();
    tc += cpu() - t;
    let t = cpu();
    let mut server = ServerConnection::new(s.server.clone()).unwrap();
    ts += cpu() - t;
    while client.is_handshaking() || server.is_handshaking() || client.wants_write() {
        let t = cpu();
        buf.clear();
        while client.wants_write() {
            client.write_tls(buf).unwrap();
        }
        tc += cpu() - t;
        let t = cpu();
        let mut input = &buf[..];
        while !input.is_empty() {
            server.read_tls(&mut input).unwrap();
            server.process_new_packets().unwrap();
        }
        buf.clear();
        while server.wants_write() {
            server.write_tls(buf).unwrap();
        }
        ts += cpu() - t;
        let t = cpu();
        let mut input = &buf[..];
        while !input.is_empty() {
            client.read_tls(&mut input).unwrap();
            client.process_new_packets().unwrap();
        }
        tc += cpu() - t;
    }
    assert!(server.peer_certificates().is_some());
    (ts, tc)
}

fn benches(c: &mut Criterion) {
    let s = setup();
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut g = c.benchmark_group("mtls_handshake");
    g.bench_function("server", |b| {
        b.iter_custom(|n| (0..n).map(|_| handshake(&s, &mut buf).0).sum())
    });
    g.bench_function("client", |b| {
        b.iter_custom(|n| (0..n).map(|_| handshake(&s, &mut buf).1).sum())
    });
    g.bench_function("both", |b| {
        b.iter_custom(|n| {
            let t = cpu();
            for _ in 0..n {
                handshake(&s, &mut buf);
            }
            cpu() - t
        })
    });
    g.finish();
    let v = SvidVerifier::new(s.bundles.clone(), IdentityMatcher::any(), &provider(), true);
    c.bench_function("svid_verify", |b| {
        b.iter_custom(|n| {
            let t = cpu();
            for _ in 0..n {
                v.verify(
                    &s.client_leaf,
                    &[],
                    UnixTime::now(),
                    webpki::KeyUsage::client_auth(),
                )
                .unwrap();
            }
            cpu() - t
        })
    });
}

criterion_group!(tls, benches);
criterion_main!(tls);
