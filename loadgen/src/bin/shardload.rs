//! `shardload`: command-line front end. All logic lives in the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use shardload::findmax::{find_max, Search};
use shardload::{Mode, Plan, Protocol, Stop, Target, TlsOptions};

fn dur(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

/// A thread-per-core HTTP load generator with coordinated-omission-free latency.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Target URLs (http:// or https://), used round-robin.
    #[arg(required = true)]
    urls: Vec<String>,
    /// Open loop: requests per second, on a fixed schedule.
    #[arg(long, conflicts_with = "concurrency")]
    rps: Option<f64>,
    /// Closed loop: requests in flight.
    #[arg(long)]
    concurrency: Option<u64>,
    /// Connections (total over all shards). Default: concurrency/streams, or 10 in open loop.
    #[arg(short, long)]
    connections: Option<u64>,
    /// Shard threads (each a pinned io_uring runtime).
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Measured duration (after the warm-up).
    #[arg(short, long, value_parser = dur, conflicts_with = "requests")]
    duration: Option<Duration>,
    /// Measured request count, instead of a duration.
    #[arg(short = 'n', long)]
    requests: Option<u64>,
    /// Warm-up, excluded from the statistics.
    #[arg(long, value_parser = dur, default_value = "0s")]
    warmup: Duration,
    /// Per-request timeout.
    #[arg(long, value_parser = dur, default_value = "10s")]
    timeout: Duration,
    /// Use HTTP/2 (h2c by prior knowledge, or ALPN h2 with TLS).
    #[arg(long)]
    h2: bool,
    /// Concurrent streams per h2 connection.
    #[arg(long, default_value_t = 1)]
    streams: u64,
    /// Use TLS even for http:// URLs.
    #[arg(long)]
    tls: bool,
    /// CA certificate (PEM) to trust.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS.
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Client key (PEM) for mTLS.
    #[arg(long)]
    key: Option<PathBuf>,
    /// TLS server name (default: the URL host).
    #[arg(long)]
    sni: Option<String>,
    /// Do not verify the server certificate.
    #[arg(long)]
    insecure: bool,
    /// HTTP method.
    #[arg(short, long, default_value = "GET")]
    method: String,
    /// Extra header, "Name: value" (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Request body of this many bytes.
    #[arg(long, conflicts_with = "body_file")]
    body_size: Option<usize>,
    /// Request body from a file.
    #[arg(long)]
    body_file: Option<PathBuf>,
    /// Write the result document (schema: loadgen/SCHEMA.md).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the raw latency histogram (HdrHistogram interval log, µs).
    #[arg(long)]
    hdr: Option<PathBuf>,
    /// Search the highest open-loop rate meeting --slo-p99.
    #[arg(long, requires = "slo_p99")]
    find_max: bool,
    /// p99 latency objective for --find-max.
    #[arg(long, value_parser = dur)]
    slo_p99: Option<Duration>,
    /// Starting rate for --find-max.
    #[arg(long, default_value_t = 1000.0)]
    find_start: f64,
    /// Most runs --find-max may make.
    #[arg(long, default_value_t = 16)]
    find_steps: usize,
    /// No progress line.
    #[arg(short, long)]
    quiet: bool,
}

fn plan(a: &Args) -> anyhow::Result<Plan> {
    let targets = a
        .urls
        .iter()
        .map(|u| Target::parse(u))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let protocol = if a.h2 { Protocol::H2 } else { Protocol::Http1 };
    let streams = if a.h2 { a.streams } else { 1 };
    let mode = match (a.rps, a.concurrency, a.find_max) {
        (_, _, true) => Mode::Open { rps: a.find_start },
        (Some(r), None, _) => Mode::Open { rps: r },
        (None, Some(c), _) => Mode::Closed { concurrency: c },
        (None, None, _) => anyhow::bail!("give --rps (open loop) or --concurrency (closed loop)"),
        (Some(_), Some(_), _) => unreachable!("clap forbids both"),
    };
    let connections = match (a.connections, mode) {
        (Some(c), _) => c,
        (None, Mode::Closed { concurrency }) => concurrency.div_ceil(streams),
        (None, Mode::Open { .. }) => 10,
    };
    let mode = match mode {
        // Closed loop: concurrency must be a whole number of connections x streams.
        Mode::Closed { concurrency } if a.connections.is_none() => Mode::Closed {
            concurrency: concurrency.div_ceil(streams) * streams,
        },
        m => m,
    };
    let stop = match (a.duration, a.requests) {
        (_, Some(n)) => Stop::Requests(n),
        (Some(d), None) => Stop::Duration(d),
        (None, None) => Stop::Duration(Duration::from_secs(10)),
    };
    let body = match (&a.body_size, &a.body_file) {
        (Some(n), _) => Bytes::from(vec![b'x'; *n]),
        (None, Some(f)) => Bytes::from(std::fs::read(f).with_context(|| f.display().to_string())?),
        (None, None) => Bytes::new(),
    };
    let headers = a
        .headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| anyhow::anyhow!("header {h:?} must be 'Name: value'"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let tls = (a.tls || targets.iter().any(|t| t.https)).then(|| TlsOptions {
        ca: a.ca.clone(),
        cert: a.cert.clone(),
        key: a.key.clone(),
        sni: a.sni.clone(),
        insecure: a.insecure,
    });
    Ok(Plan {
        targets,
        method: a.method.to_uppercase(),
        headers,
        body,
        protocol,
        tls,
        mode,
        stop,
        warmup: a.warmup,
        timeout: a.timeout,
        connections,
        streams,
        shards: a.shards,
        progress: !a.quiet,
    })
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    let p = plan(&a)?;
    let out = if a.find_max {
        let slo = a.slo_p99.expect("clap requires it").as_secs_f64() * 1e6;
        let s = Search {
            slo_p99_us: slo,
            start_rps: a.find_start,
            max_steps: a.find_steps,
        };
        find_max(&p, &s, |st| {
            eprintln!(
                "  step: target {:.0} rps → achieved {:.0}, p99 {:.0} µs, errors {}: {}",
                st.target_rps,
                st.achieved_rps,
                st.p99_us,
                st.errors,
                if st.ok { "ok" } else { "fail" }
            )
        })?
    } else {
        shardload::run(&p)?
    };
    print!("{}", shardload::table::render(&out.report));
    if let Some(e) = &out.stats.first_error {
        println!("  first error: {e}");
    }
    if let Some(w) = shardload::table::warning_banner(&out.report) {
        eprintln!("{w}");
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&out.report)?)
            .with_context(|| path.display().to_string())?;
    }
    if let Some(path) = &a.hdr {
        shardload::run::write_hdr(&out.stats, path)?;
    }
    Ok(())
}
