//! HTTP/2 client: the `h2` crate over a monoio stream through `monoio-compat`'s tokio-IO adapter.
//! The connection future is driven by its own monoio task; workers share a `SendRequest`.

use bytes::Bytes;
use h2::client::SendRequest;
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio_compat::StreamWrapper;

use super::{ReqError, Response};
use crate::plan::Plan;
use crate::stats::ErrorKind;

fn h2_err(e: h2::Error) -> ReqError {
    let kind = if e.is_io() {
        e.get_io()
            .map(ErrorKind::from_io)
            .unwrap_or(ErrorKind::Reset)
    } else if e.is_go_away() || e.is_reset() || e.is_remote() {
        ErrorKind::Reset
    } else {
        ErrorKind::Protocol
    };
    ReqError::new(kind, e.to_string())
}

/// Runs the h2 handshake on `io` and spawns the connection driver.
pub async fn handshake<S>(io: S) -> Result<SendRequest<Bytes>, ReqError>
where
    S: AsyncReadRent + AsyncWriteRent + Unpin + 'static,
{
    handshake_tokio(StreamWrapper::new(io)).await
}

/// Runs the h2 handshake on a tokio-IO stream (e.g. tokio-rustls over the compat adapter).
pub async fn handshake_tokio<T>(io: T) -> Result<SendRequest<Bytes>, ReqError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(1 << 20)
        .initial_connection_window_size(1 << 24)
        .handshake(io)
        .await
        .map_err(h2_err)?;
    monoio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// The request head for target `i`, built once.
pub fn build_request(plan: &Plan, i: usize) -> anyhow::Result<http::Request<()>> {
    let t = &plan.targets[i];
    let scheme = if plan.tls.is_some() { "https" } else { "http" };
    let mut b = http::Request::builder()
        .method(plan.method.as_str())
        .uri(format!("{scheme}://{}{}", t.authority, t.path));
    for (k, v) in &plan.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    if !plan.body.is_empty() {
        b = b.header("content-length", plan.body.len());
    }
    Ok(b.body(())?)
}

/// Sends one request on `send` and reads the whole response body.
pub async fn exchange(
    send: &mut SendRequest<Bytes>,
    head: &http::Request<()>,
    body: &Bytes,
) -> Result<Response, ReqError> {
    let mut req = http::Request::new(());
    *req.method_mut() = head.method().clone();
    *req.uri_mut() = head.uri().clone();
    *req.headers_mut() = head.headers().clone();
    let mut ready = send.clone().ready().await.map_err(h2_err)?;
    let (resp, mut stream) = ready.send_request(req, body.is_empty()).map_err(h2_err)?;
    if !body.is_empty() {
        stream.send_data(body.clone(), true).map_err(h2_err)?;
    }
    let resp = resp.await.map_err(h2_err)?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut bytes_in = 0u64;
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(h2_err)?;
        bytes_in += chunk.len() as u64;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    Ok(Response { status, bytes_in })
}
