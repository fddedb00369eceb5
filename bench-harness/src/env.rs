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

/// CPUs online on the machine, from `/sys/devices/system/cpu/online` (`0-1`, `0,2-5`).
pub fn online_cpus() -> Option<usize> {
    parse_cpu_list(&std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?)
}

pub fn parse_cpu_list(s: &str) -> Option<usize> {
    let mut n = 0;
    for part in s.trim().split(',') {
        n += match part.split_once('-') {
            Some((a, b)) => {
                b.parse::<usize>()
                    .ok()?
                    .checked_sub(a.parse::<usize>().ok()?)?
                    + 1
            }
            None => part.parse::<usize>().map(|_| 1).ok()?,
        };
    }
    Some(n).filter(|&n| n > 0)
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
        // The machine's CPUs, not the (pinned) harness's affinity mask.
        "nproc": online_cpus().unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        "nproc_harness": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "pinning": pin,
        "shardcar_shards": 1,
        // What was asked for; `ring` / `ring_logged` are what the proxies logged (set by the
        // runner once a Shardcar target has started; absent if none did).
        "ring_requested": std::env::var("SHARDCAR_RING").unwrap_or_else(|_| "auto (best available)".into()),
        "peers": {
            "haproxy": peer_version("haproxy"),
            "nginx": peer_version("nginx"),
        },
        "rustc": cmd("rustc", &["--version"], root),
    })
}

#[cfg(test)]
mod tests {
    use super::parse_cpu_list;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(2));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0,2-5"), Some(5));
        assert_eq!(parse_cpu_list("x"), None);
    }
}
