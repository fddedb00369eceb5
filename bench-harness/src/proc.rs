//! Processes the harness starts (each stopped by its handle: kill, then wait, also on drop),
//! CPU pinning, and the `/proc` readings: CPU time (utime+stime) and RSS of a process.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// Which CPUs the proxy under test and the load side (loadgen + origin + harness) run on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pinning {
    pub proxy_cpus: String,
    pub load_cpus: String,
    pub applied: bool,
}

impl Pinning {
    /// With N ≥ 2 CPUs: proxy on CPU 0, everything else on CPUs 1..N. With one CPU: unpinned.
    pub fn for_host() -> Pinning {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        if n >= 2 && which("taskset") {
            Pinning {
                proxy_cpus: "0".into(),
                load_cpus: if n == 2 {
                    "1".into()
                } else {
                    format!("1-{}", n - 1)
                },
                applied: true,
            }
        } else {
            Pinning {
                proxy_cpus: "all".into(),
                load_cpus: "all".into(),
                applied: false,
            }
        }
    }

    /// A command for `program` pinned to `cpus` (via `taskset`, which execs: the pid is the
    /// program's own).
    pub fn command(&self, cpus: &str, program: &Path) -> Command {
        if self.applied {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpus).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    pub fn proxy(&self, program: &Path) -> Command {
        self.command(&self.proxy_cpus.clone(), program)
    }

    pub fn load(&self, program: &Path) -> Command {
        self.command(&self.load_cpus.clone(), program)
    }
}

/// True when `program` is on PATH.
pub fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// A started process; killed and reaped when stopped or dropped.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: Option<Child>,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command) -> anyhow::Result<(Proc, Option<ChildStdout>)> {
        let mut child = cmd
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        let out = child.stdout.take();
        Ok((
            Proc {
                name: name.to_string(),
                child: Some(child),
            },
            out,
        ))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Fails if the process already exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(c) = self.child.as_mut() {
            if let Some(st) = c.try_wait()? {
                bail!("{} exited early: {st}", self.name);
            }
        }
        Ok(())
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads lines from a child's stdout until `pick` returns a value (bounded by `timeout`).
pub fn wait_line<T>(
    out: ChildStdout,
    timeout: Duration,
    pick: impl Fn(&str) -> Option<T> + Send + 'static,
) -> anyhow::Result<T>
where
    T: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if let Some(v) = pick(line.trim()) {
                        let _ = tx.send(v);
                    }
                }
            }
        }
    });
    rx.recv_timeout(timeout)
        .context("process did not report readiness in time")
}

/// Polls until `addr` accepts a TCP connection.
pub fn wait_port(addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let end = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > end {
            bail!("{addr} did not accept connections within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free loopback port (for peers that cannot report the port they bound).
pub fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Clock ticks per second for `/proc/<pid>/stat` (USER_HZ; 100 on every Linux ABI in use).
pub const CLK_TCK: f64 = 100.0;

/// utime + stime of `pid` (all threads) in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat_cpu(&s).map(|t| t / CLK_TCK)
}

fn parse_stat_cpu(stat: &str) -> anyhow::Result<f64> {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')').context("bad /proc stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: f64 = f.get(11).context("no utime")?.parse()?;
    let stime: f64 = f.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

/// Resident set size of `pid` in KiB (`VmRSS`).
pub fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("no VmRSS")?
        .parse()
        .context("bad VmRSS")
}

/// Raises the soft open-files limit to the hard limit (5,000 idle connections need it).
pub fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    l.current = l.maximum;
    let _ = setrlimit(Resource::Nofile, l);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_skips_odd_names() {
        let s = "42 (a b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat_cpu(s).unwrap(), 300.0);
    }

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
        assert!(rss_kb(pid).unwrap() > 0);
    }
}
