//! Python test servers run as child processes on 127.0.0.1 port 0 (the grpcio server of
//! `tests/py/grpc_pair.py`, the GOAWAY server of `tests/py/goaway_server.py`); each stops when
//! its handle drops (stdin closed, then the child is killed by handle and waited).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use super::tools::{python, run, script};

pub struct PyServer {
    pub addr: SocketAddr,
    child: Child,
}

/// The grpcio test server.
pub type GrpcServer = PyServer;

impl PyServer {
    pub fn start() -> PyServer {
        PyServer::run("grpc_pair.py", &["server"])
    }

    /// Runs `tests/py/<name>` with `args`; it prints its port on its first line.
    pub fn run(name: &str, args: &[&str]) -> PyServer {
        let mut child = Command::new(python())
            .arg(script(name))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the gRPC test server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("server prints its port");
        PyServer {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
        }
    }
}

impl PyServer {
    /// Writes one line to the server's stdin (scripts that take commands there).
    pub fn tell(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `grpc_pair.py` with `args`; parses its JSON line.
pub fn client(args: &[&str]) -> serde_json::Value {
    let s = script("grpc_pair.py");
    let mut all = vec![s.as_str()];
    all.extend_from_slice(args);
    let out = run(&python(), &all);
    assert!(out.status.success(), "grpc client failed");
    serde_json::from_slice(&out.stdout).expect("JSON from the grpc client")
}
