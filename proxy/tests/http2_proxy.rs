//! HTTP/2 clients (curl, nghttp, h2load) through the proxy to an HTTP/1.1 origin: h2c prior
//! knowledge on `protocol: http` (detected) and `protocol: http2` listeners, request and
//! response bodies checksummed at 1 B, 64 KiB and 16 MiB, trailers both ways, h2→h1 header
//! translation, local answers, and a short h2load run with zero errors.

mod support;

use std::net::SocketAddr;

use shardcar::{Config, Server};
use support::origin::{expected_pattern, Origin};
use support::tools::{have, run, TempDir};

fn proxy(protocol: &str, origin: SocketAddr) -> (Server, SocketAddr) {
    let yaml = format!(
        "listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: {protocol}
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {{path: /direct}}
            direct_response: {{status: 201, body: \"made\\n\"}}
          - match: {{prefix: \"/\"}}
            cluster: app
            response_headers_to_add: [{{name: x-via, value: shardcar}}]
      - name: none
        domains: [\"nothing.test\"]
        routes:
          - match: {{path: /only-this}}
            direct_response: {{status: 200}}
clusters:
  - name: app
    endpoints: [\"{origin}\"]
    connect_timeout: 500ms
"
    );
    let server = Server::start(Config::from_yaml(&yaml).unwrap(), 1).expect("proxy starts");
    let addr = server.addr("web").unwrap();
    (server, addr)
}

fn curl(args: &[&str]) -> (String, Vec<u8>) {
    let dir = TempDir::new("curl");
    let hdr = dir.file("headers");
    let body = dir.file("body");
    let mut all = vec![
        "-sS",
        "--max-time",
        "20",
        "-D",
        hdr.to_str().unwrap(),
        "-o",
        body.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let out = run("curl", &all);
    assert!(out.status.success(), "curl {args:?} failed");
    (
        std::fs::read_to_string(hdr).unwrap(),
        std::fs::read(body).unwrap(),
    )
}

/// What the origin's `/big/N` sends: the 64 KiB pattern block repeated.
fn big_pattern(n: usize) -> Vec<u8> {
    expected_pattern(65536)
        .into_iter()
        .cycle()
        .take(n)
        .collect()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn curl_prior_knowledge_is_detected_on_an_http_listener_and_http1_still_works() {
    if !have("curl", &["--version"]) {
        return;
    }
    let origin = Origin::start("o1");
    let (_p, addr) = proxy("http", origin.addr);
    let url = format!("http://{addr}/name");
    let (head, body) = curl(&["--http2-prior-knowledge", &url]);
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    assert_eq!(body, b"o1");
    assert_eq!(
        header(&head, "x-seen-host"),
        Some(&*addr.to_string()),
        "{head}"
    );
    assert_eq!(header(&head, "x-seen-proto"), Some("http"));
    assert_eq!(header(&head, "x-seen-xff"), Some("127.0.0.1"));
    assert_eq!(header(&head, "x-via"), Some("shardcar"));
    assert!(header(&head, "x-seen-request-id").is_some_and(|v| v.len() == 36));
    let (head, body) = curl(&["--http1.1", &url]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"o1");
}

#[test]
fn h2_bodies_of_1b_64k_16m_round_trip_checksummed() {
    if !have("curl", &["--version"]) {
        return;
    }
    let origin = Origin::start("o1");
    let (_p, addr) = proxy("http2", origin.addr);
    let dir = TempDir::new("bodies");
    for (i, n) in [1usize, 64 * 1024, 16 << 20].into_iter().enumerate() {
        let data = support::payload(n, i as u64 + 7);
        let f = dir.file(&format!("up{i}"));
        std::fs::write(&f, &data).unwrap();
        let at = format!("@{}", f.display());
        // Upload: h2 DATA → HTTP/1 Content-Length body → echoed back as DATA.
        let (head, body) = curl(&[
            "--http2-prior-knowledge",
            "--data-binary",
            &at,
            &format!("http://{addr}/echo"),
        ]);
        assert!(head.starts_with("HTTP/2 200"), "{head}");
        assert_eq!(header(&head, "x-seen-framing"), Some("length"));
        assert!(
            body == data,
            "echo of {n} bytes differs ({} back)",
            body.len()
        );
        // Download: Content-Length and chunked responses.
        let (_, body) = curl(&["--http2-prior-knowledge", &format!("http://{addr}/big/{n}")]);
        assert!(body == big_pattern(n), "/big/{n}: {} bytes", body.len());
        let (_, body) = curl(&[
            "--http2-prior-knowledge",
            &format!("http://{addr}/chunked/{n}"),
        ]);
        assert!(
            body == expected_pattern(n),
            "/chunked/{n}: {} bytes",
            body.len()
        );
    }
}

#[test]
fn nghttp_gets_chunked_response_trailers_as_trailing_headers() {
    if !have("nghttp", &["--version"]) {
        return;
    }
    let origin = Origin::start("o1");
    let (_p, addr) = proxy("http2", origin.addr);
    let out = run("nghttp", &["-nv", &format!("http://{addr}/chunked/100000")]);
    assert!(out.status.success());
    let v = String::from_utf8_lossy(&out.stdout);
    // The trailer arrives in a HEADERS frame with END_STREAM (flags 0x05) after the data.
    let trailer_at = v.find("x-checksum: ok").expect("trailer relayed");
    assert!(v[trailer_at..].contains("recv HEADERS frame"), "{v}");
    assert!(v[trailer_at..].contains("flags=0x05"), "{v}");
}

/// Python `h2` client: a body without content-length (streamed chunked upstream) with
/// trailers; the origin echoes body and trailers back.
fn h2req(
    addr: SocketAddr,
    method: &str,
    path: &str,
    n: usize,
    extra: &[&str],
) -> serde_json::Value {
    let a = addr.to_string();
    let n = n.to_string();
    let script = support::tools::script("h2req.py");
    let mut args = vec![script.as_str(), &a, method, path, &n];
    args.extend_from_slice(extra);
    let out = run(&support::tools::python(), &args);
    assert!(out.status.success(), "h2req failed");
    serde_json::from_slice(&out.stdout).expect("h2req prints JSON")
}

#[test]
fn request_trailers_reach_the_origin_as_chunked_trailers_and_te_trailers_is_sent() {
    if !support::tools::have_python_modules("h2") {
        return;
    }
    let origin = Origin::start("o1");
    let (_p, addr) = proxy("http2", origin.addr);
    for n in [1usize, 64 * 1024, 1 << 20] {
        let r = h2req(
            addr,
            "POST",
            "/echo-trailers",
            n,
            &["trailer=x-req-sum:12345", "header=te:trailers"],
        );
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["headers"]["x-seen-framing"], "chunked", "{r}");
        assert_eq!(r["headers"]["x-seen-te"], "trailers", "{r}");
        assert_eq!(r["body_len"], n, "{r}");
        assert_eq!(r["body_sha256"], r["sent_sha256"], "{r}");
        assert_eq!(r["trailers"]["x-echo-x-req-sum"], "12345", "{r}");
        assert_eq!(r["trailers"]["x-checksum"], "ok", "{r}");
    }
}

#[test]
fn local_answers_over_h2_no_route_and_direct_response() {
    if !have("curl", &["--version"]) {
        return;
    }
    let origin = Origin::start("o1");
    let (_p, addr) = proxy("http2", origin.addr);
    let (head, body) = curl(&["--http2-prior-knowledge", &format!("http://{addr}/direct")]);
    assert!(head.starts_with("HTTP/2 201"), "{head}");
    assert_eq!(body, b"made\n");
    let (head, _) = curl(&[
        "--http2-prior-knowledge",
        "-H",
        "host: nothing.test",
        &format!("http://{addr}/x"),
    ]);
    assert!(head.starts_with("HTTP/2 404"), "{head}");
    assert_eq!(header(&head, "x-shardcar-flag"), Some("NR"));
}

#[test]
fn h2load_short_run_has_no_errors() {
    if !have("h2load", &["--version"]) {
        return;
    }
    let origin = Origin::start("o1");
    let (_p, addr) = proxy("http", origin.addr);
    let out = run(
        "h2load",
        &[
            "-n",
            "2000",
            "-c",
            "4",
            "-m",
            "10",
            &format!("http://{addr}/name"),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored"),
        "{text}"
    );
    assert!(text.contains("status codes: 2000 2xx"), "{text}");
}
