//! What one exchange knows about its request after the head bytes are gone ([`Facts`]), and
//! what the connection does next ([`Next`]). Shared by every step of an exchange, so none of
//! them imports another for it.

use monoio::net::TcpStream;

use super::head::Framing;
use crate::http::Method;

/// What the connection does after an exchange.
pub enum Next {
    KeepAlive,
    Close,
    /// Switch to a byte tunnel with this upstream (after 101 Switching Protocols or a CONNECT 2xx).
    Tunnel(TcpStream),
}

/// Facts about the request that outlive its head bytes.
#[derive(Clone, Copy)]
pub struct Facts {
    pub method: Method,
    pub idempotent: bool,
    pub close: bool,
    pub framing: Framing,
    /// Upgrade or CONNECT: becomes a tunnel on success.
    pub tunnel: bool,
    /// HTTP/1.`minor` of the client's request.
    pub minor: u8,
}
