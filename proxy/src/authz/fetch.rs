//! Fetching a JWKS through a cluster (`jwksUri` + `jwksCluster`): one blocking HTTP/1.0 GET to
//! the cluster's first endpoint, at config load on the control side — never on a shard. A
//! reload (and a `Server::swap` with a freshly loaded config) fetches again, which is how keys
//! rotate; there is no timer of its own.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Largest JWKS accepted.
const MAX_BODY: usize = 1 << 20;

/// `http://host[:port]/path` → (host header, path).
pub fn split_uri(uri: &str) -> Result<(&str, &str), String> {
    let rest = uri
        .strip_prefix("http://")
        .ok_or_else(|| format!("{uri:?}: only http:// URIs (TLS to the key server: not yet)"))?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if host.is_empty() {
        return Err(format!("{uri:?} has no host"));
    }
    Ok((host, if path.is_empty() { "/" } else { path }))
}

/// GETs `uri`'s path from `endpoint` with `uri`'s host; the body of a 200.
pub fn fetch(endpoint: SocketAddr, uri: &str, timeout: Duration) -> Result<String, String> {
    let (host, path) = split_uri(uri)?;
    let io = |e: std::io::Error| format!("fetching {uri} from {endpoint}: {e}");
    let mut s = TcpStream::connect_timeout(&endpoint, timeout).map_err(io)?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/json\r\nUser-Agent: shardcar\r\n\r\n"
    );
    s.write_all(request.as_bytes()).map_err(io)?;
    let mut raw = Vec::new();
    s.take(MAX_BODY as u64 + 16 * 1024)
        .read_to_end(&mut raw)
        .map_err(io)?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("fetching {uri}: no complete response head"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head.split(' ').nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!(
            "fetching {uri} from {endpoint}: status {status:?}, expected 200"
        ));
    }
    let body = &raw[end + 4..];
    if body.len() > MAX_BODY {
        return Err(format!("fetching {uri}: body over {MAX_BODY} bytes"));
    }
    String::from_utf8(body.to_vec()).map_err(|_| format!("fetching {uri}: body is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        assert_eq!(
            split_uri("http://idp.local:8080/keys").unwrap(),
            ("idp.local:8080", "/keys")
        );
        assert_eq!(split_uri("http://idp").unwrap(), ("idp", "/"));
        assert!(split_uri("https://idp/keys").is_err());
        assert!(split_uri("http:///keys").is_err());
    }
}
