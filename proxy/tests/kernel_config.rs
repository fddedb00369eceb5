//! The reviewed files in `kernel-config/` agree with the Rust source of truth: the sidecar
//! config loads and carries the mark the rules exclude, the systemd unit's interception
//! arguments parse with the real CLI, every sysctl has its reason, and `host-check` changes
//! nothing. (The generated rule scripts are checked in `intercept::tests`.)

use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use shardcar::cli::{Cli, Command as Sub, InterceptAction};
use shardcar::intercept::scripts::DEFAULT_MARK;
use shardcar::Config;

fn file(rel: &str) -> (PathBuf, String) {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../kernel-config")
        .join(rel);
    let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (p, s)
}

#[test]
fn sidecar_config_is_valid_and_marks_upstream_sockets() {
    let (p, _) = file("shardcar.yaml");
    let c = Config::from_file(&p).unwrap();
    assert_eq!(c.upstream_mark, Some(DEFAULT_MARK));
    let ports: Vec<u16> = c.listeners.iter().map(|l| l.address.port()).collect();
    assert_eq!(ports, [15001, 15006]);
}

/// The default `SHARDCAR_INTERCEPT` value from the unit's `Environment=` line.
fn unit_intercept_args(unit: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find(|l| l.starts_with("Environment=\"SHARDCAR_INTERCEPT="))
        .expect("Environment=\"SHARDCAR_INTERCEPT=...\" line");
    let v = line
        .trim_start_matches("Environment=\"SHARDCAR_INTERCEPT=")
        .trim_end_matches('"');
    v.split_whitespace().map(String::from).collect()
}

#[test]
fn systemd_unit_installs_and_removes_rules_that_match_the_config() {
    let (_, unit) = file("systemd/shardcar.service");
    for want in [
        "AmbientCapabilities=CAP_NET_ADMIN CAP_NET_BIND_SERVICE",
        "ExecStartPre=+/usr/local/bin/shardcar intercept install $SHARDCAR_INTERCEPT",
        "ExecStopPost=+/usr/local/bin/shardcar intercept uninstall $SHARDCAR_INTERCEPT",
        "ExecStart=/usr/local/bin/shardcar --config /etc/shardcar/shardcar.yaml",
        "User=shardcar",
    ] {
        assert!(unit.lines().any(|l| l == want), "unit lacks {want:?}");
    }
    let args = unit_intercept_args(&unit);
    for verb in ["install", "uninstall"] {
        let argv = ["shardcar", "intercept", verb]
            .into_iter()
            .map(String::from)
            .chain(args.iter().cloned());
        let cli = Cli::try_parse_from(argv).unwrap();
        let Some(Sub::Intercept { action }) = cli.command else {
            panic!("not an intercept command")
        };
        let (InterceptAction::Install(a)
        | InterceptAction::Uninstall(a)
        | InterceptAction::Show(a)) = action;
        let o = a.options().unwrap();
        assert_eq!(
            o.mark,
            Some(DEFAULT_MARK),
            "--mark must equal upstream_mark"
        );
    }
}

/// The eBPF unit variant: fail-open install (`-+`), exact uninstall after stop, and arguments
/// that parse as `--mode ebpf` with the config's mark.
#[test]
fn systemd_ebpf_unit_is_fail_open_and_parses_as_ebpf_mode() {
    let (_, unit) = file("systemd/shardcar-ebpf.service");
    for want in [
        "ExecStartPre=-+/usr/local/bin/shardcar intercept install $SHARDCAR_INTERCEPT",
        "ExecStopPost=+/usr/local/bin/shardcar intercept uninstall $SHARDCAR_INTERCEPT",
        "ExecStart=/usr/local/bin/shardcar --config /etc/shardcar/shardcar.yaml",
    ] {
        assert!(unit.lines().any(|l| l == want), "unit lacks {want:?}");
    }
    let argv = [
        "shardcar",
        "intercept",
        "install",
        "--cgroup",
        "/sys/fs/cgroup",
    ]
    .into_iter()
    .map(String::from)
    .chain(unit_intercept_args(&unit));
    let Some(Sub::Intercept {
        action: InterceptAction::Install(a),
    }) = Cli::try_parse_from(argv).unwrap().command
    else {
        panic!("not an install")
    };
    let o = a.ebpf_options().unwrap().expect("--mode ebpf");
    assert_eq!(
        o.base.mark,
        Some(DEFAULT_MARK),
        "--mark must equal upstream_mark"
    );
    assert!(o.accelerate);
}

#[test]
fn every_sysctl_has_a_reason_and_the_required_keys_are_there() {
    let (_, conf) = file("sysctl.d/60-shardcar.conf");
    let lines: Vec<&str> = conf.lines().collect();
    let mut keys = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (k, v) = l
            .split_once(" = ")
            .unwrap_or_else(|| panic!("line {}: {l:?}", i + 1));
        assert!(!v.trim().is_empty());
        assert!(
            i > 0 && lines[i - 1].starts_with("# ") && lines[i - 1].len() > 20,
            "{k} needs a one-line reason above it"
        );
        keys.push(k);
    }
    for k in [
        "net.core.somaxconn",
        "net.core.netdev_max_backlog",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_tw_reuse",
        "net.core.rmem_max",
        "net.core.wmem_max",
        "net.netfilter.nf_conntrack_max",
        "fs.nr_open",
    ] {
        assert!(keys.contains(&k), "missing {k}");
    }
}

#[test]
fn host_check_reports_and_changes_nothing() {
    let (script, _) = file("host-check.sh");
    let read = || {
        [
            "net.core.somaxconn",
            "net.ipv4.ip_local_port_range",
            "fs.nr_open",
        ]
        .map(|k| std::fs::read_to_string(format!("/proc/sys/{}", k.replace('.', "/"))).ok())
    };
    let before = read();
    let out = Command::new("sh").arg(&script).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("sysctl (from"), "{text}");
    assert!(
        text.trim_end()
            .ends_with("difference(s); nothing was changed."),
        "{text}"
    );
    assert_eq!(before, read());
}
