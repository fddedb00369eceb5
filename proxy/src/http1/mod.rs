//! The HTTP/1.1 L7 proxy (`protocol: http` listeners).
//!
//! Data flow per client connection: [`server`] reads a head (httparse + our strictness rules in
//! [`head`]), the listener's route table picks a route, [`exchange`] picks an upstream (pooled
//! keepalive connection or a new one), sends the head ([`encode`]) and body ([`body`]), reads
//! the response head and [`relay`]s it back; retries, timeouts and error flags live in
//! [`exchange`] and [`failure`]. `Upgrade` and `CONNECT` switch the connection to the L4 copy
//! tunnel after the 101/2xx.
//!
//! Hot path: heads are parsed into spans of the connection's read buffer (no per-request heap
//! allocation for headers once the span vectors are warm); upstream heads are written into a
//! scratch buffer taken from a per-shard pool; small responses go out in one write with their
//! head. The criterion bench `http1` measures parse → route → serialize.

pub mod body;
pub mod chunked;
pub mod conn;
pub mod encode;
pub mod exchange;
pub mod failure;
pub mod head;
pub mod relay;
pub mod response_head;
pub mod server;
pub mod view;

pub use server::serve;
