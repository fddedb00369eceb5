//! An upstream status line whose reason phrase has obs-text (bytes ≥ 0x80, allowed by RFC 9112
//! §4) is forwarded as is, over real sockets with curl, and the proxy stays up for the next
//! request. Found by the `response_head` fuzz target: the phrase used to become a span outside
//! the read buffer, and re-encoding it aborted the process. A status code below 100 (`000`,
//! which httparse takes) is a 502.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;

use support::http_proxy_to;

/// Answers each request on each connection with `head` + "ok"; stops after `n` requests.
fn canned_origin(head: &'static [u8], n: usize) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut served = 0;
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while served < n {
                let Ok(k) = s.read(&mut buf) else { break };
                if k == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..k]);
                while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                    seen.drain(..end + 4);
                    let _ = s.write_all(head);
                    let _ = s.write_all(b"ok");
                    served += 1;
                }
            }
            if served >= n {
                return;
            }
        }
    });
    addr
}

fn curl(url: &str) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "5", url])
        .output()
        .expect("curl runs");
    let text = out.stdout;
    let status = String::from_utf8_lossy(&text[..text.len().min(12)]).to_string();
    (status, text)
}

#[test]
fn an_obs_text_reason_phrase_is_forwarded_and_the_proxy_survives() {
    let origin = canned_origin(b"HTTP/1.1 200 Gr\xfc\xdfe\r\nContent-Length: 2\r\n\r\n", 4);
    let (_server, addr) = http_proxy_to(origin, "");
    for _ in 0..3 {
        let (status, raw) = curl(&format!("http://{addr}/"));
        assert_eq!(status, "HTTP/1.1 200", "{}", String::from_utf8_lossy(&raw));
        assert!(
            raw.windows(6).any(|w| w == b"Gr\xfc\xdfe\r"),
            "reason phrase not forwarded as is: {}",
            String::from_utf8_lossy(&raw)
        );
        assert!(
            raw.ends_with(b"\r\n\r\nok"),
            "{}",
            String::from_utf8_lossy(&raw)
        );
    }
}

#[test]
fn a_status_below_100_is_a_502() {
    let origin = canned_origin(b"HTTP/1.1 000 Zero\r\nContent-Length: 2\r\n\r\n", 1);
    let (_server, addr) = http_proxy_to(origin, "");
    let (status, raw) = curl(&format!("http://{addr}/"));
    assert_eq!(status, "HTTP/1.1 502", "{}", String::from_utf8_lossy(&raw));
}
