//! `shardorigin`: the test origin as a program (fixed responses, delays, stalls, h1/h2c, TLS).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use shardload::origin::{Origin, OriginOptions};

fn dur(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

/// Fixed-response HTTP/1.1 + h2c (+TLS) origin for tests and benchmarks.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Response body bytes.
    #[arg(long, default_value_t = 64)]
    body_size: usize,
    /// Delay before every response.
    #[arg(long, value_parser = dur, default_value = "0s")]
    delay: Duration,
    /// Stall all responses once: when (after start) …
    #[arg(long, value_parser = dur, requires = "stall_for")]
    stall_at: Option<Duration>,
    /// … and for how long.
    #[arg(long, value_parser = dur)]
    stall_for: Option<Duration>,
    /// Reset every Nth request on a connection.
    #[arg(long)]
    reset_every: Option<u64>,
    /// TLS certificate chain (PEM); enables TLS.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    #[arg(long)]
    key: Option<PathBuf>,
    /// Require client certificates signed by this CA (mTLS).
    #[arg(long, requires = "cert")]
    client_ca: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let a = Args::parse();
    let tls = match (&a.cert, &a.key) {
        (Some(c), Some(k)) => {
            let ca = a
                .client_ca
                .as_ref()
                .map(|p| shardload::tls::load_certs(p))
                .transpose()?;
            Some(Arc::new(shardload::tls::server_config(
                shardload::tls::load_certs(c)?,
                shardload::tls::load_key(k)?,
                ca,
            )?))
        }
        _ => None,
    };
    let origin = Origin::start(OriginOptions {
        bind: a.listen,
        shards: a.shards,
        body_size: a.body_size,
        delay: a.delay,
        stall: a.stall_at.zip(a.stall_for),
        reset_every: a.reset_every,
        tls,
    })?;
    println!("shardorigin listening on {}", origin.addr());
    origin.wait();
    Ok(())
}
