//! Targets: `direct` (loadgen → origin, the physical baseline), Shardcar in each mode and the
//! peers (HAProxy, nginx). Each proxy target is a config template in `bench-harness/peers/`
//! named after the target id (`shardcar-http.yaml`, `haproxy-tcp.cfg`, `nginx-stream.conf`);
//! the harness fills `{{listen}}`, `{{origin}}`, `{{dir}}`, `{{nginx_modules}}` and `{{certs}}`,
//! starts the proxy pinned to the proxy CPU and keeps its handle.
//!
//! `{{certs}}` (TLS targets): a directory the harness fills with `shardcar certs` before the
//! proxy starts — `ca.pem`, `server.pem`/`server-key.pem` (ECDSA P-256, SPIFFE ID
//! `spiffe://bench.local/ns/bench/sa/server`, DNS `localhost`), `client.pem`/`client-key.pem`,
//! and `server-combined.pem` (certificate then key, the one file HAProxy's `crt` takes).
//!
//! `shardcar-<mode>@before` runs the same template with another `shardcar` binary
//! (`--before-shardcar PATH`), so a change is measured against the code before it in one run:
//! both binaries interleaved, same pinning, same origin.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::proc::{free_port, wait_line, wait_port, Pinning, Proc};

/// Which program a target runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    Direct,
    Shardcar,
    Haproxy,
    Nginx,
}

/// Suffix of a target that runs the `--before-shardcar` binary.
pub const BEFORE: &str = "@before";

/// A target id such as `shardcar-splice`: program plus template variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetId {
    pub id: String,
    pub program: Program,
}

impl TargetId {
    pub fn parse(id: &str) -> Result<TargetId, String> {
        if let Some(base) = id.strip_suffix(BEFORE) {
            let t = TargetId::parse(base)?;
            if t.program != Program::Shardcar {
                return Err(format!(
                    "`{BEFORE}` applies to shardcar targets only, not `{id}`"
                ));
            }
            return Ok(TargetId {
                id: id.to_string(),
                program: Program::Shardcar,
            });
        }
        let program = match id.split('-').next() {
            _ if id == "direct" => Program::Direct,
            Some("shardcar") => Program::Shardcar,
            Some("haproxy") => Program::Haproxy,
            Some("nginx") => Program::Nginx,
            _ => {
                return Err(format!(
                    "unknown target `{id}` (direct, shardcar-<mode>, haproxy-<mode>, nginx-<mode>)"
                ))
            }
        };
        if program != Program::Direct && !id.contains('-') {
            return Err(format!("target `{id}` needs a mode, e.g. `{id}-http`"));
        }
        Ok(TargetId {
            id: id.to_string(),
            program,
        })
    }

    /// Peers are the reference proxies ("best peer" ratios compare against them).
    pub fn is_peer(&self) -> bool {
        matches!(self.program, Program::Haproxy | Program::Nginx)
    }

    pub fn template_file(&self, peers_dir: &Path) -> PathBuf {
        let ext = match self.program {
            Program::Direct => "none",
            Program::Shardcar => "yaml",
            Program::Haproxy => "cfg",
            Program::Nginx => "conf",
        };
        let name = self.id.strip_suffix(BEFORE).unwrap_or(&self.id);
        peers_dir.join(format!("{name}.{ext}"))
    }
}

/// Where the harness finds programs.
#[derive(Debug, Clone)]
pub struct Programs {
    pub shardcar: PathBuf,
    /// The binary `@before` targets run (`--before-shardcar`).
    pub shardcar_before: Option<PathBuf>,
    pub shardload: PathBuf,
    pub shardorigin: PathBuf,
    pub peers_dir: PathBuf,
}

/// Fills a template; every `{{name}}` must be known.
/// The ring mode in a Shardcar log's `shard started … ring="MODE"` line (waits up to 2 s for
/// the line: stdout's "listening" and the stderr log are not ordered).
fn logged_ring(log: &Path) -> Option<String> {
    for _ in 0..40 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(mode) = parse_ring(&text) {
            return Some(mode);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// `ring="io_uring+single_issuer+defer_taskrun"` → `io_uring+single_issuer+defer_taskrun`.
pub fn parse_ring(log: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains("shard started"))?;
    let rest = &line[line.find("ring=")? + 5..];
    let mode = rest.split_whitespace().next()?.trim_matches('"');
    Some(mode.to_string()).filter(|m| !m.is_empty())
}

pub fn render(template: &str, vars: &[(&str, String)]) -> anyhow::Result<String> {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    if let Some(i) = out.find("{{") {
        let end = out[i..].find("}}").map_or(out.len(), |e| i + e + 2);
        bail!("unknown template placeholder {}", &out[i..end]);
    }
    Ok(out)
}

/// A dev CA with a server and a client SVID in `dir` (see the module doc).
fn make_certs(shardcar: &Path, dir: &Path) -> anyhow::Result<()> {
    if dir.join("server-combined.pem").exists() {
        return Ok(());
    }
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let out = std::process::Command::new(shardcar)
            .arg("certs")
            .args(args)
            .arg("--dir")
            .arg(dir)
            .output()
            .with_context(|| format!("{} certs", shardcar.display()))?;
        if !out.status.success() {
            bail!(
                "shardcar certs {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    run(&["init", "--trust-domain", "bench.local", "--force"])?;
    run(&[
        "issue",
        "--spiffe-id",
        "spiffe://bench.local/ns/bench/sa/server",
        "--name",
        "server",
        "--dns",
        "localhost",
    ])?;
    run(&[
        "issue",
        "--spiffe-id",
        "spiffe://bench.local/ns/bench/sa/client",
        "--name",
        "client",
    ])?;
    let combined = std::fs::read_to_string(dir.join("server.pem"))?
        + &std::fs::read_to_string(dir.join("server-key.pem"))?;
    std::fs::write(dir.join("server-combined.pem"), combined)?;
    Ok(())
}

fn nginx_modules() -> String {
    let m = "/usr/lib/nginx/modules/ngx_stream_module.so";
    if Path::new(m).exists() {
        format!("load_module {m};")
    } else {
        String::new()
    }
}

/// A running target: where to send load, and the proxy process (none for `direct`).
#[derive(Debug)]
pub struct Running {
    pub id: TargetId,
    pub addr: SocketAddr,
    pub proc: Option<Proc>,
    /// For Shardcar: the ring mode its shard logged at start (`ring="…"`), not the one asked for.
    pub ring: Option<String>,
}

impl Running {
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    pub fn cpu_seconds(&self) -> Option<f64> {
        self.pid().and_then(|p| crate::proc::cpu_seconds(p).ok())
    }
}

/// Starts `id` in front of `origin`, its files in `dir`.
pub fn start(
    id: &TargetId,
    origin: SocketAddr,
    programs: &Programs,
    pin: &Pinning,
    dir: &Path,
) -> anyhow::Result<Running> {
    if id.program == Program::Direct {
        return Ok(Running {
            id: id.clone(),
            addr: origin,
            proc: None,
            ring: None,
        });
    }
    std::fs::create_dir_all(dir)?;
    let dir = &std::fs::canonicalize(dir)?;
    let tpl_path = id.template_file(&programs.peers_dir);
    let tpl = std::fs::read_to_string(&tpl_path)
        .with_context(|| format!("target {}: template {}", id.id, tpl_path.display()))?;
    let listen = match id.program {
        Program::Shardcar => "127.0.0.1:0".parse()?,
        _ => free_port()?,
    };
    let certs = dir.join("certs");
    if tpl.contains("{{certs}}") {
        make_certs(&programs.shardcar, &certs)?;
    }
    let vars = [
        ("certs", certs.display().to_string()),
        ("listen", listen.to_string()),
        ("origin", origin.to_string()),
        ("dir", dir.display().to_string()),
        ("nginx_modules", nginx_modules()),
    ];
    let text = render(&tpl, &vars).with_context(|| tpl_path.display().to_string())?;
    let file_name = tpl_path.file_name().context("template name")?;
    let conf = dir.join(file_name);
    std::fs::write(&conf, text)?;
    let log = std::fs::File::create(dir.join(format!("{}.log", id.id)))?;
    let ready = Duration::from_secs(10);
    match id.program {
        Program::Shardcar => {
            let bin = if id.id.ends_with(BEFORE) {
                programs
                    .shardcar_before
                    .as_ref()
                    .with_context(|| format!("{}: needs --before-shardcar PATH", id.id))?
            } else {
                &programs.shardcar
            };
            let mut c = pin.proxy(bin);
            c.args(["--shards", "1", "--config"]).arg(&conf);
            // `wire::runtime=info` keeps the "shard started … ring=" line, read back below.
            c.env("SHARDCAR_LOG", "warn,wire::runtime=info")
                .stdout(Stdio::piped())
                .stderr(log);
            let (mut p, out) = Proc::spawn(&id.id, c)?;
            let addr = wait_line(out.context("stdout")?, ready, |l| {
                l.strip_prefix("listening ")
                    .and_then(|r| r.split_whitespace().nth(1))
                    .and_then(|a| a.parse::<SocketAddr>().ok())
            });
            let addr = addr.and_then(|a| p.check_alive().map(|_| a));
            let addr = addr.with_context(|| format!("{}: see {}.log", id.id, id.id))?;
            let ring = logged_ring(&dir.join(format!("{}.log", id.id)));
            Ok(Running {
                id: id.clone(),
                addr,
                proc: Some(p),
                ring,
            })
        }
        Program::Haproxy | Program::Nginx => {
            let mut c = if id.program == Program::Haproxy {
                let mut c = pin.proxy(Path::new("haproxy"));
                c.arg("-f").arg(&conf);
                c
            } else {
                // nginx resolves relative paths against its prefix: give it absolute ones.
                let st = std::process::Command::new("nginx")
                    .arg("-p")
                    .arg(dir)
                    .args(["-e", "stderr", "-t", "-c"])
                    .arg(&conf)
                    .output()?;
                if !st.status.success() {
                    bail!(
                        "nginx rejects {}: {}",
                        conf.display(),
                        String::from_utf8_lossy(&st.stderr).trim()
                    );
                }
                let mut c = pin.proxy(Path::new("nginx"));
                c.arg("-p").arg(dir).args(["-e", "stderr", "-c"]).arg(&conf);
                c
            };
            c.stdout(Stdio::null()).stderr(log);
            let (mut p, _) = Proc::spawn(&id.id, c)?;
            wait_port(listen, ready)
                .and_then(|_| p.check_alive())
                .with_context(|| format!("{}: see {}.log", id.id, id.id))?;
            Ok(Running {
                id: id.clone(),
                addr: listen,
                proc: Some(p),
                ring: None,
            })
        }
        Program::Direct => unreachable!("handled above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(TargetId::parse("direct").unwrap().program, Program::Direct);
        assert_eq!(
            TargetId::parse("nginx-stream").unwrap().program,
            Program::Nginx
        );
        assert!(TargetId::parse("haproxy-tcp").unwrap().is_peer());
        assert!(!TargetId::parse("shardcar-copy").unwrap().is_peer());
        assert!(TargetId::parse("shardcar").is_err());
        let before = TargetId::parse("shardcar-http@before").unwrap();
        assert_eq!(before.program, Program::Shardcar);
        assert_eq!(
            before.template_file(Path::new("p")),
            Path::new("p/shardcar-http.yaml")
        );
        assert!(TargetId::parse("haproxy-http@before").is_err());
        assert!(TargetId::parse("envoy-http").is_err());
    }

    #[test]
    fn ring_from_the_shard_started_line() {
        let log = "2026-12-02T18:39:02Z  WARN x: y\n2026-12-02T18:39:02Z  INFO wire::runtime: shard started shard=0 cpu=Some(0) ring=\"io_uring+single_issuer+defer_taskrun\"\n";
        assert_eq!(
            parse_ring(log).as_deref(),
            Some("io_uring+single_issuer+defer_taskrun")
        );
        assert_eq!(
            parse_ring("INFO shard started shard=0 ring=epoll").as_deref(),
            Some("epoll")
        );
        assert_eq!(parse_ring("listening bench 127.0.0.1:1"), None);
    }

    #[test]
    fn rendering() {
        let v = [("listen", "1.2.3.4:5".to_string())];
        assert_eq!(render("bind {{listen}};", &v).unwrap(), "bind 1.2.3.4:5;");
        let e = render("x {{nope}} y", &v).unwrap_err().to_string();
        assert!(e.contains("{{nope}}"), "{e}");
    }

    #[test]
    fn every_template_renders() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers");
        let vars = [
            ("listen", "127.0.0.1:1".to_string()),
            ("origin", "127.0.0.1:2".to_string()),
            ("dir", "/tmp".to_string()),
            ("nginx_modules", String::new()),
            ("certs", "/tmp/certs".to_string()),
        ];
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
            let id = TargetId::parse(&stem).unwrap();
            assert_eq!(id.template_file(&dir), p);
            render(&std::fs::read_to_string(&p).unwrap(), &vars).unwrap();
            n += 1;
        }
        assert!(n >= 7, "expected all peer templates, found {n}");
    }
}
