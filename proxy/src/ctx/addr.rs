//! Address newtypes: a client's address, the local address it reached, the destination it meant
//! before interception, and the upstream we connect to are four different things, so each has
//! its own type and one cannot be passed where another is meant.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

macro_rules! addr_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub SocketAddr);

        impl $name {
            pub fn ip(&self) -> IpAddr {
                self.0.ip()
            }
            pub fn port(&self) -> u16 {
                self.0.port()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

addr_newtype!(
    /// The downstream client's address (the accepted socket's peer).
    PeerAddr
);
addr_newtype!(
    /// The accepted socket's local address (a listener address, or the original destination
    /// when TPROXY delivered the connection).
    LocalAddr
);
addr_newtype!(
    /// The destination the client connected to before interception rewrote it.
    OrigDst
);
addr_newtype!(
    /// Where the proxy connects upstream.
    UpstreamAddr
);
