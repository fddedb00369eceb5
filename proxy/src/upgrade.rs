//! Binary upgrade without dropping connections — HAProxy's `-sf <pid>` flow:
//! `shardcar --config FILE --upgrade-from PID` starts beside the running process. Its
//! listeners bind the same ports with `SO_REUSEPORT` (same user), so for a moment the kernel
//! spreads new connections over both processes; once every shard of the new one accepts, it
//! sends the old one `SIGTERM`, which stops accepting, drains its open connections (HTTP/1
//! `connection: close` on the next response, HTTP/2 GOAWAY, idle keepalive connections closed
//! after 1 s, all within its `drain_timeout`) and exits when the last one is done.
//!
//! The admin and health ports are not shared — an admin request must reach the process it
//! means — so the new process binds them as soon as the old one has let go of them (when it
//! exits), retrying every 50 ms.
//!
//! A connection the kernel has queued on one of the old process's listening sockets at the
//! instant that socket closes is reset, unless `net.ipv4.tcp_migrate_req = 1` (Linux ≥ 5.14,
//! per network namespace) moves it to a socket of the new process; [`migrate_req`] reads the
//! setting so the upgrade can warn when it is off (`kernel-config/sysctl.d` sets it).

use std::io;
use std::time::{Duration, Instant};

/// How often a busy admin port is tried again.
const RETRY_EVERY: Duration = Duration::from_millis(50);

/// Checks that `pid` is a running `shardcar` (so a stale or mistyped pid never signals an
/// unrelated process).
pub fn check_target(pid: u32) -> Result<(), String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map_err(|e| format!("--upgrade-from {pid}: no such process ({e})"))?;
    let comm = comm.trim();
    if comm != "shardcar" {
        return Err(format!(
            "--upgrade-from {pid}: that process is {comm:?}, not shardcar; nothing signalled"
        ));
    }
    if pid == std::process::id() {
        return Err(format!("--upgrade-from {pid}: that is this process"));
    }
    Ok(())
}

/// Tells the old process to stop accepting and drain (`SIGTERM`), once this one accepts.
pub fn retire(pid: u32) -> io::Result<()> {
    if migrate_req() == Some(false) {
        tracing::warn!(
            "net.ipv4.tcp_migrate_req is 0: a connection queued on the old process's listening \
             socket at the instant it closes is reset; set it to 1 for upgrades that lose none"
        );
    }
    crate::sys::terminate(pid)?;
    tracing::info!(
        old = pid,
        "binary upgrade: this process accepts; the old one stops accepting and drains"
    );
    Ok(())
}

/// `net.ipv4.tcp_migrate_req` in this network namespace (`None`: the kernel has no such
/// setting, before 5.14).
pub fn migrate_req() -> Option<bool> {
    let v = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req").ok()?;
    Some(v.trim() != "0")
}

/// Calls `bind` until it stops failing with `AddrInUse` (the old process still holds the
/// port) or `limit` has passed.
pub fn bind_when_free<T>(
    limit: Duration,
    mut bind: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        match bind() {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(RETRY_EVERY)
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_running_shardcar_is_a_target() {
        let me = std::process::id();
        // The test binary is not called shardcar.
        assert!(check_target(me).unwrap_err().contains("not shardcar"));
        assert!(check_target(u32::MAX)
            .unwrap_err()
            .contains("no such process"));
    }

    #[test]
    fn a_busy_port_is_retried_until_it_is_free() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(held);
        });
        let started = Instant::now();
        let l = bind_when_free(Duration::from_secs(5), || std::net::TcpListener::bind(addr));
        assert!(l.is_ok(), "{l:?}");
        assert!(started.elapsed() >= Duration::from_millis(150));
        release.join().unwrap();
        let busy = bind_when_free(Duration::from_millis(100), || {
            std::net::TcpListener::bind(l.as_ref().unwrap().local_addr().unwrap())
        });
        assert_eq!(busy.unwrap_err().kind(), io::ErrorKind::AddrInUse);
    }
}
