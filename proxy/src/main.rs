//! The `shardcar` binary: parse the command line, load config, run shards until SIGTERM/SIGINT.

use std::process::ExitCode;

use clap::Parser;
use shardcar::cli::{CertsAction, Cli, Command, InterceptAction};
use shardcar::intercept;
use shardcar::reload::{self, Control, ControlHandle, Trigger};
use shardcar::tls::{devca_files, SpiffeId, TrustDomain};
use shardcar::{Config, Server};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;

/// mimalloc (v3, built without transparent huge pages) instead of glibc malloc: it keeps each
/// size class on its own pages and returns pages that empty out, so the read buffers idle
/// connections give back stop pinning the pages around the objects they keep. glibc left every
/// freed 4 KiB read buffer resident between live objects. 5,000 idle connections (shardbench
/// `mem` set, median of 3, KiB per connection, HTTP/1.1 / L4 copy): glibc 9.70 / 4.44;
/// jemalloc 5.3 5.75 / 4.45; mimalloc 3.81 / 4.54 (LD_PRELOAD, before the connection tasks were
/// split per protocol); with that split, mimalloc v3 with THP 4.26 / 3.82 and idle RSS 16 MB
/// (2 MiB pages), without THP 3.55 / 2.68 and 6.9 MB. perf-reports/2026-12-03-idle-memory.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let _log = shardcar::logging::init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Validate { file }) => match Config::from_file(&file) {
            Ok(c) => {
                println!(
                    "{}: ok ({} listeners, {} clusters)",
                    file.display(),
                    c.listeners.len(),
                    c.clusters.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                ExitCode::from(2)
            }
        },
        Some(Command::Intercept { action }) => intercept_cmd(&action),
        Some(Command::Certs { action }) => certs_cmd(&action),
        Some(Command::Tap(args)) => {
            match shardcar::admin::tap_client::run(&args.query(), &mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tap: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        None => run(&cli),
    }
}

/// `shardcar intercept install|uninstall|show`.
fn intercept_cmd(action: &InterceptAction) -> ExitCode {
    let (InterceptAction::Install(args)
    | InterceptAction::Uninstall(args)
    | InterceptAction::Show(args)) = action;
    match args.ebpf_options() {
        Ok(Some(o)) => return ebpf_cmd(action, args.dry_run, &o),
        Ok(None) => {}
        Err(e) => {
            eprintln!("intercept: {e}");
            return ExitCode::from(2);
        }
    }
    let o = match args.options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("intercept: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match (action, args.dry_run) {
        (InterceptAction::Install(_), true) => {
            print!(
                "# a real run first removes any previous install of ours\n{}",
                intercept::install_plan(&o).to_shell()
            );
            Ok(())
        }
        (InterceptAction::Uninstall(_), true) => intercept::exec::read_state(&o)
            .map(|s| print!("{}", intercept::uninstall_plan(&o, &s).to_shell())),
        (InterceptAction::Install(_), false) => intercept::exec::install(&o).map(|p| {
            eprintln!("intercept: installed ({} steps)", p.steps.len());
        }),
        (InterceptAction::Uninstall(_), false) => intercept::exec::uninstall(&o).map(|p| {
            eprintln!("intercept: removed ({} steps)", p.steps.len());
        }),
        (InterceptAction::Show(_), _) => intercept::exec::show(&o).map(|s| print!("{s}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("intercept: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `shardcar certs init|issue`.
fn certs_cmd(action: &CertsAction) -> ExitCode {
    let result = match action {
        CertsAction::Init {
            trust_domain,
            dir,
            valid,
            force,
        } => TrustDomain::new(trust_domain)
            .map_err(|e| format!("--trust-domain {trust_domain:?}: {e}"))
            .and_then(|td| devca_files::init(dir, &td, *valid, *force))
            .map(|cert| println!("CA for {trust_domain}: {}", cert.display())),
        CertsAction::Issue {
            spiffe_id,
            dir,
            out,
            name,
            dns,
            valid,
        } => SpiffeId::parse(spiffe_id)
            .map_err(|e| format!("--spiffe-id {spiffe_id:?}: {e}"))
            .and_then(|id| {
                let out = out.as_deref().unwrap_or(dir);
                devca_files::issue(dir, out, &id, name.as_deref(), dns, *valid)
            })
            .map(|f| {
                println!(
                    "{spiffe_id}: {} {} (serial {:x})",
                    f.cert.display(),
                    f.key.display(),
                    f.serial
                )
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("certs: {e}");
            ExitCode::from(2)
        }
    }
}

/// `shardcar intercept … --mode ebpf`. An install that cannot work says why in one line,
/// leaves nothing behind and exits 3; traffic then flows uncaptured (fail-open).
fn ebpf_cmd(action: &InterceptAction, dry_run: bool, o: &intercept::ebpf::EbpfOptions) -> ExitCode {
    use intercept::ebpf;
    let result = match (action, dry_run) {
        (InterceptAction::Install(_), true) => {
            print!("{}", ebpf::describe(o));
            Ok(())
        }
        (InterceptAction::Install(_), false) => ebpf::install(o).map(|pinned| {
            eprintln!(
                "intercept: eBPF installed on {} ({} objects pinned under {})",
                o.cgroup.display(),
                pinned.len(),
                o.pin_dir().display()
            );
        }),
        (InterceptAction::Uninstall(_), _) => ebpf::uninstall(o).map(|removed| {
            eprintln!("intercept: eBPF removed ({} pinned objects)", removed.len());
        }),
        (InterceptAction::Show(_), _) => ebpf::show(o).map(|s| print!("{s}")).map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "intercept: eBPF unavailable, nothing installed, traffic is not captured: {e}"
            );
            ExitCode::from(3)
        }
    }
}

fn run(cli: &Cli) -> ExitCode {
    let boot = match &cli.bootstrap {
        Some(path) => match shardcar::xds::Bootstrap::from_file(path) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let config = match &cli.config {
        _ if boot.is_some() => boot
            .as_ref()
            .map(|b| b.initial.clone())
            .unwrap_or_else(Config::embedded_default),
        Some(path) => match Config::from_file(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => Config::embedded_default(),
    };
    let signals = match Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(pid) = cli.upgrade_from {
        if let Err(e) = shardcar::upgrade::check_target(pid) {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    }
    let shards = cli
        .shards
        .unwrap_or_else(|| wire::allowed_cpus().len().max(1));
    let server = match Server::start(config, shards) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (name, addr) in server.listeners() {
        // A stable, parseable line on stdout: tests and scripts read bound ports from it.
        println!("listening {name} {addr}");
    }
    if let Some(pid) = cli.upgrade_from {
        if let Err(e) = shardcar::upgrade::retire(pid) {
            tracing::error!(old = pid, error = %e, "binary upgrade: cannot signal the old process; stop it yourself");
        }
    }
    let handle = server.handle();
    let admin = server.config().admin.clone();
    // Upgrading: the old process holds the admin ports until it exits (at most its drain).
    let admin_wait = cli
        .upgrade_from
        .map(|_| server.config().drain_timeout + std::time::Duration::from_secs(10));
    let (mut control, control_handle) = Control::new(server, cli.config.clone());
    if let Some(b) = &boot {
        control.set_text(b.statics.to_string());
    }
    if let Err(e) = start_admin(handle, &admin, &control_handle, admin_wait) {
        eprintln!("cannot start the admin server: {e}");
        control.into_server().shutdown();
        return ExitCode::FAILURE;
    }
    if let Some(b) = boot {
        if let Err(e) = shardcar::xds::start(b, control_handle.clone()) {
            eprintln!("cannot start the xds client: {e}");
            control.into_server().shutdown();
            return ExitCode::FAILURE;
        }
    }
    let watched = cli.config.as_deref().filter(|_| !cli.no_watch);
    let _watch = watched.and_then(|path| {
        reload::watch::start(path, control_handle.clone())
            .map_err(|e| tracing::warn!(file = %path.display(), error = %e, "cannot watch the config file; reload with SIGHUP or POST /reload"))
            .ok()
    });
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let on_signal = control_handle.clone();
    let _signals = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || handle_signals(signals, &on_signal));
    let server = control.run();
    server.shutdown();
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// SIGHUP reloads the config; SIGUSR1 reopens access-log files (logrotate); SIGTERM/SIGINT stop the control loop (then the shards drain).
fn handle_signals(mut signals: Signals, control: &ControlHandle) {
    for sig in signals.forever() {
        match sig {
            SIGHUP => control.request_reload(Trigger::Sighup),
            SIGUSR1 => shardcar::telemetry::access_log::writer::reopen_all(),
            _ => {
                tracing::info!(
                    signal = sig,
                    "shutting down: no new connections, draining open ones"
                );
                control.shutdown();
                return;
            }
        }
    }
}

/// Starts the admin and health servers the config asks for and prints their bound addresses
/// (`listening admin …`, `listening admin-health …`). With `wait` (a binary upgrade) a port
/// still held by the old process is bound by a background thread once it is free.
fn start_admin(
    server: shardcar::server::ServerHandle,
    settings: &shardcar::config::AdminSettings,
    control: &ControlHandle,
    wait: Option<std::time::Duration>,
) -> std::io::Result<()> {
    use shardcar::admin::{self, AdminCtx};
    let ctx = AdminCtx {
        server,
        started: std::time::Instant::now(),
        health_failed: Default::default(),
        baseline: Default::default(),
        control: Some(control.clone()),
    };
    for (name, addr, table) in [
        ("admin", settings.address, admin::ADMIN),
        ("admin-health", settings.health_address, admin::HEALTH),
    ] {
        let Some(addr) = addr else { continue };
        match (admin::serve(addr, table, ctx.clone()), wait) {
            (Ok(bound), _) => println!("listening {name} {}", bound.addr),
            (Err(e), Some(limit)) if e.kind() == std::io::ErrorKind::AddrInUse => {
                tracing::info!(%addr, "{name} port still held by the old process; binding it when free");
                let ctx = ctx.clone();
                std::thread::Builder::new()
                    .name(format!("{name}-bind"))
                    .spawn(move || {
                        use std::io::Write;
                        match shardcar::upgrade::bind_when_free(limit, || {
                            admin::serve(addr, table, ctx.clone())
                        }) {
                            Ok(bound) => {
                                println!("listening {name} {}", bound.addr);
                                let _ = std::io::stdout().flush();
                            }
                            Err(e) => tracing::error!(%addr, error = %e, "{name} not started"),
                        }
                    })?;
            }
            (Err(e), _) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("{name} on {addr}: {e}"),
                ))
            }
        }
    }
    Ok(())
}
