//! The impure edge of interception: read what is installed (`iptables-save`, `nft list tables`,
//! `ip rule`, `ip route`) and run plans. Everything else in [`super`] is pure.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::process::{Command, Stdio};

use super::options::{Backend, Family, Options};
use super::plan::{Plan, Step};
use super::{iptables, nft, route, State};

/// Runs `argv`, returning its stdout; a non-zero exit is an error carrying its stderr.
pub fn output(argv: &[String], stdin: Option<&str>) -> io::Result<String> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::other("empty command"))?;
    let mut child = Command::new(prog)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("{prog}: {e}")))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "`{}` failed ({}): {}",
            argv.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn words(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn save_tool(f: Family) -> &'static str {
    match f {
        Family::V4 => "iptables-save",
        Family::V6 => "ip6tables-save",
    }
}

/// Reads what of ours is present: both backends (so switching `--backend` between install and
/// uninstall leaves nothing behind) and both families (an IPv6 leftover is found even without
/// `--ipv6`), plus the TPROXY policy routes. Errors from the chosen backend's tools are fatal;
/// the other backend's tools may be missing.
pub fn read_state(o: &Options) -> io::Result<State> {
    let mut s = State::default();
    let families = [Family::V4, Family::V6];
    let fatal = |backend: Backend, f: Family| o.backend == backend && (f == Family::V4 || o.ipv6);
    for f in families {
        match output(&words(&[save_tool(f)]), None) {
            Ok(save) => s.iptables.push((f, iptables::Installed::parse(&save))),
            Err(e) if fatal(Backend::Iptables, f) => return Err(e),
            Err(e) => tracing::debug!(error = %e, "{} unavailable", save_tool(f)),
        }
    }
    match output(&words(&["nft", "list", "tables"]), None) {
        Ok(list) => s.nft = nft::installed(&list),
        Err(e) if fatal(Backend::Nft, Family::V4) => return Err(e),
        Err(e) => tracing::debug!(error = %e, "nft unavailable"),
    }
    for f in families {
        let [rules, table] = route::show_commands(f);
        match (output(&rules, None), output(&table, None)) {
            (Ok(r), Ok(t)) => s.routes.push((f, route::Installed::parse(o, &r, &t))),
            (Err(e), _) | (_, Err(e)) if f == Family::V6 && !o.ipv6 => {
                tracing::debug!(error = %e, "IPv6 policy routing unavailable")
            }
            (Err(e), _) | (_, Err(e)) => return Err(e),
        }
    }
    Ok(s)
}

/// Runs every step in order; stops at the first failure.
pub fn execute(plan: &Plan) -> io::Result<()> {
    for step in &plan.steps {
        match step {
            Step::Run(argv) => output(argv, None).map(drop)?,
            Step::Nft(doc) => output(&words(&["nft", "-f", "-"]), Some(doc)).map(drop)?,
        }
    }
    Ok(())
}

/// `install`: removes whatever of ours is present, then installs. Returns the plan it ran.
pub fn install(o: &Options) -> io::Result<Plan> {
    let mut plan = super::uninstall_plan(o, &read_state(o)?);
    plan.extend(super::install_plan(o));
    execute(&plan)?;
    Ok(plan)
}

/// `uninstall`: removes what of ours is present (nothing present is not an error).
pub fn uninstall(o: &Options) -> io::Result<Plan> {
    let plan = super::uninstall_plan(o, &read_state(o)?);
    execute(&plan)?;
    Ok(plan)
}

/// `show`: our rules, tables and routes as the kernel's tools print them.
pub fn show(o: &Options) -> io::Result<String> {
    let state = read_state(o)?;
    let mut out = String::new();
    if state.is_empty() {
        out.push_str("shardcar interception: not installed\n");
        return Ok(out);
    }
    out.push_str("shardcar interception: installed\n");
    for (f, i) in &state.iptables {
        if i.is_empty() {
            continue;
        }
        let save = output(&words(&[save_tool(*f)]), None)?;
        let mut table = "";
        for line in save.lines() {
            if let Some(t) = line.strip_prefix('*') {
                table = t;
            } else if line.contains(iptables::PREFIX) {
                let _ = writeln!(out, "{}: {table}: {line}", save_tool(*f));
            }
        }
    }
    for f in &state.nft {
        let fam = if *f == Family::V4 { "ip" } else { "ip6" };
        out.push_str(&output(
            &words(&["nft", "list", "table", fam, nft::TABLE]),
            None,
        )?);
    }
    for (f, r) in &state.routes {
        if r.rules > 0 || r.route {
            let _ = writeln!(
                out,
                "{f:?}: {} policy rule(s) fwmark {:#x} lookup {}, local route: {}",
                r.rules, o.tproxy_mark, o.route_table, r.route
            );
        }
    }
    Ok(out)
}
