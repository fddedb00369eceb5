//! HTTP/2 stream → HTTP/2 upstream (filled in below).

use h2::RecvStream;

use super::respond::Downstream;
use super::stream::{Head, StreamEnv};
use crate::cluster::Balancer;
use crate::http::Failure;
use crate::route::Route;

pub async fn exchange(
    _ds: &mut Downstream,
    _head: &Head<'_>,
    _body: RecvStream,
    _route: &Route,
    _balancer: &Balancer,
    _mark: Option<u32>,
    _env: StreamEnv<'_>,
) -> Result<(), Failure> {
    Err(Failure::Protocol)
}
