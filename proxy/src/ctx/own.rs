//! The proxy's own addresses, for loop detection: a connection whose (original) destination is
//! one of our listeners would come straight back to us.
//!
//! A listener bound to a specific IP owns exactly that address. A wildcard listener
//! (`0.0.0.0:P`, `[::]:P`) owns port P on every address *of this host* — not on remote hosts
//! that happen to use the same port. Whether an IP belongs to this host is answered by the
//! kernel (binding a throw-away socket to `ip:0` succeeds only for local addresses) and cached
//! per shard, so the check costs a syscall once per distinct IP, not per connection.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// Distinct IPs remembered before the cache starts over (bounds memory under a scan).
const CACHE_LIMIT: usize = 1024;

#[derive(Debug, Default)]
pub struct OwnAddrs {
    listeners: RefCell<Vec<SocketAddr>>,
    local_ip: RefCell<HashMap<IpAddr, bool>>,
}

impl OwnAddrs {
    pub fn new(listeners: Vec<SocketAddr>) -> OwnAddrs {
        OwnAddrs {
            listeners: RefCell::new(listeners),
            local_ip: RefCell::default(),
        }
    }

    /// Replaces the listening addresses (a reload added, removed or rebound listeners).
    pub fn set(&self, listeners: Vec<SocketAddr>) {
        *self.listeners.borrow_mut() = listeners;
    }

    /// Whether `addr` is one of this proxy's listening addresses.
    pub fn is_own_listener(&self, addr: SocketAddr) -> bool {
        self.listeners.borrow().iter().any(|l| {
            l.port() == addr.port()
                && (l.ip() == addr.ip() || (l.ip().is_unspecified() && self.is_local(addr.ip())))
        })
    }

    fn is_local(&self, ip: IpAddr) -> bool {
        if ip.is_loopback() || ip.is_unspecified() {
            return true;
        }
        if let Some(v) = self.local_ip.borrow().get(&ip) {
            return *v;
        }
        let local = std::net::TcpListener::bind(SocketAddr::new(ip, 0)).is_ok();
        let mut cache = self.local_ip.borrow_mut();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(ip, local);
        local
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listener_owns_local_addresses_only() {
        let own = OwnAddrs::new(vec!["0.0.0.0:15001".parse().unwrap()]);
        assert!(own.is_own_listener("127.0.0.1:15001".parse().unwrap()));
        assert!(own.is_own_listener("127.0.0.9:15001".parse().unwrap()));
        // TEST-NET-3: never assigned to a host, so a remote service on the same port.
        assert!(!own.is_own_listener("203.0.113.7:15001".parse().unwrap()));
        assert!(!own.is_own_listener("127.0.0.1:15002".parse().unwrap()));
    }

    #[test]
    fn specific_listener_owns_its_address_only() {
        let own = OwnAddrs::new(vec!["127.0.0.1:8000".parse().unwrap()]);
        assert!(own.is_own_listener("127.0.0.1:8000".parse().unwrap()));
        assert!(!own.is_own_listener("127.0.0.2:8000".parse().unwrap()));
    }
}
