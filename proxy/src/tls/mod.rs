//! TLS and mTLS with SPIFFE identities (rustls 0.23 over monoio streams).
//!
//! - [`spiffe_id`]: `SpiffeId` / `TrustDomain` newtypes, validated per the SPIFFE ID spec.
//! - [`svid`]: X509-SVID leaf rules and [`CertRefusal`], every reason a peer is refused.
//! - [`verify`]: [`SvidVerifier`] (rustls client and server verifier), [`TrustBundles`] per
//!   trust domain, [`IdentityMatcher`] (exact / prefix / trust domain).
//! - [`server`] / [`client`]: settings → `Arc<ServerConfig>` / `Arc<ClientConfig>`.
//! - [`handshake`]: async [`accept`] / [`connect`] over any `AsyncReadRent + AsyncWriteRent`
//!   stream, returning the stream and [`TlsFacts`] (SNI, ALPN, peer ID, serial).
//! - [`sniff`]: [`looks_like_tls`], for PERMISSIVE listeners.
//! - [`source`] / [`watch`]: certificate files → checked material; inotify-driven rebuilds
//!   handed to a callback, bad files rejected with the old material kept.
//! - [`workload`]: the SPIFFE Workload API (`FetchX509SVID` over a unix socket) as a second
//!   identity source, feeding the same cells as file rotation.
//! - [`live`]: the config in force per listener / cluster, swapped by rotation, cached per shard.
//! - [`runtime`]: loads every `tls:` block of a config and starts its watchers.
//! - [`stats`]: per-shard handshake counters by reason.
//! - [`config`]: the `tls:` blocks of listeners and clusters (raw YAML → typed → rustls config).
//! - [`devca`] / [`devca_files`]: a development CA for `shardcar certs` and the tests.
//!
//! Configs are built on the control thread and shared read-only as `Arc`s: a rustls config is
//! immutable and shared by every connection of every shard, and that sharing is what lets a
//! reload be one pointer swap per shard.
//!
//! ## Crypto provider: ring (measured against aws-lc-rs, 2026-12-01)
//! `benches/tls_handshake.rs`: a full TLS 1.3 mTLS handshake in memory, P-256 SVIDs both ways,
//! X25519, no resumption, both SPIFFE verifiers; thread CPU time, one core (taskset), medians of
//! three interleaved runs (ring, aws-lc-rs, ring, …) on a shared 2-CPU machine (load ≈ 6):
//!
//! | per handshake (CPU)          | ring 0.17 | aws-lc-rs 1.19 |
//! |------------------------------|-----------|----------------|
//! | server side                  | 212 µs    | 211 µs         |
//! | client side                  | 235 µs    | 222 µs         |
//! | both ends, one thread        | 473 µs    | 453 µs         |
//! | `svid_verify` (our verifier) | 57 µs     | 55 µs          |
//!
//! So ≈ 4,700 new mTLS handshakes/s per core on the server side with either provider; the
//! difference is within the run-to-run spread (±10 %). aws-lc-sys 0.47 builds with `cc` on
//! x86_64 Linux (no cmake or nasm), but adds a C library build of ~4 CPU-minutes to every clean
//! build; for no measurable gain we stay on ring. `--features aws-lc-rs` switches the provider
//! and the ticketer, to re-measure:
//! `cargo bench -p shardcar [--features aws-lc-rs] --bench tls_handshake -- --warm-up-time 1
//! --measurement-time 3`. `svid_verify` includes one P-256 signature check (leaf by CA).
//!
//! ## Through the proxy (release build, 2026-12-02, commit after 3eda57f)
//! `shardcar --shards 1` pinned to CPU 0, clients pinned to CPU 1, a `direct_response` route
//! (no origin), proxy CPU from `/proc/PID/stat` (utime+stime, 10 ms ticks) around a bounded
//! run; two runs each on the shared 2-CPU machine (load ≈ 11, so wall-clock rates are low and
//! only the CPU figures mean much):
//!
//! | proxy CPU per request, keepalive, `h2load -n 40000 -c 10` | run 1 | run 2 |
//! |-----------------------------------------------------------|-------|-------|
//! | plaintext HTTP/1.1                                        | 12.3 µs | 12.5 µs |
//! | TLS 1.3 HTTP/1.1 (`--h1`, ALPN http/1.1)                   | 16.0 µs | 17.0 µs |
//! | TLS 1.3 HTTP/2 (ALPN h2)                                   | 22.0 µs | 20.5 µs |
//!
//! So TLS adds ≈ 4 µs per small keepalive request (record encryption both ways, rustls
//! buffers), ≈ 33 % over plaintext.
//!
//! | proxy CPU per new handshake, `openssl s_time -new -time 5` | run 1 | run 2 |
//! |------------------------------------------------------------|-------|-------|
//! | TLS 1.3, P-256 server SVID, no client cert                 | 318 µs | 330 µs |
//! | mTLS, client SVID checked by the SPIFFE verifier, no tickets | 460 µs | 457 µs |
//!
//! ≈ 3,100 TLS / 2,200 mTLS new handshakes per second per core on the server side, including
//! accept, the syscalls and connection teardown (the in-memory bench above: 212 µs).
//! Against HAProxy 2.6 / OpenSSL 3 in one run (`make bench-tls`, 2026-12-03, commit 1f05743,
//! `perf-reports/2026-12-03-1f05743-tls/`, same pinning, medians of 5 interleaved reps, other
//! compiles on the box): keepalive TLS 1.3 h1 11.2 vs 13.8 µs proxy CPU per request (0.82×);
//! new mTLS handshakes (P-256, `s_time -new`) 409 vs 670 µs per handshake, i.e. 2,447 vs
//! 1,493 per core (1.64×).
//! The h2 row is h2load's HTTP/2 client against the h2 server, not TLS cost alone.

pub mod client;
pub mod config;
pub mod devca;
pub mod devca_files;
pub mod handshake;
pub mod live;
pub mod runtime;
pub mod server;
pub mod sniff;
pub mod source;
pub mod spiffe_id;
pub mod stats;
pub mod svid;
pub mod verify;
pub mod watch;
pub mod workload;

use std::sync::Arc;

pub use client::ClientSettings;
pub use handshake::{accept, connect, HandshakeError, TlsFacts};
pub use server::{ClientAuth, ServerSettings};
pub use sniff::looks_like_tls;
pub use source::{CertSource, LoadError, Material};
pub use spiffe_id::{SpiffeId, SpiffeIdError, TrustDomain};
pub use svid::CertRefusal;
pub use verify::{IdentityMatch, IdentityMatcher, SvidVerifier, TrustBundles};
pub use watch::{ReloadStats, Reloader};

/// The lowest TLS version a config accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinVersion {
    Tls12,
    #[default]
    Tls13,
}

impl MinVersion {
    pub fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static BOTH: [&rustls::SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static TLS13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            MinVersion::Tls12 => &BOTH,
            MinVersion::Tls13 => &TLS13,
        }
    }
}

/// The crypto provider every config uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    return Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    #[cfg(not(feature = "aws-lc-rs"))]
    Arc::new(rustls::crypto::ring::default_provider())
}

#[cfg(test)]
mod tests;
