//! With `--features ebpf`, compiles `bpf/shardcar.bpf.c` for the `bpf` target with clang
//! (`$CLANG`, default `clang`; headers from Debian's `libbpf-dev` and `linux-libc-dev`). The
//! default build runs nothing here and needs no clang.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=bpf/shardcar.bpf.c");
    println!("cargo:rerun-if-env-changed=CLANG");
    if std::env::var_os("CARGO_FEATURE_EBPF").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("shardcar.bpf.o");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    // <linux/bpf.h> includes <asm/types.h>, which Debian keeps under the multiarch directory.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let multiarch = format!("/usr/include/{arch}-linux-gnu");
    let status = Command::new(&clang)
        .args(["-target", "bpf", "-O2", "-g", "-Wall", "-Werror"])
        .arg(format!("-I{multiarch}"))
        .args(["-c", "bpf/shardcar.bpf.c", "-o"])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "the `ebpf` feature needs clang ({clang}: {e}); apt-get install clang libbpf-dev"
            )
        });
    assert!(
        status.success(),
        "{clang} failed to compile bpf/shardcar.bpf.c"
    );
}
