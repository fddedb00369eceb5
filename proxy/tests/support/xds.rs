//! The xDS tests' builders: the Python control plane (`tests/py/xds_server.py`) as a child
//! whose JSON events are read on a thread, a `shardcar --bootstrap` child process, and Envoy
//! resource JSON (canonical proto JSON, as the control plane parses it).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::tools::{python, script, TempDir};

pub struct ControlPlane {
    pub port: u16,
    child: Child,
    events: Receiver<Value>,
    /// Events already read but not yet asked for.
    seen: Vec<Value>,
    /// Per type: the version of our last change (the server counts from 1 per type).
    versions: std::collections::HashMap<String, u64>,
}

impl ControlPlane {
    pub fn start(port: u16) -> ControlPlane {
        ControlPlane::start_with(port, &[])
    }

    /// With more arguments for `xds_server.py` (`--cert F --key F --ca F`: mTLS).
    pub fn start_with(port: u16, args: &[&str]) -> ControlPlane {
        let mut child = Command::new(python())
            .arg(script("xds_server.py"))
            .args(["--port", &port.to_string()])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the xDS test control plane");
        let out = child.stdout.take().unwrap();
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        let mut cp = ControlPlane {
            port: 0,
            child,
            events,
            seen: Vec::new(),
            versions: Default::default(),
        };
        let l = cp.wait("listening", |_| true, Duration::from_secs(20));
        cp.port = l["port"].as_u64().unwrap() as u16;
        cp
    }

    fn send(&mut self, cmd: Value) {
        *self
            .versions
            .entry(cmd["type"].as_str().unwrap().to_string())
            .or_default() += 1;
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
    }

    pub fn set(&mut self, kind: &str, resources: Vec<Value>) {
        self.send(json!({"op": "set", "type": kind, "resources": resources}));
    }

    pub fn update(&mut self, kind: &str, resources: Vec<Value>) {
        self.send(json!({"op": "update", "type": kind, "resources": resources}));
    }

    pub fn remove(&mut self, kind: &str, names: &[&str]) {
        self.send(json!({"op": "remove", "type": kind, "names": names}));
    }

    /// The first event (seen earlier or arriving within `limit`) called `event` that `pred`
    /// accepts; it is consumed. Panics on timeout, listing what was seen.
    pub fn wait(&mut self, event: &str, pred: impl Fn(&Value) -> bool, limit: Duration) -> Value {
        let ok = |v: &Value| v["event"] == event && pred(v);
        if let Some(i) = self.seen.iter().position(ok) {
            return self.seen.remove(i);
        }
        let end = Instant::now() + limit;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(v) if ok(&v) => return v,
                Ok(v) => self.seen.push(v),
                Err(_) => break,
            }
        }
        panic!(
            "no {event:?} event within {limit:?}; seen: {:#?}",
            self.seen
        );
    }

    /// The basic set: EDS cluster `web` at `eps`, route config `r1` sending everything there,
    /// HTTP listener `ingress` on `port`.
    pub fn serve_web(&mut self, port: u16, eps: &[SocketAddr]) {
        self.set("CDS", vec![eds_cluster("web")]);
        self.set("EDS", vec![cla("web", eps)]);
        self.set("RDS", vec![route_config("r1", &[("/", "web")])]);
        self.set("LDS", vec![http_listener("ingress", port, "r1")]);
    }

    /// Every event so far that nobody consumed (without waiting).
    pub fn events(&mut self) -> &[Value] {
        while let Ok(v) = self.events.try_recv() {
            self.seen.push(v);
        }
        &self.seen
    }

    /// Waits for the ACK of the type's latest change.
    pub fn acked(&mut self, kind: &str) -> Value {
        let version = json!(self.versions.get(kind).copied().unwrap_or(0).to_string());
        self.wait(
            "ack",
            |v| v["type"] == kind && v["version"] == version,
            Duration::from_secs(20),
        )
    }

    /// Waits for a NACK of `kind`; returns its error text.
    pub fn nacked(&mut self, kind: &str) -> String {
        let v = self.wait("nack", |v| v["type"] == kind, Duration::from_secs(20));
        v["error"].as_str().unwrap_or_default().to_string()
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `shardcar --bootstrap` process; killed on drop.
pub struct Sidecar {
    child: Child,
    pub admin: SocketAddr,
    _dir: TempDir,
}

impl Sidecar {
    /// `xds_extra`: more keys of the bootstrap's `xds:` block (`api: delta`, …).
    pub fn start(cp_port: u16, xds_extra: &str, statics_extra: &str) -> Sidecar {
        let cluster = format!(
            "{{name: xds, endpoints: [\"127.0.0.1:{cp_port}\"], protocol: http2, connect_timeout: 1s}}"
        );
        Sidecar::start_with_cluster(&cluster, xds_extra, statics_extra)
    }

    /// With the `xds` cluster given as a YAML flow mapping (a `tls:` block, say).
    pub fn start_with_cluster(cluster: &str, xds_extra: &str, statics_extra: &str) -> Sidecar {
        let dir = TempDir::new("xds");
        let boot = dir.file("bootstrap.yaml");
        std::fs::write(
            &boot,
            format!(
                "node: {{id: sidecar-1, cluster: test, metadata: {{NAMESPACE: default, ROLE: sidecar}}}}\n\
                 xds:\n  cluster: xds\n  reconnect_base: 100ms\n  reconnect_max: 1s\n  sds_dir: {}\n{xds_extra}\
                 static_resources:\n  admin: {{address: 127.0.0.1:0, health_address: off}}\n  clusters:\n    \
                 - {cluster}\n{statics_extra}",
                dir.file("sds").display()
            ),
        )
        .unwrap();
        // `SHARDCAR_BIN`: another build (the release binary, for the scale figures).
        let bin = std::env::var("SHARDCAR_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_shardcar").to_string());
        let mut child = Command::new(bin)
            .args(["--shards", "2", "--bootstrap"])
            .arg(&boot)
            .env(
                "SHARDCAR_LOG",
                std::env::var("SHARDCAR_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::piped())
            .spawn()
            .expect("start shardcar");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut admin = None;
        let mut line = String::new();
        while admin.is_none() {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "shardcar exited before its admin listened"
            );
            if let Some(a) = line.trim().strip_prefix("listening admin ") {
                admin = a.parse().ok();
            }
        }
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        Sidecar {
            child,
            admin: admin.unwrap(),
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `GET /config_dump` as JSON.
    pub fn dump(&self) -> Value {
        let body = http_get(self.admin, "/config_dump", "localhost").1;
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("config_dump {body:?}: {e}"))
    }

    /// Polls `/config_dump` until `pred` holds (10 s).
    pub fn dump_until(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let d = self.dump();
            if pred(&d) {
                return d;
            }
            assert!(
                Instant::now() < end,
                "config_dump never showed {what}: {d:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (for listeners the control plane names).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request on a fresh connection: (status, body); status 0 when it failed.
pub fn http_get(addr: SocketAddr, path: &str, host: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// Polls `GET path` on `addr` until `pred(status, body)` (10 s); returns what it saw last.
pub fn get_until(addr: SocketAddr, path: &str, pred: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, b) = http_get(addr, path, "app.test");
        if pred(s, &b) || Instant::now() >= end {
            return (s, b);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Gives cluster `other` the endpoint `at` (an origin named `name`) and routes `/name`
/// there, the rest staying on `web`; asserts both routes then serve. `what` names the step.
pub fn route_name_to_other(
    cp: &mut ControlPlane,
    lis: SocketAddr,
    (name, at): (&str, SocketAddr),
    what: &str,
) {
    cp.update("EDS", vec![cla("other", &[at])]);
    cp.set(
        "RDS",
        vec![route_config("r1", &[("/name", "other"), ("/", "web")])],
    );
    let (s, body) = get_until(lis, "/name", |s, b| s == 200 && b == name);
    assert_eq!((s, body.as_str()), (200, name), "{what}");
    assert_eq!(
        http_get(lis, "/x", "app.test").0,
        200,
        "{what}: `/` still serves"
    );
}

// ---- Envoy resources (canonical JSON) ----

pub fn eds_cluster(name: &str) -> Value {
    json!({"name": name, "type": "EDS", "connectTimeout": "1s",
           "edsClusterConfig": {"edsConfig": {"ads": {}}}})
}

pub fn cla(name: &str, addrs: &[SocketAddr]) -> Value {
    let eps: Vec<Value> = addrs
        .iter()
        .map(|a| json!({"endpoint": {"address": {"socketAddress": {"address": a.ip().to_string(), "portValue": a.port()}}}}))
        .collect();
    json!({"clusterName": name, "endpoints": [{"lbEndpoints": eps}]})
}

pub fn http_listener(name: &str, port: u16, route: &str) -> Value {
    json!({
        "name": name,
        "address": {"socketAddress": {"address": "127.0.0.1", "portValue": port}},
        "filterChains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typedConfig": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "statPrefix": name,
                "rds": {"routeConfigName": route, "configSource": {"ads": {}}},
                "httpFilters": [{"name": "envoy.filters.http.router",
                                 "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
            }
        }]}]
    })
}

/// [`http_listener`] terminating TLS with the SDS secret `secret` (no client certificate).
pub fn tls_listener(name: &str, port: u16, route: &str, secret: &str) -> Value {
    let mut l = http_listener(name, port, route);
    l["filterChains"][0]["transportSocket"] = json!({
        "name": "envoy.transport_sockets.tls",
        "typedConfig": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "commonTlsContext": {"tlsCertificateSdsSecretConfigs": [{"name": secret, "sdsConfig": {"ads": {}}}]}
        }
    });
    l
}

/// An SDS `tls_certificate` secret with the chain and key inline (PEM).
pub fn cert_secret(name: &str, chain_pem: &str, key_pem: &str) -> Value {
    json!({"name": name, "tlsCertificate": {
        "certificateChain": {"inlineString": chain_pem},
        "privateKey": {"inlineString": key_pem}}})
}

/// A route configuration: one virtual host (`*`), `routes` as (prefix, cluster).
pub fn route_config(name: &str, routes: &[(&str, &str)]) -> Value {
    let rs: Vec<Value> = routes
        .iter()
        .map(|(p, c)| json!({"match": {"prefix": p}, "route": {"cluster": c}}))
        .collect();
    json!({"name": name, "virtualHosts": [{"name": "all", "domains": ["*"], "routes": rs}]})
}

/// `shardload` beside the test binaries (built by `cargo test --workspace`, else built here).
pub fn shardload() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let bin = dir.join("shardload");
    if !bin.exists() {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-p", "shardload", "--bin", "shardload"])
            .status()
            .unwrap();
        assert!(st.success(), "cargo build -p shardload");
    }
    bin
}

/// Starts `shardload` at `rps` for `secs` against `url`; returns the child writing `json`.
pub fn load(url: &str, rps: u32, secs: u32, json: &std::path::Path) -> Child {
    load_with(url, rps, secs, json, &[])
}

/// [`load`] with more `shardload` arguments (`--ca`, `-H`, …).
pub fn load_with(url: &str, rps: u32, secs: u32, json: &std::path::Path, extra: &[&str]) -> Child {
    Command::new(shardload())
        .args([
            url,
            "--rps",
            &rps.to_string(),
            "--duration",
            &format!("{secs}s"),
            "--connections",
            "8",
            "--json",
        ])
        .arg(json)
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .expect("start shardload")
}

/// Waits for a `load` child and returns its summary: (requests, errors, non-200 statuses).
pub fn load_result(mut child: Child, json: &std::path::Path) -> (u64, u64, u64) {
    assert!(child.wait().unwrap().success(), "shardload failed");
    let v: Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    let requests = v["summary"]["requests"].as_u64().unwrap();
    let errors = v["summary"]["errors"].as_u64().unwrap();
    let non200 = v["status"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "200")
        .map(|(_, n)| n.as_u64().unwrap())
        .sum();
    (requests, errors, non200)
}
