//! The `tls:` blocks in the config loader: accepted on every listener protocol and on
//! clusters, and errors that name the full field path and its line.

use super::*;

const BASE: &str = "\
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {prefix: /}
            cluster: app
    tls:
      cert: b.pem
      key: b-key.pem
clusters:
  - name: app
    endpoints: [\"127.0.0.1:80\"]
";

fn err(src: &str) -> String {
    Config::from_yaml(src).unwrap_err().to_string()
}

#[test]
fn tls_blocks_load_and_their_errors_name_field_and_line() {
    let c = Config::from_yaml(BASE).unwrap();
    let t = c.listeners[0].tls.as_ref().unwrap();
    assert_eq!(t.settings.mode, crate::tls::config::TlsMode::Strict);
    let bad = BASE.replace(
        "      key: b-key.pem\n",
        "      key: b-key.pem\n      mode: strict\n",
    );
    assert_eq!(
        err(&bad),
        "listeners[0].tls.mode: \"strict\": expected STRICT or PERMISSIVE at line 14"
    );
    let bad = BASE.replace(
        "      key: b-key.pem\n",
        "      key: b-key.pem\n      ciphers: [x]\n",
    );
    assert!(
        err(&bad).starts_with("listeners[0].tls.ciphers: unknown field `ciphers`"),
        "{}",
        err(&bad)
    );
    let bad = BASE.replace(
        "      key: b-key.pem\n",
        "      key: b-key.pem\n      handshake_timeout: 0s\n",
    );
    assert_eq!(
        err(&bad),
        "listeners[0].tls.handshake_timeout: must be above 0 at line 14"
    );
    let cl = format!("{BASE}    tls:\n      sni: b.example.org\n");
    assert_eq!(
        err(&cl),
        "clusters[0].tls.trust_bundles: a cluster's TLS needs at least one trust bundle at line 17"
    );
    let ok = format!(
        "{BASE}    protocol: auto\n    tls:\n      trust_bundles: {{example.org: ca.pem}}\n"
    );
    let c = Config::from_yaml(&ok).unwrap();
    assert_eq!(c.clusters[0].protocol, UpstreamProtocol::Auto);
    let t = c.clusters[0].tls.as_ref().unwrap();
    assert_eq!(t.settings.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
}
