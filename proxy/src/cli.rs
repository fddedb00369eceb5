//! Command line: `shardcar [--config FILE] [--shards N]` runs the proxy; `shardcar validate FILE`
//! checks a config and exits non-zero with the field path and line of the first problem;
//! `shardcar intercept install|uninstall|show` manages the transparent-capture rules;
//! `shardcar certs init|issue` writes a development CA and SVIDs; `shardcar tap` prints the
//! requests a running one serves.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::parse_u32;
use crate::intercept::{self, Cidr, InboundPorts};

#[derive(Debug, Parser)]
#[command(
    name = "shardcar",
    version,
    about = "A thread-per-core io_uring sidecar proxy"
)]
pub struct Cli {
    /// Config file (YAML). Without it the embedded default runs (15001 outbound, 15006 inbound).
    #[arg(long, short = 'c', global = true)]
    pub config: Option<PathBuf>,
    /// xDS bootstrap (YAML: node, xDS cluster, static resources); instead of `--config`.
    #[arg(long, conflicts_with = "config")]
    pub bootstrap: Option<PathBuf>,
    /// Number of shards (threads, one per CPU). Default: every CPU this process may use.
    #[arg(long)]
    pub shards: Option<usize>,
    /// Do not watch the config file for changes (SIGHUP and `POST /reload` still reload).
    #[arg(long)]
    pub no_watch: bool,
    /// Binary upgrade: start beside the running shardcar PID (listeners share its ports with
    /// SO_REUSEPORT), then send it SIGTERM so it stops accepting and drains; the admin ports
    /// are taken over when it exits.
    #[arg(long, value_name = "PID")]
    pub upgrade_from: Option<u32>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a config file without starting anything.
    Validate {
        /// The file to check.
        file: PathBuf,
    },
    /// Print a live table of the requests a running shardcar serves (its admin `GET /tap`).
    Tap(TapArgs),
    /// Transparent capture rules (iptables/nft, REDIRECT/TPROXY) for this host or namespace.
    Intercept {
        #[command(subcommand)]
        action: InterceptAction,
    },
    /// A development CA and SPIFFE X.509-SVIDs (not for production: keys are unencrypted).
    Certs {
        #[command(subcommand)]
        action: CertsAction,
    },
}

/// `shardcar tap`: filters (all must match) and output.
#[derive(Debug, Args)]
pub struct TapArgs {
    /// The admin API of the shardcar to tap.
    #[arg(long, default_value = "127.0.0.1:15000")]
    pub admin: std::net::SocketAddr,
    /// Exact authority (Host / :authority), case-insensitive.
    #[arg(long)]
    pub authority: Option<String>,
    /// Path prefix.
    #[arg(long)]
    pub path: Option<String>,
    /// Exact method.
    #[arg(long)]
    pub method: Option<String>,
    /// Exact response status.
    #[arg(long)]
    pub status: Option<u16>,
    /// Exact peer identity (SPIFFE ID).
    #[arg(long)]
    pub identity: Option<String>,
    /// Requests a second, whole process (default 100, at most 10000); the rest are dropped.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Exit after this many requests.
    #[arg(long, short = 'n')]
    pub count: Option<u64>,
    /// Print the JSON lines instead of the table.
    #[arg(long)]
    pub json: bool,
}

impl TapArgs {
    pub fn query(&self) -> crate::admin::tap_client::TapQuery {
        crate::admin::tap_client::TapQuery {
            admin: Some(self.admin),
            authority: self.authority.clone(),
            path_prefix: self.path.clone(),
            method: self.method.clone(),
            status: self.status,
            identity: self.identity.clone(),
            rate: self.rate,
            count: self.count,
            json: self.json,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum CertsAction {
    /// Create a root CA for a trust domain: DIR/ca.pem and DIR/ca-key.pem.
    Init {
        /// The trust domain, e.g. example.org.
        #[arg(long)]
        trust_domain: String,
        /// Where the CA goes.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Validity, e.g. 365d.
        #[arg(long, default_value = "365d", value_parser = humantime::parse_duration)]
        valid: std::time::Duration,
        /// Replace an existing CA.
        #[arg(long)]
        force: bool,
    },
    /// Issue an X.509-SVID from the CA in --dir: OUT/NAME.pem and OUT/NAME-key.pem.
    Issue {
        /// The identity, e.g. spiffe://example.org/ns/default/sa/web.
        #[arg(long)]
        spiffe_id: String,
        /// The CA's directory.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Where the SVID goes (default: the CA's directory).
        #[arg(long)]
        out: Option<PathBuf>,
        /// File name stem (default: the ID's last path segment).
        #[arg(long)]
        name: Option<String>,
        /// DNS SANs to add (for clients that check a host name, like curl).
        #[arg(long)]
        dns: Vec<String>,
        /// Validity, e.g. 24h.
        #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
        valid: std::time::Duration,
    },
}

#[derive(Debug, Subcommand)]
pub enum InterceptAction {
    /// Install the rules (removing a previous install of ours first).
    Install(InterceptArgs),
    /// Remove every rule, chain, table and policy route of ours, and nothing else.
    Uninstall(InterceptArgs),
    /// Print what of ours is installed.
    Show(InterceptArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Redirect,
    Tproxy,
    /// Outbound through cgroup eBPF hooks instead of netfilter (no inbound capture).
    Ebpf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BackendArg {
    Iptables,
    Nft,
}

#[derive(Debug, Args)]
pub struct InterceptArgs {
    /// How traffic is captured: iptables/nft with REDIRECT or TPROXY inbound (outbound is
    /// always REDIRECT), or `ebpf` (outbound via cgroup hooks, see --cgroup).
    #[arg(long, value_enum, default_value = "redirect")]
    pub mode: ModeArg,
    /// Which tool writes the rules.
    #[arg(long, value_enum, default_value = "iptables")]
    pub backend: BackendArg,
    /// Never capture traffic from this uid (the proxy's user).
    #[arg(long)]
    pub proxy_uid: Option<u32>,
    /// Never capture traffic from this gid.
    #[arg(long)]
    pub proxy_gid: Option<u32>,
    /// Never capture packets with this SO_MARK (the proxy's `upstream_mark`), e.g. 0x539.
    #[arg(long, value_parser = parse_u32)]
    pub mark: Option<u32>,
    /// Inbound ports to capture: `*` or a comma-separated list (empty: no inbound capture).
    #[arg(long, default_value = "*", value_parser = parse_inbound)]
    pub inbound_ports: InboundPorts,
    /// Inbound ports to leave alone (15000, 15001, 15006 and 15020 always are).
    #[arg(long, value_delimiter = ',')]
    pub exclude_inbound_ports: Vec<u16>,
    /// Destination prefixes never captured outbound, e.g. 10.0.0.0/8,169.254.169.254.
    #[arg(long, value_delimiter = ',', value_parser = parse_cidr)]
    pub exclude_outbound_cidrs: Vec<Cidr>,
    /// Destination ports never captured outbound.
    #[arg(long, value_delimiter = ',')]
    pub exclude_outbound_ports: Vec<u16>,
    /// Also write IPv6 rules.
    #[arg(long)]
    pub ipv6: bool,
    /// Print the exact commands instead of running them.
    #[arg(long)]
    pub dry_run: bool,
    /// The proxy's outbound listener port.
    #[arg(long, default_value_t = 15001)]
    pub outbound_port: u16,
    /// The proxy's inbound listener port.
    #[arg(long, default_value_t = 15006)]
    pub inbound_port: u16,
    /// TPROXY: fwmark bit(s) selecting the local route table; must not overlap --mark.
    #[arg(long, default_value = "0x80", value_parser = parse_u32)]
    pub tproxy_mark: u32,
    /// TPROXY: policy route table number.
    #[arg(long, default_value_t = 133)]
    pub route_table: u32,
    /// eBPF: the cgroup v2 directory whose processes are captured (default: the cgroup2 root).
    /// The proxy must run inside it.
    #[arg(long)]
    pub cgroup: Option<PathBuf>,
    /// eBPF: the bpffs mount to pin under (we use `<bpffs>/shardcar/` only).
    #[arg(long, default_value = "/sys/fs/bpf")]
    pub bpffs: PathBuf,
    /// eBPF: also attach the sockops + sk_msg fast path between local sockets.
    #[arg(long)]
    pub accelerate: bool,
}

fn parse_inbound(s: &str) -> Result<InboundPorts, String> {
    s.parse()
}

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    s.parse()
}

impl InterceptArgs {
    /// The validated options these flags describe.
    pub fn options(&self) -> Result<intercept::Options, String> {
        let mode = match self.mode {
            ModeArg::Redirect | ModeArg::Ebpf => intercept::Mode::Redirect,
            ModeArg::Tproxy => intercept::Mode::Tproxy,
        };
        let backend = match self.backend {
            BackendArg::Iptables => intercept::Backend::Iptables,
            BackendArg::Nft => intercept::Backend::Nft,
        };
        let mut o = intercept::Options::new(mode, backend);
        o.proxy_uid = self.proxy_uid;
        o.proxy_gid = self.proxy_gid;
        o.mark = self.mark;
        o.inbound_ports = self.inbound_ports.clone();
        o.exclude_inbound_ports = self.exclude_inbound_ports.clone();
        o.exclude_outbound_cidrs = self.exclude_outbound_cidrs.clone();
        o.exclude_outbound_ports = self.exclude_outbound_ports.clone();
        o.ipv6 = self.ipv6;
        o.outbound_port = self.outbound_port;
        o.inbound_port = self.inbound_port;
        o.tproxy_mark = self.tproxy_mark;
        o.route_table = self.route_table;
        o.validate()?;
        Ok(o)
    }

    /// The eBPF options, when `--mode ebpf` was given.
    pub fn ebpf_options(&self) -> Result<Option<intercept::ebpf::EbpfOptions>, String> {
        if !matches!(self.mode, ModeArg::Ebpf) {
            return Ok(None);
        }
        let base = self.options()?;
        let cgroup = match &self.cgroup {
            Some(c) => c.clone(),
            None => intercept::ebpf::default_cgroup()
                .ok_or("no cgroup2 mount found; give --cgroup PATH")?,
        };
        Ok(Some(intercept::ebpf::EbpfOptions {
            base,
            cgroup,
            bpffs: self.bpffs.clone(),
            accelerate: self.accelerate,
        }))
    }
}
