//! The refusal matrix at the verifier level (no sockets): each broken SVID fails with its
//! own reason, on both the client-cert and the server-cert side. The socket-level matrix is in
//! `tests/tls_mtls.rs`.

use std::time::Duration;

use rcgen::KeyUsagePurpose;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use time::OffsetDateTime;

use super::devca::{DevCa, SvidSpec};
use super::*;

const DAY: Duration = Duration::from_secs(86_400);

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn td(s: &str) -> TrustDomain {
    TrustDomain::new(s).unwrap()
}

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

struct Pki {
    ca: DevCa,
    other: DevCa,
    verifier: SvidVerifier,
}

fn pki(matcher: IdentityMatcher) -> Pki {
    let ca = DevCa::new(&td("example.org"), DAY).unwrap();
    let other = DevCa::new(&td("example.org"), DAY).unwrap();
    let mut bundles = TrustBundles::new();
    bundles
        .add(td("example.org"), &[der(&ca.cert_pem)])
        .unwrap();
    let verifier = SvidVerifier::new(bundles, matcher, &provider(), true);
    Pki {
        ca,
        other,
        verifier,
    }
}

fn check(p: &Pki, ca: &DevCa, spec: &SvidSpec) -> Result<SpiffeId, CertRefusal> {
    let leaf = der(&ca.issue(spec).unwrap().cert_pem);
    let now = UnixTime::now();
    let as_client = p
        .verifier
        .verify(&leaf, &[], now, webpki::KeyUsage::client_auth());
    let as_server = p
        .verifier
        .verify(&leaf, &[], now, webpki::KeyUsage::server_auth());
    assert_eq!(as_client, as_server, "both directions agree");
    as_client
}

#[test]
fn refusal_matrix() {
    let web = id("spiffe://example.org/ns/default/sa/web");
    let p = pki(IdentityMatcher(vec![IdentityMatch::Prefix(
        "spiffe://example.org/ns/default/".into(),
    )]));
    let good = SvidSpec::new(&web, DAY);
    assert_eq!(check(&p, &p.ca, &good), Ok(web.clone()));

    let now = OffsetDateTime::now_utc();
    let mut expired = good.clone();
    expired.not_before = now - time::Duration::days(2);
    expired.not_after = now - time::Duration::days(1);
    let mut future = good.clone();
    future.not_before = now + time::Duration::days(1);
    future.not_after = now + time::Duration::days(2);
    let mut two_uris = good.clone();
    two_uris
        .uris
        .push("spiffe://example.org/ns/default/sa/db".into());
    let mut no_uri = good.clone();
    no_uri.uris.clear();
    no_uri.dns = vec!["web.example.org".into()];
    let mut bad_id = good.clone();
    bad_id.uris = vec!["spiffe://example.org/ns//web".into()];
    let mut https = good.clone();
    https.uris = vec!["https://example.org/ns/default/sa/web".into()];
    let mut ca_leaf = good.clone();
    ca_leaf.is_ca = true;
    ca_leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let mut cert_sign = good.clone();
    cert_sign.key_usages.push(KeyUsagePurpose::KeyCertSign);
    let mut no_ds = good.clone();
    no_ds.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
    let mut no_ku = good.clone();
    no_ku.key_usages.clear();
    let mut wrong_id = good.clone();
    wrong_id.uris = vec!["spiffe://example.org/ns/prod/sa/web".into()];
    let mut other_td = good.clone();
    other_td.uris = vec!["spiffe://evil.org/ns/default/sa/web".into()];

    use CertRefusal::*;
    let cases: Vec<(&str, &DevCa, &SvidSpec, CertRefusal)> = vec![
        ("wrong CA", &p.other, &good, UnknownCa),
        ("expired", &p.ca, &expired, Expired),
        ("not yet valid", &p.ca, &future, NotYetValid),
        ("two URI SANs", &p.ca, &two_uris, MultipleUriSans(2)),
        ("no URI SAN", &p.ca, &no_uri, NoSpiffeId),
        ("CA as leaf", &p.ca, &ca_leaf, CaAsLeaf),
        (
            "keyCertSign",
            &p.ca,
            &cert_sign,
            BadKeyUsage("keyCertSign set on a leaf"),
        ),
        (
            "no digitalSignature",
            &p.ca,
            &no_ds,
            BadKeyUsage("digitalSignature not set"),
        ),
        (
            "no key usage",
            &p.ca,
            &no_ku,
            BadKeyUsage("no key usage extension"),
        ),
        (
            "wrong SPIFFE ID",
            &p.ca,
            &wrong_id,
            IdentityNotAllowed(id("spiffe://example.org/ns/prod/sa/web")),
        ),
        (
            "unknown trust domain",
            &p.ca,
            &other_td,
            UnknownTrustDomain(td("evil.org")),
        ),
    ];
    for (name, ca, spec, want) in cases {
        assert_eq!(check(&p, ca, spec), Err(want), "{name}");
    }
    assert!(matches!(check(&p, &p.ca, &bad_id), Err(BadSpiffeId { .. })));
    assert!(matches!(check(&p, &p.ca, &https), Err(BadSpiffeId { .. })));
}

#[test]
fn a_domains_bundle_cannot_vouch_for_another_domain() {
    // One CA trusted for example.org signs an SVID claiming evil.org, which has its own bundle.
    let ca = DevCa::new(&td("example.org"), DAY).unwrap();
    let evil_ca = DevCa::new(&td("evil.org"), DAY).unwrap();
    let mut bundles = TrustBundles::new();
    bundles
        .add(td("example.org"), &[der(&ca.cert_pem)])
        .unwrap();
    bundles
        .add(td("evil.org"), &[der(&evil_ca.cert_pem)])
        .unwrap();
    let v = SvidVerifier::new(bundles, IdentityMatcher::any(), &provider(), true);
    let claim = SvidSpec::new(&id("spiffe://evil.org/admin"), DAY);
    let leaf = der(&ca.issue(&claim).unwrap().cert_pem);
    let r = v.verify(&leaf, &[], UnixTime::now(), webpki::KeyUsage::client_auth());
    assert_eq!(r, Err(CertRefusal::UnknownCa));
    let leaf = der(&evil_ca.issue(&claim).unwrap().cert_pem);
    let r = v.verify(&leaf, &[], UnixTime::now(), webpki::KeyUsage::client_auth());
    assert_eq!(r, Ok(id("spiffe://evil.org/admin")));
}

#[test]
fn dev_ca_round_trips_through_pem() {
    let ca = DevCa::new(&td("example.org"), DAY).unwrap();
    let again = DevCa::load(&ca.cert_pem, &ca.key_pem).unwrap();
    assert_eq!(again.trust_domain, td("example.org"));
    let p = Pki {
        verifier: SvidVerifier::new(
            {
                let mut b = TrustBundles::new();
                b.add(td("example.org"), &[der(&ca.cert_pem)]).unwrap();
                b
            },
            IdentityMatcher::any(),
            &provider(),
            true,
        ),
        ca,
        other: again,
    };
    let web = id("spiffe://example.org/web");
    // Issued by the reloaded CA, verified against the original's certificate.
    assert_eq!(check(&p, &p.other, &SvidSpec::new(&web, DAY)), Ok(web));
}

#[test]
fn sni_resolver_picks_exact_then_wildcard_then_default() {
    let ca = DevCa::new(&td("example.org"), DAY).unwrap();
    let load = |name: &str| {
        let issued = ca
            .issue(&SvidSpec::new(
                &id(&format!("spiffe://example.org/{name}")),
                DAY,
            ))
            .unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
        let signer = provider().key_provider.load_private_key(key).unwrap();
        std::sync::Arc::new(rustls::sign::CertifiedKey::new(
            vec![der(&issued.cert_pem)],
            signer,
        ))
    };
    let (d, a, w) = (load("default"), load("api"), load("wild"));
    let r = server::SniResolver::new(
        d.clone(),
        &[
            ("API.example.com".into(), a.clone()),
            ("*.example.com".into(), w.clone()),
        ],
    );
    let same =
        |x: &std::sync::Arc<rustls::sign::CertifiedKey>,
         y: &std::sync::Arc<rustls::sign::CertifiedKey>| { std::sync::Arc::ptr_eq(x, y) };
    assert!(same(r.pick(Some("api.example.com")), &a));
    assert!(same(r.pick(Some("www.example.com")), &w));
    assert!(same(r.pick(Some("a.b.example.com")), &d), "one label only");
    assert!(same(r.pick(Some("example.com")), &d));
    assert!(same(r.pick(None), &d));
}
