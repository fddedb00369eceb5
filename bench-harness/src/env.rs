//! `env.json`: what the numbers were measured on (kernel, CPU model, nproc, peer versions,
//! pinning, commit), and the report folder name `<YYYY-MM-DD>-<shortsha>-<set>`.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::proc::{which, Pinning};

fn cmd(program: &str, args: &[&str], cwd: &Path) -> Option<String> {
    let o = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    Some(text.trim().to_string()).filter(|t| !t.is_empty() && o.status.success())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The short commit (with `+dirty` when the tree has changes) of the repository at `root`.
pub fn commit(root: &Path) -> (String, bool) {
    let sha = cmd("git", &["rev-parse", "--short", "HEAD"], root).unwrap_or_else(|| "nogit".into());
    let dirty = cmd(
        "git",
        &["status", "--porcelain", "--untracked-files=no"],
        root,
    )
    .is_some();
    (sha, dirty)
}

/// Today's date (UTC) as `YYYY-MM-DD`.
pub fn today() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()[..10].to_string()
}

/// Version line of a peer, or why it is absent.
pub fn peer_version(program: &str) -> Option<String> {
    if !which(program) {
        return None;
    }
    let v = cmd(program, &["-v"], Path::new("/"))?;
    v.lines().next().map(str::to_string)
}

pub fn collect(root: &Path, pin: &Pinning, set: &str) -> serde_json::Value {
    let (sha, dirty) = commit(root);
    json!({
        "date": today(),
        "started_at": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "set": set,
        "commit": sha,
        "dirty": dirty,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "cpu_model": cpu_model(),
        "nproc": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "pinning": pin,
        "shardcar_shards": 1,
        "ring": std::env::var("SHARDCAR_RING").unwrap_or_else(|_| "default (io_uring SINGLE_ISSUER+DEFER_TASKRUN)".into()),
        "peers": {
            "haproxy": peer_version("haproxy"),
            "nginx": peer_version("nginx"),
        },
        "rustc": cmd("rustc", &["--version"], root),
    })
}
