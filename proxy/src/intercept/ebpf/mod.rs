//! eBPF interception: `shardcar intercept install --mode ebpf [--accelerate]`.
//!
//! Instead of netfilter NAT, programs attached to a cgroup v2 (`--cgroup`, default the cgroup2
//! root) capture outbound TCP (see `proxy/bpf/shardcar.bpf.c` for each program):
//! - `cgroup/connect4` (and `connect6` with `--ipv6`) rewrites an app's `connect()` to the
//!   proxy's outbound listener on loopback and records the original destination by socket
//!   cookie; `sockops` re-keys it by the app's address once established;
//! - `cgroup/getsockopt` answers `SO_ORIGINAL_DST` from that record, so `original_dst: true`
//!   listeners ([`crate::l4`]) work unchanged — no conntrack, no NAT;
//! - exclusions as in the iptables mode: the proxy's uid, gid and `SO_MARK`
//!   (`upstream_mark`), loopback destinations, `--exclude-outbound-ports` and `-cidrs`;
//! - `--accelerate`: `sockops` puts established TCP sockets whose both ends are on this host
//!   into a sockhash and `sk_msg` moves each send straight into the peer's receive queue. Needs
//!   `l4_mode: copy` (the default) on the proxy's listeners: `splice(2)` reads the TCP receive
//!   queue directly and does not see redirected data.
//!
//! The proxy must run inside the cgroup (the getsockopt hook follows the socket's cgroup, and
//! its exclusions are what keep its own upstream connections from being captured again).
//! Inbound capture is not done here: keep the iptables/nft inbound rules for it.
//!
//! Everything loaded is pinned under `<bpffs>/shardcar/` (programs, maps and the cgroup
//! links), so it outlives the `install` process; [`uninstall`] removes exactly that directory,
//! which detaches the links and frees programs and maps. It needs no loader, so it also works in
//! a build without the feature.
//!
//! Loader: **aya** (pure Rust; loads the clang-built object, pins links and maps). libbpf-rs
//! would add a C build of libbpf (libelf, zlib) to every `--features ebpf` build on a 2-core
//! machine, and its skeleton generator we do not need: the object has five programs and seven
//! maps that we address by name. The object is compiled by `build.rs` only with the `ebpf`
//! feature, so the default build needs no clang; without it, `install --mode ebpf` reports that
//! in one line and changes nothing.

#[cfg(feature = "ebpf")]
mod load;

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use super::Options;

/// Name of our directory under bpffs; nothing else there is ever touched.
pub const PIN_DIR: &str = "shardcar";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// What `--mode ebpf` is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EbpfOptions {
    /// Exclusions, ports and families, shared with the iptables modes.
    pub base: Options,
    /// The cgroup v2 directory the programs attach to (its whole subtree is captured).
    pub cgroup: PathBuf,
    /// A bpffs mount; we pin under `<bpffs>/shardcar/`.
    pub bpffs: PathBuf,
    /// Attach the sockops + sk_msg local fast path.
    pub accelerate: bool,
}

impl EbpfOptions {
    pub fn pin_dir(&self) -> PathBuf {
        self.bpffs.join(PIN_DIR)
    }
}

/// Why eBPF interception is not available; each says it in one line.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("built without the `ebpf` cargo feature (cargo build --features ebpf)")]
    NotBuilt,
    #[error("{0} is not a bpffs mount (mount -t bpf bpf {0})")]
    NoBpffs(String),
    #[error("{0} is not a cgroup v2 directory (is cgroup2 mounted?)")]
    NoCgroup2(String),
    #[error("permission denied {0}: needs root (CAP_BPF + CAP_NET_ADMIN, or CAP_SYS_ADMIN)")]
    Permission(String),
    #[error("the kernel refused {0} (needs CONFIG_BPF_SYSCALL, CONFIG_CGROUP_BPF, CONFIG_BPF_STREAM_PARSER, CONFIG_NET_SOCK_MSG; see `make host-check`)")]
    Kernel(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The cgroup v2 root: where `cgroup2` is mounted (`/sys/fs/cgroup` on a unified host,
/// `/sys/fs/cgroup/unified` on a hybrid one).
pub fn default_cgroup() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_, dir, fstype) = (f.next()?, f.next()?, f.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(dir))
    })
}

/// Checks what install needs before loading anything: bpffs and a cgroup v2 directory.
pub fn preflight(o: &EbpfOptions) -> Result<(), Unavailable> {
    match crate::sys::fs_magic(&o.bpffs) {
        Ok(BPF_FS_MAGIC) => {}
        _ => return Err(Unavailable::NoBpffs(o.bpffs.display().to_string())),
    }
    match crate::sys::fs_magic(&o.cgroup) {
        Ok(CGROUP2_SUPER_MAGIC) => Ok(()),
        _ => Err(Unavailable::NoCgroup2(o.cgroup.display().to_string())),
    }
}

/// `install`: removes a previous install of ours, then loads, attaches and pins everything.
/// On any failure nothing of ours is left attached or pinned. Returns what was pinned.
pub fn install(o: &EbpfOptions) -> Result<Vec<String>, Unavailable> {
    #[cfg(feature = "ebpf")]
    {
        preflight(o)?;
        uninstall(o)?;
        let r = load::install(o);
        if r.is_err() {
            let _ = uninstall(o);
        }
        r
    }
    #[cfg(not(feature = "ebpf"))]
    {
        let _ = o;
        Err(Unavailable::NotBuilt)
    }
}

/// `uninstall`: removes `<bpffs>/shardcar/` and everything pinned in it (the links go with
/// their last reference, which detaches the programs). Returns the names removed.
pub fn uninstall(o: &EbpfOptions) -> Result<Vec<String>, Unavailable> {
    let dir = o.pin_dir();
    let names = match pinned(&dir) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    for n in &names {
        std::fs::remove_file(dir.join(n))?;
    }
    std::fs::remove_dir(&dir)?;
    Ok(names)
}

/// `show`: what is pinned under our directory.
pub fn show(o: &EbpfOptions) -> io::Result<String> {
    let dir = o.pin_dir();
    let mut out = String::new();
    match pinned(&dir) {
        Ok(names) if !names.is_empty() => {
            let _ = writeln!(
                out,
                "shardcar eBPF interception: installed ({})",
                dir.display()
            );
            for n in names {
                let _ = writeln!(out, "  {n}");
            }
        }
        Ok(_) => out.push_str("shardcar eBPF interception: not installed\n"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            out.push_str("shardcar eBPF interception: not installed\n")
        }
        Err(e) => return Err(e),
    }
    Ok(out)
}

/// What `install` would do, for `--dry-run`.
pub fn describe(o: &EbpfOptions) -> String {
    let mut s = String::new();
    let b = &o.base;
    let _ = writeln!(
        s,
        "# load shardcar.bpf.o; pin programs, maps and links under {}",
        o.pin_dir().display()
    );
    let mut progs = vec!["connect4", "getsockopt", "sockops"];
    if b.ipv6 {
        progs.insert(1, "connect6");
    }
    for p in progs {
        let _ = writeln!(s, "attach cgroup {p} to {}", o.cgroup.display());
    }
    if o.accelerate {
        let _ = writeln!(s, "attach sk_msg to sockhash sc_socks");
    }
    let _ = writeln!(
        s,
        "redirect outbound TCP to 127.0.0.1:{p} (::1:{p}); skip uid {:?} gid {:?} mark {:?}, ports {:?}, cidrs [{}]",
        b.proxy_uid,
        b.proxy_gid,
        b.mark,
        b.exclude_outbound_ports,
        b.exclude_outbound_cidrs
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        p = b.outbound_port,
    );
    s
}

fn pinned(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intercept::{Backend, Mode};

    fn opts() -> EbpfOptions {
        let mut base = Options::new(Mode::Redirect, Backend::Iptables);
        base.mark = Some(0x539);
        EbpfOptions {
            base,
            cgroup: "/sys/fs/cgroup".into(),
            bpffs: "/sys/fs/bpf".into(),
            accelerate: true,
        }
    }

    #[test]
    fn pins_under_our_prefix_only() {
        assert_eq!(opts().pin_dir(), Path::new("/sys/fs/bpf/shardcar"));
    }

    #[test]
    fn describe_lists_programs_and_exclusions() {
        let mut o = opts();
        o.base.exclude_outbound_ports = vec![9091];
        o.base.exclude_outbound_cidrs = vec!["10.0.0.0/8".parse().unwrap()];
        let d = describe(&o);
        assert!(
            d.contains("attach cgroup connect4 to /sys/fs/cgroup"),
            "{d}"
        );
        assert!(!d.contains("connect6"), "{d}");
        assert!(d.contains("attach sk_msg"), "{d}");
        assert!(
            d.contains("mark Some(1337), ports [9091], cidrs [10.0.0.0/8]"),
            "{d}"
        );
    }

    #[test]
    fn preflight_names_a_missing_bpffs_in_one_line() {
        let mut o = opts();
        o.bpffs = std::env::temp_dir();
        let e = preflight(&o).unwrap_err().to_string();
        assert!(e.contains("is not a bpffs mount"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn uninstall_of_nothing_is_not_an_error() {
        let mut o = opts();
        o.bpffs = std::env::temp_dir().join("shardcar-no-such-bpffs");
        assert!(uninstall(&o).unwrap().is_empty());
        assert!(show(&o).unwrap().contains("not installed"));
    }
}
