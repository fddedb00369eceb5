//! Flood and abuse guards: a raw HTTP/2 attacker (`tests/py/h2flood.py`, hand-built frames)
//! runs each attack while a legitimate client (h2load) uses the same listener. The attacker
//! must get GOAWAY (ENHANCE_YOUR_CALM where the guard is ours), a reset or a close; the
//! legitimate client must see zero errors; the shard's CPU must return to idle afterwards.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use shardcar::{Config, Server};
use support::origin::Origin;
use support::tools::{have, have_python_modules, python, run, script};

const ENHANCE_YOUR_CALM: u64 = 0xb;

/// Serialises this file's tests (the harness runs tests on threads; this is no data path).
#[allow(clippy::disallowed_types)]
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn proxy(origin: SocketAddr) -> (Server, SocketAddr) {
    let yaml = format!(
        "listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http2
    http2:
      stream_idle_timeout: 500ms
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {{prefix: \"/\"}}
            cluster: app
clusters:
  - name: app
    endpoints: [\"{origin}\"]
    connect_timeout: 500ms
"
    );
    let server = Server::start(Config::from_yaml(&yaml).unwrap(), 1).expect("proxy starts");
    let addr = server.addr("web").unwrap();
    (server, addr)
}

/// CPU ticks (1/100 s) the shard threads of this process used so far.
fn shard_ticks() -> u64 {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let comm = std::fs::read_to_string(p.join("comm")).ok()?;
            if !comm.starts_with("shard") {
                return None;
            }
            let stat = std::fs::read_to_string(p.join("stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split(' ').collect();
            Some(f[11].parse::<u64>().ok()? + f[12].parse::<u64>().ok()?)
        })
        .sum()
}

/// Runs `attack` against a proxy while h2load sends legitimate requests; returns the
/// attacker's report and the proxy's guard-close count.
fn under_attack(attack: &str, count: &str) -> (serde_json::Value, u64) {
    // One attack at a time: the CPU check reads every shard thread of this test process.
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let origin = Origin::start("o1");
    let (server, addr) = proxy(origin.addr);
    let url = format!("http://{addr}/name");
    let legit = std::thread::spawn(move || {
        let out = run("h2load", &["-D", "3", "-c", "2", "-m", "4", &url]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    });
    std::thread::sleep(Duration::from_millis(300));
    let out = run(
        &python(),
        &[&script("h2flood.py"), &addr.to_string(), attack, count],
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("attacker prints JSON");
    let text = legit.join().unwrap();
    assert!(
        text.contains(" 0 failed, 0 errored, 0 timeout"),
        "legitimate client saw errors during {attack}: {text}"
    );
    assert!(!text.contains("done, 0 succeeded"), "{text}");
    eprintln!("{attack}: {}", String::from_utf8_lossy(&out.stdout).trim());
    // Once both are gone the shard goes back to idle: under 5 ticks (50 ms) in one second.
    std::thread::sleep(Duration::from_millis(300));
    let before = shard_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let busy = shard_ticks() - before;
    assert!(
        busy <= 5,
        "shard still busy after {attack}: {busy} ticks in 1 s"
    );
    (report, server.total_stats().h2_guard_closes)
}

fn tools() -> bool {
    have("h2load", &["--version"]) && have_python_modules("h2")
}

fn calmed(attack: &str, count: &str) {
    if !tools() {
        return;
    }
    let (r, closes) = under_attack(attack, count);
    assert_eq!(r["goaway"], ENHANCE_YOUR_CALM, "{attack}: {r}");
    assert!(closes >= 1, "{attack}: guard close counted");
}

#[test]
fn rapid_reset_gets_goaway_enhance_your_calm() {
    calmed("rapid_reset", "5000");
}

#[test]
fn ping_flood_gets_goaway_enhance_your_calm() {
    calmed("ping", "20000");
}

#[test]
fn settings_flood_gets_goaway_enhance_your_calm() {
    calmed("settings", "20000");
}

#[test]
fn empty_data_flood_gets_goaway_enhance_your_calm() {
    calmed("empty_data", "20000");
}

#[test]
fn priority_and_window_update_floods_get_goaway_enhance_your_calm() {
    calmed("priority", "20000");
    calmed("window_update", "20000");
}

#[test]
fn continuation_flood_is_cut_off_before_decoding() {
    if !tools() {
        return;
    }
    let (r, _) = under_attack("continuation", "2000");
    assert!(!r["goaway"].is_null() || r["closed"] == true, "{r}");
    assert!(
        r["status"].is_null(),
        "no response to an unfinished header block: {r}"
    );
}

#[test]
fn hpack_bomb_is_refused_by_the_header_list_limit() {
    if !tools() {
        return;
    }
    let (r, _) = under_attack("hpack_bomb", "1");
    assert!(
        r["status"] == "431" || r["rst"].as_u64() > Some(0) || !r["goaway"].is_null(),
        "{r}"
    );
}

#[test]
fn zero_window_stall_is_reset_by_the_stream_idle_timeout() {
    if !tools() {
        return;
    }
    let (r, _) = under_attack("zero_window", "1");
    assert!(r["rst"].as_u64() >= Some(1), "stalled stream reset: {r}");
}
