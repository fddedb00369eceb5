//! `shardcar tap`: the client side of `GET /tap`, like `linkerd tap` — asks a running
//! shardcar's admin API for the requests matching the filters and prints each as one row of a
//! live table (or, with `--json`, the JSON line as it came).
//!
//! ```text
//! METHOD  AUTHORITY             PATH                            STATUS  FLAGS  LATENCY     UPSTREAM               PEER
//! GET     backend               /checkout/cart                  200     -      1.204ms     127.0.0.1:8080         -
//! ```

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// What to ask `GET /tap` for and how to print it.
#[derive(Debug, Clone, Default)]
pub struct TapQuery {
    pub admin: Option<SocketAddr>,
    pub authority: Option<String>,
    pub path_prefix: Option<String>,
    pub method: Option<String>,
    pub status: Option<u16>,
    pub identity: Option<String>,
    pub rate: Option<u32>,
    /// Stop after this many requests.
    pub count: Option<u64>,
    /// Print the JSON lines instead of the table.
    pub json: bool,
}

const DEFAULT_ADMIN: &str = "127.0.0.1:15000";

/// `%XX` for everything but RFC 3986 unreserved characters and `/`.
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl TapQuery {
    /// The request target: `/tap?authority=…&path_prefix=…`.
    pub fn target(&self) -> String {
        let mut q = Vec::new();
        let mut add = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                q.push(format!("{k}={}", encode(&v)));
            }
        };
        add("authority", self.authority.clone());
        add("path_prefix", self.path_prefix.clone());
        add("method", self.method.clone());
        add("status", self.status.map(|s| s.to_string()));
        add("identity", self.identity.clone());
        add("rate", self.rate.map(|r| r.to_string()));
        if q.is_empty() {
            "/tap".into()
        } else {
            format!("/tap?{}", q.join("&"))
        }
    }
}

/// Column titles and widths (the last column is not padded).
const COLUMNS: [(&str, usize); 8] = [
    ("METHOD", 6),
    ("AUTHORITY", 20),
    ("PATH", 30),
    ("STATUS", 6),
    ("FLAGS", 5),
    ("LATENCY", 10),
    ("UPSTREAM", 21),
    ("PEER", 0),
];

fn line_of(cells: [&str; 8]) -> String {
    let mut out = String::new();
    for (i, (c, (_, w))) in cells.iter().zip(COLUMNS).enumerate() {
        if i > 0 {
            out.push_str("  ");
        }
        out.push_str(&if w == 0 { c.to_string() } else { cell(c, w) });
    }
    out
}

/// The table's title row.
pub fn header() -> String {
    line_of(COLUMNS.map(|(t, _)| t))
}

/// `s` cut to `w` characters (the last one `…` when cut), padded to `w`.
fn cell(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n <= w {
        format!("{s:<w$}")
    } else {
        let mut c: String = s.chars().take(w - 1).collect();
        c.push('…');
        c
    }
}

/// One table row for a `GET /tap` JSON line.
pub fn row(line: &str) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not a tap line ({e}): {line}"))?;
    let s = |k: &str| match v[k].as_str() {
        None | Some("") => "-".to_string(),
        Some(x) => x.to_string(),
    };
    let us = v["duration_us"].as_u64().unwrap_or(0);
    let latency = if us >= 1_000_000 {
        format!("{:.3}s", us as f64 / 1e6)
    } else {
        format!("{:.3}ms", us as f64 / 1e3)
    };
    Ok(line_of([
        &s("method"),
        &s("authority"),
        &s("path"),
        &v["status"].as_u64().unwrap_or(0).to_string(),
        &s("flags"),
        &latency,
        &s("upstream"),
        &s("peer_identity"),
    ]))
}

/// Streams the tap to `out` until the admin server closes or `count` rows were printed.
pub fn run(q: &TapQuery, out: &mut impl Write) -> Result<(), String> {
    let admin = q
        .admin
        .unwrap_or_else(|| DEFAULT_ADMIN.parse().expect("a valid address"));
    let mut s = TcpStream::connect_timeout(&admin, Duration::from_secs(5))
        .map_err(|e| format!("cannot reach the admin API at {admin}: {e}"))?;
    let target = q.target();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nhost: {admin}\r\nconnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    let mut status_line = String::new();
    r.read_line(&mut status_line).map_err(|e| e.to_string())?;
    let status = status_line.split_whitespace().nth(1).unwrap_or("");
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).map_err(|e| e.to_string())? == 0 || h.trim().is_empty() {
            break;
        }
    }
    if status != "200" {
        let mut body = String::new();
        let _ = io::Read::read_to_string(&mut r, &mut body);
        return Err(format!("GET {target}: {} {}", status, body.trim()));
    }
    let w = |out: &mut dyn Write, s: &str| writeln!(out, "{s}").and_then(|_| out.flush());
    if !q.json {
        w(out, &header()).map_err(|e| e.to_string())?;
    }
    let mut printed = 0u64;
    for line in r.lines() {
        if q.count.is_some_and(|c| printed >= c) {
            break;
        }
        let line = line.map_err(|e| e.to_string())?;
        if line.is_empty() {
            continue;
        }
        let text = if q.json { line } else { row(&line)? };
        if w(out, &text).is_err() {
            return Ok(()); // stdout closed (`| head`)
        }
        printed += 1;
        if q.count.is_some_and(|c| printed >= c) {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_an_encoded_query() {
        let q = TapQuery {
            authority: Some("backend".into()),
            path_prefix: Some("/checkout".into()),
            identity: Some("spiffe://td/ns/a b".into()),
            status: Some(200),
            ..Default::default()
        };
        assert_eq!(
            q.target(),
            "/tap?authority=backend&path_prefix=/checkout&status=200&identity=spiffe%3A//td/ns/a%20b"
        );
        assert_eq!(TapQuery::default().target(), "/tap");
    }

    #[test]
    fn a_tap_line_is_one_aligned_row() {
        let line = r#"{"method":"GET","authority":"backend","path":"/checkout/cart","status":200,"flags":"","duration_us":1204,"upstream":"127.0.0.1:8080","peer_identity":null,"local_identity":null,"headers":{}}"#;
        let r = row(line).unwrap();
        assert_eq!(
            r,
            "GET     backend               /checkout/cart                  200     -      1.204ms     127.0.0.1:8080         -"
        );
        let h = header();
        assert_eq!(
            h,
            "METHOD  AUTHORITY             PATH                            STATUS  FLAGS  LATENCY     UPSTREAM               PEER"
        );
        for (cell, title) in [
            ("backend", "AUTHORITY"),
            ("/checkout", "PATH"),
            ("200", "STATUS"),
            ("1.204ms", "LATENCY"),
            ("127.0.0.1", "UPSTREAM"),
        ] {
            assert_eq!(r.find(cell), h.find(title), "{title}");
        }
        assert!(row("nope").is_err());
    }
}
