//! The origin's h2 side (h2c by prior knowledge, or h2 over TLS): every stream gets the fixed
//! body after the configured wait, each on its own task so delays overlap.

use std::rc::Rc;

use bytes::Bytes;
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio_compat::StreamWrapper;

use super::rewind::Rewind;
use super::Behaviour;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether the first bytes read could be the h2 client preface.
pub(super) fn is_preface_start(b: &[u8]) -> bool {
    let n = b.len().min(PREFACE.len());
    n >= 3 && b[..n] == PREFACE[..n]
}

pub(super) async fn serve<S>(s: S, pre: Bytes, b: Rc<Behaviour>)
where
    S: AsyncReadRent + AsyncWriteRent + Unpin + 'static,
{
    let io = Rewind::new(pre, StreamWrapper::new(s));
    let Ok(mut conn) = h2::server::Builder::new()
        .max_concurrent_streams(1024)
        .initial_window_size(1 << 20)
        .initial_connection_window_size(1 << 24)
        .handshake::<_, Bytes>(io)
        .await
    else {
        return;
    };
    let mut served = 0u64;
    while let Some(r) = conn.accept().await {
        let Ok((req, mut respond)) = r else { return };
        served += 1;
        if b.resets(served) {
            conn.abrupt_shutdown(h2::Reason::INTERNAL_ERROR);
            return;
        }
        let b = b.clone();
        monoio::spawn(async move {
            let mut body = req.into_body();
            while let Some(Ok(chunk)) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            b.wait().await;
            let resp = http::Response::builder()
                .status(200)
                .header("content-length", b.body.len())
                .body(())
                .expect("static response");
            if let Ok(mut send) = respond.send_response(resp, b.body.is_empty()) {
                if !b.body.is_empty() {
                    let _ = send.send_data(b.body.clone(), true);
                }
            }
        });
    }
}
