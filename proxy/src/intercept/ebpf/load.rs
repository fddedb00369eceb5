//! Loading with aya: set the read-only config, fill the exclusion maps, attach, pin. Only
//! built with the `ebpf` feature.

use std::error::Error as StdError;
use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::Path;

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{HashMap, SockHash};
use aya::programs::{
    links::FdLink, CgroupAttachMode, CgroupSockAddr, CgroupSockopt, SkMsg, SockOps,
};
use aya::{Ebpf, EbpfLoader};

use super::{EbpfOptions, Unavailable};

/// The object `build.rs` compiled from `proxy/bpf/shardcar.bpf.c`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/shardcar.bpf.o"));

/// The sockhash key (`struct sock_key` in the C source: 11 × u32).
type SockKey = [u32; 11];

/// One line saying why `what` failed: permission, a kernel without the feature, or the error.
fn fail(what: &str, e: &(dyn StdError + 'static)) -> Unavailable {
    // The whole error, verifier log included, for SHARDCAR_LOG=debug.
    tracing::debug!("{what}: {e}");
    let verifier_rejected = matches!(
        e.downcast_ref::<aya::programs::ProgramError>(),
        Some(aya::programs::ProgramError::LoadError { .. })
    );
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return match io.raw_os_error() {
                // From BPF_PROG_LOAD, EACCES is the verifier's rejection, not a permission.
                Some(libc::EACCES) if verifier_rejected => {
                    Unavailable::Kernel(format!("{what}: the verifier rejected it"))
                }
                Some(libc::EPERM | libc::EACCES) => Unavailable::Permission(what.into()),
                // EINVAL / EOPNOTSUPP / ENOTSUPP (524): unknown program, map or attach type.
                Some(libc::EINVAL | libc::EOPNOTSUPP | 524) => {
                    Unavailable::Kernel(format!("{what}: {io}"))
                }
                _ => Unavailable::Io(io::Error::new(io.kind(), format!("{what}: {io}"))),
            };
        }
        cur = err.source();
    }
    let first = e.to_string();
    let first = first.lines().next().unwrap_or_default().to_string();
    Unavailable::Io(io::Error::other(format!("{what}: {first}")))
}

macro_rules! tryx {
    ($what:expr, $e:expr) => {
        $e.map_err(|e| fail(&$what, &e))?
    };
}

pub fn install(o: &EbpfOptions) -> Result<Vec<String>, Unavailable> {
    let b = &o.base;
    let (have_uid, uid) = (u8::from(b.proxy_uid.is_some()), b.proxy_uid.unwrap_or(0));
    let (have_gid, gid) = (u8::from(b.proxy_gid.is_some()), b.proxy_gid.unwrap_or(0));
    let (have_mark, mark) = (u8::from(b.mark.is_some()), b.mark.unwrap_or(0));
    let accelerate = u8::from(o.accelerate);
    let mut bpf: Ebpf = tryx!(
        "loading shardcar.bpf.o",
        EbpfLoader::new()
            .override_global("outbound_port", &b.outbound_port, true)
            .override_global("accelerate", &accelerate, true)
            .override_global("have_uid", &have_uid, true)
            .override_global("have_gid", &have_gid, true)
            .override_global("have_mark", &have_mark, true)
            .override_global("proxy_uid", &uid, true)
            .override_global("proxy_gid", &gid, true)
            .override_global("proxy_mark", &mark, true)
            .load(OBJECT)
    );
    fill_exclusions(&mut bpf, o)?;

    let dir = o.pin_dir();
    tryx!(
        format!("creating {}", dir.display()),
        std::fs::create_dir(&dir)
    );
    let mut pinned = Vec::new();
    for (name, map) in bpf.maps() {
        let file = format!("map_{}", name.trim_start_matches('.'));
        tryx!(format!("pinning {file}"), map.pin(dir.join(&file)));
        pinned.push(file);
    }
    let cgroup = tryx!(
        format!("opening cgroup {}", o.cgroup.display()),
        File::open(&o.cgroup)
    );

    // The answer side first, the capturing side last: a connect is never rewritten before the
    // proxy can learn where it was going.
    {
        let p: &mut CgroupSockopt = program(&mut bpf, "sc_getsockopt")?;
        tryx!("loading cgroup/getsockopt", p.load());
        pin_prog(&dir, "getsockopt", |path| p.pin(path), &mut pinned)?;
        // aya 0.14 has no pinnable link for cgroup/getsockopt: create and pin it directly.
        const BPF_CGROUP_GETSOCKOPT: u32 = 21;
        let prog_fd = tryx!("getsockopt program fd", p.fd());
        let link = tryx!(
            "attaching cgroup/getsockopt",
            crate::sys::bpf_link_create(prog_fd.as_fd(), cgroup.as_fd(), BPF_CGROUP_GETSOCKOPT)
        );
        let file = "link_getsockopt".to_string();
        tryx!(
            format!("pinning {file}"),
            crate::sys::bpf_obj_pin(link.as_fd(), &dir.join(&file))
        );
        pinned.push(file);
    }
    {
        let p: &mut SockOps = program(&mut bpf, "sc_sockops")?;
        tryx!("loading sockops", p.load());
        pin_prog(&dir, "sockops", |path| p.pin(path), &mut pinned)?;
        let id = tryx!(
            "attaching sockops",
            p.attach(&cgroup, CgroupAttachMode::Single)
        );
        let link = tryx!("taking the sockops link", p.take_link(id));
        pin_link(&dir, "sockops", link.try_into(), &mut pinned)?;
    }
    if o.accelerate {
        let socks: SockHash<_, SockKey> = tryx!(
            "opening sockhash sc_socks",
            SockHash::try_from(bpf.map("sc_socks").expect("sc_socks is in the object"))
        );
        let fd = tryx!("duplicating the sockhash fd", socks.fd().try_clone());
        let p: &mut SkMsg = program(&mut bpf, "sc_sk_msg")?;
        tryx!("loading sk_msg", p.load());
        pin_prog(&dir, "sk_msg", |path| p.pin(path), &mut pinned)?;
        let id = tryx!("attaching sk_msg to the sockhash", p.attach(&fd));
        let link = tryx!("taking the sk_msg link", p.take_link(id));
        // The map holds the program now; dropping the link would detach it, and the
        // attachment lives exactly as long as the pinned map.
        std::mem::forget(link);
    }
    let mut connects = vec![("sc_connect4", "connect4")];
    if b.ipv6 {
        connects.push(("sc_connect6", "connect6"));
    }
    for (prog, short) in connects {
        let p: &mut CgroupSockAddr = program(&mut bpf, prog)?;
        tryx!(format!("loading cgroup/{short}"), p.load());
        pin_prog(&dir, short, |path| p.pin(path), &mut pinned)?;
        let id = tryx!(
            format!("attaching cgroup/{short}"),
            p.attach(&cgroup, CgroupAttachMode::Single)
        );
        let link = tryx!(format!("taking the {short} link"), p.take_link(id));
        pin_link(&dir, short, link.try_into(), &mut pinned)?;
    }
    pinned.sort();
    Ok(pinned)
}

fn program<'a, T>(bpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, Unavailable>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let p = bpf
        .program_mut(name)
        .ok_or_else(|| Unavailable::Io(io::Error::other(format!("{name} missing"))))?;
    p.try_into().map_err(|e| fail(name, &e))
}

fn pin_prog(
    dir: &Path,
    short: &str,
    pin: impl FnOnce(std::path::PathBuf) -> Result<(), aya::pin::PinError>,
    pinned: &mut Vec<String>,
) -> Result<(), Unavailable> {
    let file = format!("prog_{short}");
    tryx!(format!("pinning {file}"), pin(dir.join(&file)));
    pinned.push(file);
    Ok(())
}

fn pin_link(
    dir: &Path,
    short: &str,
    link: Result<FdLink, aya::programs::links::LinkError>,
    pinned: &mut Vec<String>,
) -> Result<(), Unavailable> {
    let file = format!("link_{short}");
    let link = tryx!(format!("{short} is not an fd link"), link);
    let pinned_link = tryx!(format!("pinning {file}"), link.pin(dir.join(&file)));
    // Closing our fd is fine: the pin keeps the link, and with it the attachment.
    drop(pinned_link);
    pinned.push(file);
    Ok(())
}

fn fill_exclusions(bpf: &mut Ebpf, o: &EbpfOptions) -> Result<(), Unavailable> {
    let b = &o.base;
    {
        let mut ports: HashMap<_, u16, u8> = tryx!(
            "opening sc_excl_ports",
            HashMap::try_from(bpf.map_mut("sc_excl_ports").expect("in the object"))
        );
        for p in &b.exclude_outbound_ports {
            tryx!("filling sc_excl_ports", ports.insert(p, 1, 0));
        }
    }
    for c in &b.exclude_outbound_cidrs {
        match c.addr {
            IpAddr::V4(a) => {
                let mut t: LpmTrie<_, u32, u8> = tryx!(
                    "opening sc_excl_v4",
                    LpmTrie::try_from(bpf.map_mut("sc_excl_v4").expect("in the object"))
                );
                let key = Key::new(u32::from(c.prefix), u32::from_ne_bytes(a.octets()));
                tryx!("filling sc_excl_v4", t.insert(&key, 1, 0));
            }
            IpAddr::V6(a) => {
                let o = a.octets();
                let mut words = [0u32; 4];
                for (w, chunk) in words.iter_mut().zip(o.chunks_exact(4)) {
                    *w = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                }
                let mut t: LpmTrie<_, [u32; 4], u8> = tryx!(
                    "opening sc_excl_v6",
                    LpmTrie::try_from(bpf.map_mut("sc_excl_v6").expect("in the object"))
                );
                tryx!(
                    "filling sc_excl_v6",
                    t.insert(&Key::new(u32::from(c.prefix), words), 1, 0)
                );
            }
        }
    }
    Ok(())
}
