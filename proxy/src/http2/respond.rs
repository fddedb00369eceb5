//! The downstream side of one HTTP/2 stream: the response head (once), DATA sent within the
//! peer's flow-control window, trailers, and locally generated answers — plain text for HTTP,
//! trailers-only gRPC statuses (`grpc-status`, `grpc-message`) for gRPC requests.

use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::SendStream;
use http::{HeaderMap, HeaderValue, Response};

use crate::http::{grpc, Failure};
use crate::telemetry::{Protocol, Record};

pub use crate::upstream::h2::{send_data, Gone};

/// One stream's response side.
pub struct Downstream {
    respond: SendResponse<Bytes>,
    send: Option<SendStream<Bytes>>,
    /// The request was gRPC: local errors become gRPC statuses.
    pub grpc: bool,
    pub idle: Option<Duration>,
    done: bool,
    /// The stream's telemetry record: status, gRPC status and DATA bytes are counted here,
    /// where every response (relayed or local) goes out.
    pub rec: Record,
}

impl Downstream {
    pub fn new(respond: SendResponse<Bytes>, grpc: bool, idle: Option<Duration>) -> Downstream {
        Downstream {
            respond,
            send: None,
            grpc,
            idle,
            done: false,
            rec: Record::new(0, Protocol::Http2),
        }
    }

    /// Whether the response head went out (an error now can only reset or end with trailers).
    pub fn head_sent(&self) -> bool {
        self.send.is_some() || self.done
    }

    pub fn send_head(&mut self, resp: Response<()>, end: bool) -> Result<(), Gone> {
        self.rec.status = resp.status().as_u16();
        self.note_grpc_status(resp.headers());
        let s = self.respond.send_response(resp, end)?;
        if end {
            self.done = true;
        } else {
            self.send = Some(s);
        }
        Ok(())
    }

    pub async fn data(&mut self, data: Bytes, end: bool) -> Result<(), Gone> {
        let send = self.send.as_mut().ok_or(Gone)?;
        let n = data.len() as u64;
        send_data(send, data, end, self.idle).await?;
        self.rec.bytes_sent += n;
        if end {
            self.done = true;
        }
        Ok(())
    }

    pub fn trailers(&mut self, t: HeaderMap) -> Result<(), Gone> {
        self.note_grpc_status(&t);
        let send = self.send.as_mut().ok_or(Gone)?;
        send.send_trailers(t)?;
        self.done = true;
        Ok(())
    }

    /// Ends a started response: with no trailers, an empty DATA frame with END_STREAM.
    pub fn finish(&mut self) -> Result<(), Gone> {
        if !self.done {
            let send = self.send.as_mut().ok_or(Gone)?;
            send.send_data(Bytes::new(), true)?;
            self.done = true;
        }
        Ok(())
    }

    fn note_grpc_status(&mut self, h: &HeaderMap) {
        if let Some(code) = h
            .get(grpc::STATUS_HEADER)
            .and_then(|v| v.to_str().ok()?.parse::<u8>().ok())
        {
            self.rec.grpc_status = Some(code);
        }
    }

    /// Resets the stream (a response that cannot be completed).
    pub fn reset(&mut self, reason: h2::Reason) {
        match self.send.as_mut() {
            Some(s) => s.send_reset(reason),
            None => self.respond.send_reset(reason),
        }
        self.done = true;
    }

    /// Answers locally: `status` with a text body, or for gRPC the mapped status trailers-only.
    pub async fn local(&mut self, status: u16, flag: Option<&str>, body: &[u8]) {
        let code = grpc::status_for_http(status);
        self.answer(status, code, flag, body).await;
    }

    /// Answers a fault-injection abort: `status` (flag `FI`), or for gRPC `grpc` (default: the
    /// status `status` maps to) trailers-only.
    pub async fn fault_abort(&mut self, status: u16, grpc: Option<u32>) {
        use crate::http::fault::{ABORT_BODY, ABORT_FLAG};
        let code = grpc.unwrap_or_else(|| grpc::status_for_http(status));
        self.answer(status, code, Some(ABORT_FLAG), ABORT_BODY)
            .await;
    }

    /// Answers an upstream failure with its status and flag.
    pub async fn failure(&mut self, f: Failure) {
        self.rec.upstream_failure = f.transport_failure();
        self.answer(
            f.status(),
            grpc::status_for_failure(f),
            Some(f.flag()),
            f.body(),
        )
        .await;
    }

    async fn answer(&mut self, status: u16, code: u32, flag: Option<&str>, body: &[u8]) {
        if let Some(f) = flag {
            self.rec.flags.add(f);
        }
        if self.head_sent() {
            // Mid-response: gRPC ends with the status in trailers; HTTP can only reset.
            if self.grpc && !self.done {
                let _ = self.trailers(grpc_status(code, body));
            } else if !self.done {
                self.reset(h2::Reason::INTERNAL_ERROR);
            }
            return;
        }
        let mut b = Response::builder();
        if let Some(f) = flag {
            b = b.header("x-shardcar-flag", f);
            if let Some(c) = crate::authz::challenge(f) {
                b = b.header("www-authenticate", c);
            }
            if crate::http::failure::is_overload(f) {
                b = b.header(crate::http::failure::OVERLOADED_HEADER, "true");
            }
        }
        if self.grpc {
            let mut resp = b.status(200).body(()).expect("static head");
            let h = resp.headers_mut();
            h.insert("content-type", HeaderValue::from_static("application/grpc"));
            h.extend(grpc_status(code, body));
            let _ = self.send_head(resp, true);
            return;
        }
        let resp = b
            .status(status)
            .header("content-type", "text/plain")
            .header("content-length", body.len())
            .body(())
            .expect("valid local head");
        if self.send_head(resp, body.is_empty()).is_ok() && !body.is_empty() {
            let _ = self.data(Bytes::copy_from_slice(body), true).await;
        }
    }
}

/// `grpc-status` and `grpc-message` (the text without its newline, percent-safe ASCII).
fn grpc_status(code: u32, message: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(2);
    h.insert("grpc-status", HeaderValue::from(code));
    let msg: Vec<u8> = message
        .iter()
        .copied()
        .filter(|b| (0x20..0x7f).contains(b) && *b != b'%')
        .collect();
    if let Ok(v) = HeaderValue::from_bytes(&msg) {
        h.insert("grpc-message", v);
    }
    h
}
