//! mTLS over real sockets: a TLS echo server built from `shardcar::tls` on 127.0.0.1:0,
//! driven by `openssl s_client`, `curl` and our own client. The refusal matrix checks that
//! each broken client SVID is refused by the server with its own reason, and each broken
//! server SVID by the client.

mod tls_support;

use std::process::{Command, Stdio};

use rcgen::KeyUsagePurpose;
use shardcar::tls::{
    ClientAuth, ClientSettings, HandshakeError, IdentityMatch, IdentityMatcher, MinVersion,
    ServerSettings,
};
use time::OffsetDateTime;
use tls_support::*;

fn server_settings(pki: &TestPki) -> ServerSettings {
    let mut s = ServerSettings::new(certified(&pki.server));
    s.client_auth = ClientAuth::Svid {
        bundles: pki.bundles(),
        matcher: IdentityMatcher(vec![IdentityMatch::Prefix(
            "spiffe://example.org/ns/default/".into(),
        )]),
        required: true,
    };
    s
}

fn client_settings(pki: &TestPki) -> ClientSettings {
    let mut c = ClientSettings::new(pki.bundles());
    c.client_cert = Some(certified(&pki.client));
    c.expected = IdentityMatcher(vec![IdentityMatch::Exact(id(SERVER_ID))]);
    c
}

fn openssl(args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed (.ci/run installs it)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn openssl_s_client_sees_tls13_alpn_and_the_svid_chain() {
    let pki = TestPki::new();
    let srv = TlsEchoServer::start(server_settings(&pki).build().unwrap());
    let port = srv.addr.port().to_string();
    let connect = format!("127.0.0.1:{port}");
    let (ca, cert, key) = (
        pki.path("ca.pem"),
        pki.path("client.pem"),
        pki.path("client-key.pem"),
    );
    let (ok, out) = openssl(
        &[
            "s_client",
            "-connect",
            &connect,
            "-servername",
            "localhost",
            "-alpn",
            "h2,http/1.1",
            "-CAfile",
            ca.to_str().unwrap(),
            "-cert",
            cert.to_str().unwrap(),
            "-key",
            key.to_str().unwrap(),
            "-showcerts",
            "-ign_eof",
        ],
        "ping bye\n",
    );
    assert!(ok, "{out}");
    assert!(out.contains("TLSv1.3"), "{out}");
    assert!(out.contains("ALPN protocol: h2"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    assert!(
        out.contains("i:O = example.org, CN = Shardcar development CA for example.org"),
        "{out}"
    );
    assert!(out.contains("ping bye"), "the echo came back: {out}");
    match srv.outcome(0) {
        Outcome::Ok(f) => {
            assert_eq!(f.peer, Some(id(CLIENT_ID)));
            assert_eq!(f.sni.as_deref(), Some("localhost"));
            assert_eq!(f.alpn_str(), Some("h2"));
        }
        o => panic!("{o:?}"),
    }

    // Without a client certificate: refused, and the server names the reason.
    let (_, out) = openssl(
        &[
            "s_client",
            "-connect",
            &connect,
            "-CAfile",
            ca.to_str().unwrap(),
            "-ign_eof",
        ],
        "ping bye\n",
    );
    assert!(
        !out.contains("ping bye"),
        "no echo without a client cert: {out}"
    );
    match srv.outcome(1) {
        Outcome::Refused { label, .. } => assert_eq!(label, "no_cert"),
        o => panic!("{o:?}"),
    }

    // TLS 1.2 is off by default, on when asked for.
    let (ok, out) = openssl(&["s_client", "-connect", &connect, "-tls1_2"], "");
    assert!(!ok || !out.contains("Protocol  : TLSv1.2"), "{out}");
    let mut s12 = server_settings(&pki);
    s12.min_version = MinVersion::Tls12;
    let srv12 = TlsEchoServer::start(s12.build().unwrap());
    let connect12 = format!("127.0.0.1:{}", srv12.addr.port());
    let (ok, out) = openssl(
        &[
            "s_client",
            "-connect",
            &connect12,
            "-tls1_2",
            "-CAfile",
            ca.to_str().unwrap(),
            "-cert",
            cert.to_str().unwrap(),
            "-key",
            key.to_str().unwrap(),
            "-ign_eof",
        ],
        "ping bye\n",
    );
    assert!(
        ok && out.contains("TLSv1.2") && out.contains("ping bye"),
        "{out}"
    );
}

#[test]
fn curl_with_client_certificate() {
    let pki = TestPki::new();
    let srv = TlsEchoServer::start(server_settings(&pki).build().unwrap());
    let port = srv.addr.port();
    let url = format!("https://localhost:{port}/");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let curl = |with_cert: bool| {
        let mut c = Command::new("curl");
        c.args([
            "-sv",
            "--http1.1",
            "--max-time",
            "5",
            "--resolve",
            &resolve,
            "--cacert",
        ])
        .arg(pki.path("ca.pem"));
        if with_cert {
            c.arg("--cert").arg(pki.path("client.pem"));
            c.arg("--key").arg(pki.path("client-key.pem"));
        }
        let out = c.arg(&url).output().expect("curl is installed");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, body, log) = curl(true);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(body, format!("peer={CLIENT_ID} alpn=http/1.1\n"));
    assert!(log.contains("TLSv1.3"), "{log}");
    assert!(log.contains("http/1.1"), "ALPN shown: {log}");
    let (code, body, _) = curl(false);
    assert_ne!(code, Some(0));
    assert!(body.is_empty());
    match srv.outcome(1) {
        Outcome::Refused { label, .. } => assert_eq!(label, "no_cert"),
        o => panic!("{o:?}"),
    }
}

#[test]
fn our_client_gets_facts_and_an_echo() {
    let pki = TestPki::new();
    let srv = TlsEchoServer::start(server_settings(&pki).build().unwrap());
    let mut c = client_settings(&pki);
    c.alpn = vec![b"http/1.1".to_vec()];
    let r = client(srv.addr, c.build().unwrap(), "server.example.org");
    let facts = r.handshake.unwrap();
    assert_eq!(facts.peer, Some(id(SERVER_ID)));
    assert_eq!(facts.alpn_str(), Some("http/1.1"));
    assert_eq!(facts.sni.as_deref(), Some("server.example.org"));
    assert_eq!(facts.version, Some(rustls::ProtocolVersion::TLSv1_3));
    assert_eq!(r.echo.unwrap().unwrap(), b"ping");
    match srv.outcome(0) {
        Outcome::Ok(f) => assert_eq!(f.peer, Some(id(CLIENT_ID))),
        o => panic!("{o:?}"),
    }
}

#[test]
fn session_tickets_resume_and_can_be_switched_off() {
    let pki = TestPki::new();
    for tickets in [true, false] {
        let mut s = server_settings(&pki);
        s.session_tickets = tickets;
        let srv = TlsEchoServer::start(s.build().unwrap());
        let cfg = client_settings(&pki).build().unwrap();
        let first = client(srv.addr, cfg.clone(), "localhost");
        assert!(!first.handshake.unwrap().resumed);
        let second = client(srv.addr, cfg, "localhost");
        let f = second.handshake.unwrap();
        assert_eq!(f.resumed, tickets, "tickets {tickets}");
        assert_eq!(second.echo.unwrap().unwrap(), b"ping");
        match srv.outcome(1) {
            Outcome::Ok(f) => {
                assert_eq!(f.resumed, tickets);
                assert_eq!(
                    f.peer,
                    Some(id(CLIENT_ID)),
                    "a resumed session keeps the peer ID"
                );
            }
            o => panic!("{o:?}"),
        }
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Broken SVIDs, one rule each; `(name, issuer is the other CA, spec, expected label)`.
fn broken(
    pki: &TestPki,
    base: &str,
) -> Vec<(
    &'static str,
    bool,
    shardcar::tls::devca::SvidSpec,
    &'static str,
)> {
    let good = pki.spec(base);
    let mut expired = good.clone();
    expired.not_before = now() - time::Duration::days(2);
    expired.not_after = now() - time::Duration::days(1);
    let mut future = good.clone();
    future.not_before = now() + time::Duration::days(1);
    future.not_after = now() + time::Duration::days(2);
    let mut wrong_id = good.clone();
    wrong_id.uris = vec!["spiffe://example.org/ns/prod/sa/intruder".into()];
    let mut two = good.clone();
    two.uris
        .push("spiffe://example.org/ns/default/sa/other".into());
    let mut ca = good.clone();
    ca.is_ca = true;
    ca.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
    ];
    vec![
        ("wrong CA", true, good, "unknown_ca"),
        ("expired", false, expired, "expired"),
        ("not yet valid", false, future, "not_yet_valid"),
        ("wrong SPIFFE ID", false, wrong_id, "identity_not_allowed"),
        ("two URI SANs", false, two, "multiple_uri_sans"),
        ("CA as leaf", false, ca, "ca_as_leaf"),
    ]
}

#[test]
fn server_refuses_each_broken_client_svid_with_its_reason() {
    let pki = TestPki::new();
    let other = shardcar::tls::devca::DevCa::new(&td(), DAY).unwrap();
    let srv = TlsEchoServer::start(server_settings(&pki).build().unwrap());
    let mut cases = broken(&pki, CLIENT_ID);
    cases.insert(0, ("no client cert", false, pki.spec(CLIENT_ID), "no_cert"));
    for (n, (name, by_other, spec, label)) in cases.into_iter().enumerate() {
        let mut c = client_settings(&pki);
        c.client_cert = if name == "no client cert" {
            None
        } else {
            let ca = if by_other { &other } else { &pki.ca };
            Some(certified(&ca.issue(&spec).unwrap()))
        };
        let r = client(srv.addr, c.build().unwrap(), "localhost");
        // TLS 1.3: the client's handshake completes; the refusal arrives as an alert.
        let echo = r.echo.expect("client handshake completes in TLS 1.3");
        let err = echo.expect_err(name).to_string();
        assert!(err.contains("fatal alert"), "{name}: {err}");
        match srv.outcome(n) {
            Outcome::Refused {
                label: got,
                message,
            } => {
                assert_eq!(got, label, "{name}: {message}");
            }
            o => panic!("{name}: accepted: {o:?}"),
        }
    }
    // And a good one still passes.
    let r = client(
        srv.addr,
        client_settings(&pki).build().unwrap(),
        "localhost",
    );
    assert_eq!(r.echo.unwrap().unwrap(), b"ping");
}

#[test]
fn client_refuses_each_broken_server_svid_with_its_reason() {
    let pki = TestPki::new();
    let other = shardcar::tls::devca::DevCa::new(&td(), DAY).unwrap();
    for (name, by_other, spec, label) in broken(&pki, SERVER_ID) {
        let ca = if by_other { &other } else { &pki.ca };
        let mut s = server_settings(&pki);
        s.default_cert = certified(&ca.issue(&spec).unwrap());
        let srv = TlsEchoServer::start(s.build().unwrap());
        let mut c = client_settings(&pki);
        c.expected = IdentityMatcher(vec![IdentityMatch::Prefix(
            "spiffe://example.org/ns/default/".into(),
        )]);
        let r = client(srv.addr, c.build().unwrap(), "localhost");
        match r.handshake {
            Err(HandshakeError::Refused(refusal)) => assert_eq!(refusal.label(), label, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        // The server hears our alert.
        match srv.outcome(0) {
            Outcome::Refused { label, message } => {
                assert_eq!(label, "peer_alert", "{name}: {message}")
            }
            o => panic!("{name}: {o:?}"),
        }
    }
}

#[test]
fn sni_selects_the_certificate() {
    let pki = TestPki::new();
    let api = pki
        .ca
        .issue(&pki.spec("spiffe://example.org/ns/default/sa/api"))
        .unwrap();
    let mut s = server_settings(&pki);
    s.sni_certs = vec![("api.example.org".into(), certified(&api))];
    let srv = TlsEchoServer::start(s.build().unwrap());
    let c = ClientSettings {
        expected: IdentityMatcher::any(),
        ..client_settings(&pki)
    }
    .build()
    .unwrap();
    let peer = |sni: &str| {
        client(srv.addr, c.clone(), sni)
            .handshake
            .unwrap()
            .peer
            .unwrap()
    };
    assert_eq!(
        peer("api.example.org").as_str(),
        "spiffe://example.org/ns/default/sa/api"
    );
    assert_eq!(peer("other.example.org").as_str(), SERVER_ID);
}
