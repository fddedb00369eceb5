//! The typed run plan: what the CLI (or a test, or the bench harness) asks the engine to do.
//! Targets are resolved here, once, off the data path.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;

/// Open loop (fixed schedule) or closed loop (fixed concurrency).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// `--rps R`: requests at fixed intended times; latency from the intended time.
    Open { rps: f64 },
    /// `--concurrency N`: N requests in flight back to back; latency from the actual send.
    Closed { concurrency: u64 },
}

/// When the measured part of the run ends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stop {
    Duration(Duration),
    Requests(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    H2,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
            Protocol::H2 => "h2",
        }
    }
}

/// Client TLS settings (`--tls --ca --cert --key --sni --insecure`).
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub sni: Option<String>,
    pub insecure: bool,
}

/// One request target, resolved.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: String,
    pub addr: SocketAddr,
    /// `host[:port]` for the Host header / `:authority`.
    pub authority: String,
    /// Host name (for SNI when `--sni` is not given).
    pub host: String,
    pub path: String,
    pub https: bool,
}

impl Target {
    /// Parses `http://host[:port]/path` or `https://…` and resolves the host once.
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let (https, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            anyhow::bail!("URL {url:?} must start with http:// or https://");
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        anyhow::ensure!(!authority.is_empty(), "URL {url:?} has no host");
        let default_port = if https { 443 } else { 80 };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
                Ok(p) => (h, p),
                Err(_) => (authority, default_port),
            },
            _ => (authority, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|e| anyhow::anyhow!("resolving {host}: {e}"))?
            .next()
            .ok_or_else(|| anyhow::anyhow!("{host} resolved to no address"))?;
        Ok(Target {
            url: url.to_string(),
            addr,
            authority: authority.to_string(),
            host: host.to_string(),
            path: path.to_string(),
            https,
        })
    }
}

/// Everything one run needs.
#[derive(Clone, Debug)]
pub struct Plan {
    pub targets: Vec<Target>,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub protocol: Protocol,
    /// `Some` when TLS is used (`--tls` or an https URL).
    pub tls: Option<TlsOptions>,
    pub mode: Mode,
    pub stop: Stop,
    pub warmup: Duration,
    pub timeout: Duration,
    /// Total connections over all shards.
    pub connections: u64,
    /// In-flight requests per connection (h2); 1 for HTTP/1.1.
    pub streams: u64,
    pub shards: usize,
    /// Show a progress line on stderr (only when it is a TTY).
    pub progress: bool,
}

impl Plan {
    /// A plain HTTP/1.1 GET plan against `url` with defaults suitable for tests.
    pub fn get(url: &str, mode: Mode, stop: Stop) -> anyhow::Result<Plan> {
        let t = Target::parse(url)?;
        let tls = t.https.then(TlsOptions::default);
        Ok(Plan {
            targets: vec![t],
            method: "GET".into(),
            headers: Vec::new(),
            body: Bytes::new(),
            protocol: Protocol::Http1,
            tls,
            mode,
            stop,
            warmup: Duration::ZERO,
            timeout: Duration::from_secs(10),
            connections: match mode {
                Mode::Closed { concurrency } => concurrency,
                Mode::Open { .. } => 10,
            },
            streams: 1,
            shards: 1,
            progress: false,
        })
    }

    /// Checks the combinations the CLI cannot express in types.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.targets.is_empty(), "at least one URL is needed");
        anyhow::ensure!(self.connections >= 1, "--connections must be >= 1");
        anyhow::ensure!(self.streams >= 1, "--streams must be >= 1");
        anyhow::ensure!(self.shards >= 1, "--shards must be >= 1");
        anyhow::ensure!(
            self.protocol == Protocol::H2 || self.streams == 1,
            "--streams needs --h2 (HTTP/1.1 has one request in flight per connection)"
        );
        anyhow::ensure!(
            (self.connections as usize) >= self.shards,
            "--connections ({}) must be >= --shards ({})",
            self.connections,
            self.shards
        );
        match self.mode {
            Mode::Open { rps } => anyhow::ensure!(rps > 0.0, "--rps must be > 0"),
            Mode::Closed { concurrency } => anyhow::ensure!(
                concurrency == self.connections * self.streams,
                "closed loop: --concurrency ({concurrency}) must equal connections x streams ({})",
                self.connections * self.streams
            ),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let t = Target::parse("http://127.0.0.1:8080/a/b?c=d").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.path, "/a/b?c=d");
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert!(!t.https);
        let t = Target::parse("https://localhost:9443").unwrap();
        assert_eq!(t.path, "/");
        assert_eq!(t.host, "localhost");
        assert!(t.https);
        assert!(Target::parse("ftp://x/").is_err());
    }
}
