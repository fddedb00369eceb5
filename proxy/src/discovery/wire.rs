//! A small DNS client over UDP (RFC 1035): one `A` query, answers parsed with their TTLs
//! (compressed names followed, CNAME records skipped, only the `A` records kept). It asks the
//! nameserver given — an `ip:port` from the cluster's `dns_resolvers`, or those of
//! `/etc/resolv.conf` — and runs only on the control side (the `dns` thread), never on a shard.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

/// What one query returned: the addresses and the smallest TTL among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub addrs: Vec<Ipv4Addr>,
    pub min_ttl: Option<Duration>,
}

/// Why a query failed (the cluster keeps its endpoints).
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("malformed response")]
    Malformed,
    #[error("server failure (rcode {0})")]
    Rcode(u8),
}

/// Encodes a recursive `A` query for `name` with id `id`.
pub fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len().min(63) as u8);
        q.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]); // root; type A; class IN
    q
}

/// Skips a (possibly compressed) name at `at`; returns the offset after it.
fn skip_name(m: &[u8], mut at: usize) -> Option<usize> {
    for _ in 0..128 {
        let len = *m.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xC0 == 0xC0 => return Some(at + 2),
            l => at += 1 + l as usize,
        }
    }
    None
}

fn be16(m: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*m.get(at)?, *m.get(at + 1)?]))
}

/// Parses a response to query `id`: `A` records of the answer section.
pub fn parse(id: u16, m: &[u8]) -> Result<Answer, DnsError> {
    if m.len() < 12 || be16(m, 0) != Some(id) || m[2] & 0x80 == 0 {
        return Err(DnsError::Malformed);
    }
    let rcode = m[3] & 0x0F;
    let mut out = Answer {
        addrs: Vec::new(),
        min_ttl: None,
    };
    match rcode {
        0 => {}
        3 => return Ok(out), // NXDOMAIN: the name has no address
        r => return Err(DnsError::Rcode(r)),
    }
    let qd = be16(m, 4).ok_or(DnsError::Malformed)?;
    let an = be16(m, 6).ok_or(DnsError::Malformed)?;
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(m, at).ok_or(DnsError::Malformed)? + 4;
    }
    for _ in 0..an {
        at = skip_name(m, at).ok_or(DnsError::Malformed)?;
        let kind = be16(m, at).ok_or(DnsError::Malformed)?;
        let ttl = m
            .get(at + 4..at + 8)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(DnsError::Malformed)?;
        let len = be16(m, at + 8).ok_or(DnsError::Malformed)? as usize;
        let data = m.get(at + 10..at + 10 + len).ok_or(DnsError::Malformed)?;
        if kind == 1 && len == 4 {
            out.addrs
                .push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
            let ttl = Duration::from_secs(u64::from(ttl));
            out.min_ttl = Some(out.min_ttl.map_or(ttl, |t| t.min(ttl)));
        }
        at += 10 + len;
    }
    Ok(out)
}

/// Asks `server` for the `A` records of `name`, waiting up to `timeout` (one try).
pub fn resolve(
    server: SocketAddr,
    name: &str,
    id: u16,
    timeout: Duration,
) -> Result<Answer, DnsError> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().unwrap_or(server)
    } else {
        "[::]:0".parse().unwrap_or(server)
    };
    let sock = UdpSocket::bind(bind)?;
    sock.connect(server)?;
    sock.set_read_timeout(Some(timeout))?;
    sock.send(&query(id, name))?;
    let mut buf = [0u8; 1500];
    loop {
        let n = sock.recv(&mut buf)?;
        match parse(id, &buf[..n]) {
            Err(DnsError::Malformed) => continue, // a stray datagram: keep waiting
            r => return r,
        }
    }
}

/// The nameservers of `/etc/resolv.conf` (port 53).
pub fn system_resolvers() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_records_after_a_cname_with_compression() {
        let mut m = query(0x1234, "app.test");
        m[2] = 0x81;
        m[3] = 0x80;
        m[7] = 3; // three answers
                  // CNAME app.test → x (pointer to the question name at 12), then two A records.
        m.extend_from_slice(&[0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 3, 1, b'x', 0]);
        m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 127, 0, 0, 2]);
        m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 9, 0, 4, 127, 0, 0, 3]);
        let a = parse(0x1234, &m).unwrap();
        assert_eq!(
            a.addrs,
            vec![Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)]
        );
        assert_eq!(a.min_ttl, Some(Duration::from_secs(9)));
        assert!(matches!(parse(0x1235, &m), Err(DnsError::Malformed)));
        m[3] = 0x83;
        assert!(parse(0x1234, &m).unwrap().addrs.is_empty());
    }
}
