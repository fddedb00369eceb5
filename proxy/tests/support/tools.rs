//! External clients the HTTP/2 tests drive (curl, nghttp, h2load, python3 with `h2`/`grpcio`),
//! all installed by `.ci/run`. A missing tool fails the test, unless `SHARDCAR_ALLOW_SKIP=1`
//! (then the test says it skipped and passes).

use std::path::PathBuf;
use std::process::{Command, Output};

/// Whether `tool` runs here; when not, panics unless skipping is allowed.
pub fn have(tool: &str, probe: &[&str]) -> bool {
    let ok = Command::new(tool)
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("SHARDCAR_ALLOW_SKIP").as_deref() == Ok("1"),
            "{tool} is required (installed by .ci/run); set SHARDCAR_ALLOW_SKIP=1 to skip"
        );
        eprintln!("SKIPPED: {tool} not available");
    }
    ok
}

/// The Python interpreter with `h2` and `grpcio` (`SHARDCAR_PYTHON`, default `python3`).
pub fn python() -> String {
    std::env::var("SHARDCAR_PYTHON").unwrap_or_else(|_| "python3".into())
}

pub fn have_python_modules(modules: &str) -> bool {
    have(&python(), &["-c", &format!("import {modules}")])
}

pub fn run(cmd: &str, args: &[&str]) -> Output {
    let out = Command::new(cmd).args(args).output().expect("spawn tool");
    if !out.status.success() {
        eprintln!(
            "{cmd} {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// A fresh temporary directory for one test, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "shardcar-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The directory of helper scripts (`proxy/tests/py`).
pub fn script(name: &str) -> String {
    format!("{}/tests/py/{name}", env!("CARGO_MANIFEST_DIR"))
}
