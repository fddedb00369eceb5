//! The SPIFFE Workload API as an identity source: a `tls:` block with `workload_api: PATH`
//! takes its SVID and trust bundles from the Workload API server on that unix socket (a SPIRE
//! agent, say) instead of files. [`WorkloadWatch`] runs a small tonic client of
//! `FetchX509SVID` (the spec's `proxy/proto/workload.proto`; the messages below are its prost
//! form, written by hand: there is no `protoc` on the build machine) on its own control-side
//! thread with a current-thread tokio runtime — nothing of it reaches a shard.
//!
//! Every response the stream sends is turned into [`Material`] (the first SVID: DER chain and
//! PKCS#8 key; the SVID's bundle for its own trust domain plus `federated_bundles`), checked
//! like files are (validity, key match, X509-SVID rules, usable anchors), built into the
//! block's rustls config and installed in its `Live` cell — exactly what file rotation does:
//! new handshakes use it, live connections keep theirs. A response that fails the checks is
//! rejected (one warning with the reason, counted in [`ReloadStats::rejected`]) and the
//! material in force stays. A broken stream is reopened with backoff (100 ms doubling to 5 s);
//! meanwhile the last material stays in force. Startup waits for the first good response (10 s
//! at most): without an identity the block cannot serve.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::source::Material;
use super::spiffe_id::{SpiffeId, TrustDomain};
use super::watch::ReloadStats;

/// How long startup waits for the first usable response.
pub const FIRST_RESPONSE: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const PATH: &str = "/SpiffeWorkloadAPI/FetchX509SVID";

#[derive(Clone, PartialEq, prost::Message)]
pub struct X509SvidRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct X509SvidResponse {
    #[prost(message, repeated, tag = "1")]
    pub svids: Vec<X509Svid>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub crl: Vec<Vec<u8>>,
    #[prost(map = "string, bytes", tag = "3")]
    pub federated_bundles: HashMap<String, Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct X509Svid {
    #[prost(string, tag = "1")]
    pub spiffe_id: String,
    #[prost(bytes = "vec", tag = "2")]
    pub x509_svid: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub x509_svid_key: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub bundle: Vec<u8>,
    #[prost(string, tag = "5")]
    pub hint: String,
}

/// Concatenated DER certificates → one `CertificateDer` each.
pub fn split_der(mut b: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut v = Vec::new();
    while !b.is_empty() {
        let (rest, _) =
            X509Certificate::from_der(b).map_err(|e| format!("bad DER certificate: {e}"))?;
        let len = b.len() - rest.len();
        v.push(CertificateDer::from(b[..len].to_vec()));
        b = rest;
    }
    Ok(v)
}

/// A response's first SVID and every bundle, checked; `origin` names the socket in errors.
pub fn material(r: &X509SvidResponse, origin: &Path) -> Result<Material, String> {
    let svid = r.svids.first().ok_or("the response holds no SVID")?;
    let id = SpiffeId::parse(&svid.spiffe_id)
        .map_err(|e| format!("spiffe_id {:?}: {e}", svid.spiffe_id))?;
    let chain = split_der(&svid.x509_svid).map_err(|e| format!("x509_svid: {e}"))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(svid.x509_svid_key.clone()));
    let mut bundles = vec![(
        id.trust_domain(),
        split_der(&svid.bundle).map_err(|e| format!("bundle: {e}"))?,
    )];
    let mut federated: Vec<_> = r.federated_bundles.iter().collect();
    federated.sort();
    for (td, der) in &federated {
        let name = td.strip_prefix("spiffe://").unwrap_or(td);
        let td = TrustDomain::new(name).map_err(|e| format!("federated bundle {td:?}: {e}"))?;
        bundles.push((
            td,
            split_der(der).map_err(|e| format!("federated bundle {name}: {e}"))?,
        ));
    }
    let mut h = DefaultHasher::new();
    (
        &svid.x509_svid,
        &svid.x509_svid_key,
        &svid.bundle,
        &federated,
    )
        .hash(&mut h);
    Material::from_der(chain, key, &bundles, origin, h.finish()).map_err(|e| e.reason.to_string())
}

/// The client thread of one `tls:` block; stops when dropped.
pub struct WorkloadWatch {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<ReloadStats>,
}

impl std::fmt::Debug for WorkloadWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadWatch")
            .field("stats", &self.stats)
            .finish()
    }
}

impl Drop for WorkloadWatch {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl WorkloadWatch {
    /// Connects to `socket`, waits for the first usable response (built with `build`), then
    /// keeps streaming; later configs go to `apply`.
    pub fn start<T, B, A>(
        name: &str,
        socket: PathBuf,
        build: B,
        apply: A,
    ) -> Result<(WorkloadWatch, Arc<T>), String>
    where
        T: Send + Sync + 'static,
        B: Fn(&Material) -> Result<Arc<T>, String> + Send + 'static,
        A: Fn(Arc<T>) + Send + 'static,
    {
        let stats = Arc::new(ReloadStats::default());
        let (first_tx, first_rx) = mpsc::channel::<Result<Arc<T>, String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let st = stats.clone();
        let tag = name.to_string();
        let thread = std::thread::Builder::new()
            .name(format!("spiffe-{name}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = first_tx.send(Err(format!("tokio runtime: {e}")));
                        return;
                    }
                };
                let mut state = Stream {
                    name: tag,
                    socket,
                    current: None,
                    first: Some(first_tx),
                    stats: st,
                };
                rt.block_on(async move {
                    tokio::select! {
                        _ = stop_rx => {}
                        _ = state.run(&build, &apply) => {}
                    }
                });
            })
            .map_err(|e| format!("cannot start the Workload API thread: {e}"))?;
        let mut watch = WorkloadWatch {
            stop: Some(stop_tx),
            thread: Some(thread),
            stats,
        };
        match first_rx.recv_timeout(FIRST_RESPONSE) {
            Ok(Ok(first)) => Ok((watch, first)),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                drop(watch.stop.take());
                Err(format!(
                    "no usable X509-SVID from the Workload API within {FIRST_RESPONSE:?}"
                ))
            }
        }
    }

    pub fn stats(&self) -> &Arc<ReloadStats> {
        &self.stats
    }
}

struct Stream<T> {
    name: String,
    socket: PathBuf,
    current: Option<u64>,
    /// Where the first good config goes (startup waits on it); `None` afterwards.
    first: Option<mpsc::Sender<Result<Arc<T>, String>>>,
    stats: Arc<ReloadStats>,
}

impl<T> Stream<T> {
    async fn run<B, A>(&mut self, build: &B, apply: &A)
    where
        B: Fn(&Material) -> Result<Arc<T>, String>,
        A: Fn(Arc<T>),
    {
        let mut backoff = BACKOFF_MIN;
        loop {
            match self.session(build, apply).await {
                Ok(true) => backoff = BACKOFF_MIN,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(tls = %self.name, socket = %self.socket.display(), error = %e,
                    "Workload API stream failed; the material in force stays, retrying")
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// One stream; `Ok(true)` when it delivered at least one response.
    async fn session<B, A>(&mut self, build: &B, apply: &A) -> Result<bool, String>
    where
        B: Fn(&Material) -> Result<Arc<T>, String>,
        A: Fn(Arc<T>),
    {
        let path = self.socket.clone();
        let channel = tonic::transport::Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn(move |_: http::Uri| {
                let path = path.clone();
                async move {
                    let s = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                }
            }))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(|e| format!("connect: {e}"))?;
        let mut req = tonic::Request::new(X509SvidRequest {});
        req.metadata_mut().insert(
            "workload.spiffe.io",
            tonic::metadata::MetadataValue::from_static("true"),
        );
        let codec = tonic_prost::ProstCodec::<X509SvidRequest, X509SvidResponse>::default();
        let mut stream = grpc
            .server_streaming(req, http::uri::PathAndQuery::from_static(PATH), codec)
            .await
            .map_err(|s| format!("FetchX509SVID: {s}"))?
            .into_inner();
        let mut got = false;
        while let Some(r) = stream
            .message()
            .await
            .map_err(|s| format!("FetchX509SVID: {s}"))?
        {
            got = true;
            self.on_response(&r, build, apply);
        }
        Ok(got)
    }

    fn on_response<B, A>(&mut self, r: &X509SvidResponse, build: &B, apply: &A)
    where
        B: Fn(&Material) -> Result<Arc<T>, String>,
        A: Fn(Arc<T>),
    {
        let built = material(r, &self.socket).and_then(|m| build(&m).map(|c| (m, c)));
        match built {
            Ok((m, _)) if Some(m.fingerprint) == self.current => {}
            Ok((m, config)) => {
                self.current = Some(m.fingerprint);
                let serial: String = m.identities[0]
                    .serial
                    .iter()
                    .map(|x| format!("{x:02x}"))
                    .collect();
                match self.first.take() {
                    Some(tx) => {
                        let _ = tx.send(Ok(config));
                    }
                    None => {
                        self.stats.applied.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(tls = %self.name, serial, "X509-SVID from the Workload API installed");
                        apply(config);
                    }
                }
            }
            Err(reason) => {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(tls = %self.name, socket = %self.socket.display(), reason,
                    "Workload API update rejected; keeping the current material");
            }
        }
    }
}
