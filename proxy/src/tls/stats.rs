//! TLS counters of one shard: handshakes done and failed (by reason label), on listeners
//! (downstream) and to clusters (upstream), and PERMISSIVE connections served in plaintext.
//! Thread-local: a shard is one thread and the only writer, and its stats reply reads them
//! on that thread ([`snapshot`]); nothing is shared.

use std::cell::{Cell, RefCell};

#[derive(Debug, Default)]
struct Counters {
    handshakes: Cell<u64>,
    plaintext: Cell<u64>,
    failures: RefCell<Vec<(&'static str, u64)>>,
    upstream_handshakes: Cell<u64>,
    upstream_failures: RefCell<Vec<(&'static str, u64)>>,
}

thread_local! {
    static COUNTERS: Counters = Counters::default();
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

fn bump_label(v: &RefCell<Vec<(&'static str, u64)>>, label: &'static str) {
    let mut v = v.borrow_mut();
    match v.iter_mut().find(|(l, _)| *l == label) {
        Some((_, n)) => *n += 1,
        None => v.push((label, 1)),
    }
}

/// A listener completed a handshake.
pub fn handshake_ok() {
    COUNTERS.with(|c| bump(&c.handshakes));
}

/// A listener's handshake failed for `label` ([`super::HandshakeError::label`], or `timeout`).
pub fn handshake_failed(label: &'static str) {
    COUNTERS.with(|c| bump_label(&c.failures, label));
}

/// A PERMISSIVE listener served a connection in plaintext.
pub fn plaintext() {
    COUNTERS.with(|c| bump(&c.plaintext));
}

/// An upstream TLS handshake completed.
pub fn upstream_ok() {
    COUNTERS.with(|c| bump(&c.upstream_handshakes));
}

/// An upstream TLS handshake failed for `label`.
pub fn upstream_failed(label: &'static str) {
    COUNTERS.with(|c| bump_label(&c.upstream_failures, label));
}

/// This thread's counters.
pub fn snapshot() -> TlsCounts {
    COUNTERS.with(|c| TlsCounts {
        handshakes: c.handshakes.get(),
        plaintext: c.plaintext.get(),
        failures: c.failures.borrow().clone(),
        upstream_handshakes: c.upstream_handshakes.get(),
        upstream_failures: c.upstream_failures.borrow().clone(),
    })
}

/// TLS counters as reported in shard stats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsCounts {
    pub handshakes: u64,
    pub plaintext: u64,
    /// Failed listener handshakes by reason.
    pub failures: Vec<(&'static str, u64)>,
    pub upstream_handshakes: u64,
    pub upstream_failures: Vec<(&'static str, u64)>,
}

impl TlsCounts {
    pub fn merge(&mut self, o: &TlsCounts) {
        self.handshakes += o.handshakes;
        self.plaintext += o.plaintext;
        self.upstream_handshakes += o.upstream_handshakes;
        for (dst, src) in [
            (&mut self.failures, &o.failures),
            (&mut self.upstream_failures, &o.upstream_failures),
        ] {
            for (l, n) in src {
                match dst.iter_mut().find(|(x, _)| x == l) {
                    Some((_, m)) => *m += n,
                    None => dst.push((l, *n)),
                }
            }
        }
    }

    /// Failed listener handshakes for `label`.
    pub fn failed(&self, label: &str) -> u64 {
        self.failures
            .iter()
            .find(|(l, _)| *l == label)
            .map_or(0, |(_, n)| *n)
    }
}
