//! The reviewed files in `kernel-config/intercept/` for people who prefer plain shell or `nft -f`
//! over the subcommand. They are rendered from the same plans the subcommand runs; a test fails
//! when a committed file differs (regenerate with `SHARDCAR_BLESS=1 cargo test -p shardcar
//! intercept::`).

use super::options::{Backend, Mode, Options};
use super::{install_plan, nft, uninstall_plan, State};

/// The mark the bare-metal setup uses for the proxy's own sockets (`upstream_mark` in
/// `kernel-config/shardcar.yaml`); 0x539 = 1337, Istio's number.
pub const DEFAULT_MARK: u32 = 0x539;

/// The options the committed files are generated with.
pub fn default_options(mode: Mode, backend: Backend) -> Options {
    let mut o = Options::new(mode, backend);
    o.mark = Some(DEFAULT_MARK);
    o
}

fn names(mode: Mode, backend: Backend) -> (&'static str, &'static str) {
    let m = match mode {
        Mode::Redirect => "redirect",
        Mode::Tproxy => "tproxy",
    };
    let b = match backend {
        Backend::Iptables => "iptables",
        Backend::Nft => "nft",
    };
    (m, b)
}

fn script(verb: &str, mode: Mode, backend: Backend, body: &str) -> String {
    let (m, b) = names(mode, backend);
    format!(
        "#!/bin/sh\n\
         # Generated from proxy/src/intercept (the source of truth); a test fails if this file differs.\n\
         # Equivalent: shardcar intercept {verb} --backend {b} --mode {m} --mark {DEFAULT_MARK:#x}\n\
         # (the subcommand also removes a previous install first and removes only what is present).\n\
         set -e\n{body}"
    )
}

/// `(path under kernel-config/, contents)` for every generated file.
pub fn files() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for backend in [Backend::Iptables, Backend::Nft] {
        for mode in [Mode::Redirect, Mode::Tproxy] {
            let o = default_options(mode, backend);
            let (m, b) = names(mode, backend);
            let install = install_plan(&o).to_shell();
            let uninstall = uninstall_plan(&o, &State::after_install(&o)).to_shell();
            out.push((
                format!("intercept/{b}-{m}-install.sh"),
                script("install", mode, backend, &install),
            ));
            out.push((
                format!("intercept/{b}-{m}-uninstall.sh"),
                script("uninstall", mode, backend, &uninstall),
            ));
            if backend == Backend::Nft {
                let doc: String = o
                    .families()
                    .into_iter()
                    .map(|f| nft::table(&o, f))
                    .collect();
                out.push((
                    format!("intercept/shardcar-{m}.nft"),
                    format!(
                        "# Generated from proxy/src/intercept; a test fails if this file differs.\n\
                         # Load with `nft -f`{}; remove with `nft delete table ip shardcar`.\n{doc}",
                        if mode == Mode::Tproxy {
                            ", after adding the policy route from nft-tproxy-install.sh"
                        } else {
                            ""
                        }
                    ),
                ));
            }
        }
    }
    out
}
