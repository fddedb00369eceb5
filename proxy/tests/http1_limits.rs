//! Configured HTTP limits over real sockets: the upstream response header count.

mod support;

use support::client::Client;
use support::http_proxy_to;
use support::origin::Origin;

#[test]
fn too_many_upstream_response_headers_is_a_502_that_says_why() {
    let origin = Origin::start("a");
    let (server, addr) = http_proxy_to(origin.addr, "");
    let mut c = Client::connect(addr);
    // The origin adds content-length and nothing else: 99 extra headers make 100.
    let r = c.get("/headers/99");
    assert_eq!((r.status, r.text().as_str()), (200, "many headers"));
    let r = c.get("/headers/100");
    assert_eq!(r.status, 502);
    assert_eq!(r.header("x-shardcar-flag"), Some("UPE"));
    assert_eq!(
        r.text(),
        "upstream response headers exceed max_response_headers\n"
    );
    server.shutdown();
}

#[test]
fn max_response_headers_raises_the_limit() {
    let origin = Origin::start("a");
    let (server, addr) = http_proxy_to(origin.addr, "    max_response_headers: 128\n");
    let mut c = Client::connect(addr);
    let r = c.get("/headers/120");
    assert_eq!((r.status, r.text().as_str()), (200, "many headers"));
    assert_eq!(r.header("x-h-119"), Some("v"));
    server.shutdown();
}
