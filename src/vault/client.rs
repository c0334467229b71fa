//! The HTTP layer: one reqwest client (rustls, aws-lc-rs) trusting `--ca-cert`, and the
//! endpoints custody calls, each typed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::addr::Addr;
use super::types::*;
use crate::error::{Context, Error, Kind, Result};
use crate::secret::{SecretBytesOwner, SecretString};

/// Why a call to one node failed. Every variant's text says it all on its own (status tables
/// and progress lines print it alone); the variants that come from another error also keep that
/// error as the [`source`](std::error::Error::source), for the "caused by" chain.
#[derive(Debug, Clone)]
pub enum NodeError {
    /// No HTTP answer: refused, timed out, TLS failed.
    Unreachable(Unreached),
    /// The server answered with an error status.
    Api { status: u16, errors: Vec<String> },
    /// The server answered something custody cannot read (a check of custody's own).
    Decode(String),
    /// Something between custody and the node failed with an error of its own (the answer does
    /// not parse, a request body does not encode, a file to send does not open): `what` says
    /// what custody was doing, `source` keeps that error.
    Failed {
        what: String,
        source: Arc<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// Why no answer came: the HTTP client's error, described with its whole chain (reqwest's own
/// text leaves out the cause, such as "connection refused").
#[derive(Debug, Clone)]
pub struct Unreached {
    text: String,
    source: Arc<reqwest::Error>,
}

impl Unreached {
    fn new(e: reqwest::Error) -> Self {
        Unreached {
            text: describe_reqwest(&e),
            source: Arc::new(e),
        }
    }
    /// The error of the HTTP client.
    pub fn reqwest(&self) -> &reqwest::Error {
        &self.source
    }
}

impl std::fmt::Display for Unreached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeError::Unreachable(e) => write!(f, "unreachable: {e}"),
            NodeError::Api { status, errors } if errors.is_empty() => write!(f, "HTTP {status}"),
            NodeError::Api { status, errors } => write!(f, "HTTP {status}: {}", errors.join("; ")),
            NodeError::Decode(e) => write!(f, "unexpected answer: {e}"),
            NodeError::Failed { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for NodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NodeError::Unreachable(e) => Some(&*e.source),
            NodeError::Failed { source, .. } => Some(&**source),
            NodeError::Api { .. } | NodeError::Decode(_) => None,
        }
    }
}

impl NodeError {
    pub fn is_unreachable(&self) -> bool {
        matches!(self, NodeError::Unreachable(_))
    }
    pub fn message_contains(&self, needle: &str) -> bool {
        match self {
            NodeError::Api { errors, .. } => errors.iter().any(|e| e.contains(needle)),
            NodeError::Unreachable(e) => e.text.contains(needle),
            NodeError::Decode(e) => e.contains(needle),
            NodeError::Failed { .. } => self.to_string().contains(needle),
        }
    }
    /// An answer that does not parse: "unexpected answer: " and the call or what custody
    /// expected of it; the parser's error is kept as the source.
    pub fn unexpected(
        what: impl std::fmt::Display,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        NodeError::Failed {
            what: format!("unexpected answer: {what}"),
            source: Arc::new(e),
        }
    }
    /// A request body that does not encode (custody's own data; should never happen).
    pub fn encoding(e: serde_json::Error) -> Self {
        NodeError::Failed {
            what: "encoding the request body".to_owned(),
            source: Arc::new(e),
        }
    }
}

pub type NodeResult<T> = std::result::Result<T, NodeError>;

#[derive(Clone)]
pub struct Vault {
    http: reqwest::Client,
    token: Option<SecretString>,
}

impl Vault {
    /// A client that trusts only `ca_cert` when given (else the platform's roots).
    pub fn new(ca_cert: Option<&Path>, token: Option<SecretString>) -> Result<Vault> {
        let mut builder = reqwest::Client::builder()
            .tls_backend_rustls()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("custody/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path).with_kind(
                Kind::Usage,
                format!("--ca-cert {}: cannot read it", path.display()),
            )?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).with_kind(
                Kind::Usage,
                format!("--ca-cert {}: not a PEM certificate", path.display()),
            )?;
            if certs.is_empty() {
                return Err(Error::usage(format!(
                    "--ca-cert {}: holds no PEM certificate",
                    path.display()
                )));
            }
            builder = builder.tls_certs_only(certs);
        }
        let http = builder.build().context("building the HTTP client")?;
        Ok(Vault { http, token })
    }

    pub fn with_token(&self, token: Option<SecretString>) -> Vault {
        Vault {
            http: self.http.clone(),
            token,
        }
    }

    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(token) = &self.token
            && let Ok(mut value) = HeaderValue::from_str(token.expose())
        {
            value.set_sensitive(true);
            headers.insert("X-Vault-Token", value);
        }
        headers
    }

    /// The one request path: every call to a node goes through here. No status check (health
    /// reads its codes); an answer never received is `Unreachable`.
    async fn send(&self, addr: &Addr, req: Request<'_>) -> NodeResult<reqwest::Response> {
        let mut builder = self
            .http
            .request(req.method, addr.join(req.path))
            .headers(self.headers());
        if let Some(ttl) = req.wrap_ttl {
            builder = builder.header("X-Vault-Wrap-TTL", ttl);
        }
        if let Some(timeout) = req.timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(body) = req.body {
            if req.json {
                builder = builder.header("Content-Type", "application/json");
            }
            builder = builder.body(body);
        }
        builder
            .send()
            .await
            .map_err(|e| NodeError::Unreachable(Unreached::new(e)))
    }

    /// [`Vault::send`], an error status turned into [`NodeError::Api`].
    async fn send_ok(&self, addr: &Addr, req: Request<'_>) -> NodeResult<reqwest::Response> {
        let resp = self.send(addr, req).await?;
        if !resp.status().is_success() {
            return Err(api_error(resp).await);
        }
        Ok(resp)
    }

    /// The whole answer's bytes.
    async fn bytes(&self, addr: &Addr, req: Request<'_>) -> NodeResult<bytes::Bytes> {
        self.send_ok(addr, req)
            .await?
            .bytes()
            .await
            .map_err(|e| NodeError::Unreachable(Unreached::new(e)))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        addr: &Addr,
        path: &str,
        body: Option<reqwest::Body>,
    ) -> NodeResult<T> {
        let bytes = self
            .bytes(addr, Request::new(method.clone(), path).body(body))
            .await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| NodeError::unexpected(format!("{method} {path}"), e))
    }

    /// A call whose answer may hold a secret: the raw answer, in memory wiped when dropped.
    pub(super) async fn call_secret(
        &self,
        addr: &Addr,
        req: Request<'_>,
    ) -> NodeResult<zeroize::Zeroizing<Vec<u8>>> {
        let bytes = self.bytes(addr, req).await?;
        Ok(zeroize::Zeroizing::new(bytes.to_vec()))
    }

    /// One unseal share, in a zeroizing body, to the attempt `nonce` at `path` (root generation,
    /// rotation, verification); the answer as [`Self::secret_answer`] reads it.
    pub(super) async fn give_share<T: serde::de::DeserializeOwned>(
        &self,
        addr: &Addr,
        method: Method,
        path: &str,
        share: &SecretString,
        nonce: &str,
        what: &str,
    ) -> NodeResult<T> {
        #[derive(serde::Serialize)]
        struct ShareBody<'a> {
            key: &'a str,
            nonce: &'a str,
        }
        let body = secret_body(&ShareBody {
            key: share.expose(),
            nonce,
        })?;
        let req = Request::new(method, path).body(Some(body));
        self.secret_answer(addr, req, what).await
    }

    /// [`Self::call_secret`], its answer read by [`data_or_top`]; `what` names it in errors.
    pub(super) async fn secret_answer<T: serde::de::DeserializeOwned>(
        &self,
        addr: &Addr,
        req: Request<'_>,
        what: &str,
    ) -> NodeResult<T> {
        let raw = self.call_secret(addr, req).await?;
        data_or_top(&raw, what)
    }

    pub async fn seal_status(&self, addr: &Addr) -> NodeResult<SealStatus> {
        self.call(Method::GET, addr, "sys/seal-status", None).await
    }

    /// The health document and the role its status code says (sealed and uninitialized
    /// nodes answer with error codes but a normal body).
    pub async fn health(&self, addr: &Addr) -> NodeResult<(HaRole, Health)> {
        let resp = self
            .send(addr, Request::new(Method::GET, "sys/health"))
            .await?;
        let code = resp.status().as_u16();
        let role = HaRole::from_health_code(code);
        if role == HaRole::Other {
            return Err(api_error(resp).await);
        }
        let health = resp
            .json()
            .await
            .map_err(|e| NodeError::unexpected("GET sys/health", e))?;
        Ok((role, health))
    }

    pub async fn leader(&self, addr: &Addr) -> NodeResult<Leader> {
        self.call(Method::GET, addr, "sys/leader", None).await
    }

    /// Initializes the server; a plaintext answer (no PGP keys) is read from wiped memory.
    pub async fn init(&self, addr: &Addr, req: &InitRequest) -> NodeResult<InitResponse> {
        let body = serde_json::to_vec(req).map_err(NodeError::encoding)?;
        let raw = self
            .call_secret(
                addr,
                Request::new(Method::PUT, "sys/init").body(Some(body.into())),
            )
            .await?;
        serde_json::from_slice(&raw).map_err(|e| NodeError::unexpected("PUT sys/init", e))
    }

    /// Submits one unseal share, in a zeroizing request body.
    pub async fn unseal(&self, addr: &Addr, share: &SecretString) -> NodeResult<SealStatus> {
        #[derive(Serialize)]
        struct Unseal<'a> {
            key: &'a str,
        }
        let body = secret_body(&Unseal {
            key: share.expose(),
        })?;
        self.call(Method::PUT, addr, "sys/unseal", Some(body)).await
    }

    pub async fn autopilot_state(&self, addr: &Addr) -> NodeResult<AutopilotState> {
        #[derive(serde::Deserialize)]
        struct Wrapped {
            data: AutopilotState,
        }
        let w: Wrapped = self
            .call(Method::GET, addr, "sys/storage/raft/autopilot/state", None)
            .await?;
        Ok(w.data)
    }

    pub async fn raft_configuration(&self, addr: &Addr) -> NodeResult<RaftConfiguration> {
        #[derive(serde::Deserialize)]
        struct Wrapped {
            data: Data,
        }
        #[derive(serde::Deserialize)]
        struct Data {
            config: RaftConfiguration,
        }
        let w: Wrapped = self
            .call(Method::GET, addr, "sys/storage/raft/configuration", None)
            .await?;
        Ok(w.data.config)
    }
}

/// A JSON request body holding a secret: written once into memory of exactly its size (so no
/// reallocation leaves a copy behind), and wiped when the HTTP stack lets go of it.
pub(super) fn secret_body<T: Serialize>(value: &T) -> NodeResult<reqwest::Body> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).map_err(NodeError::encoding)?;
    let mut buf = Vec::with_capacity(count.0);
    serde_json::to_writer(&mut buf, value).map_err(NodeError::encoding)?;
    Ok(bytes::Bytes::from_owner(SecretBytesOwner(buf)).into())
}

async fn api_error(resp: reqwest::Response) -> NodeError {
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct Errors {
        errors: Vec<String>,
    }
    let status: StatusCode = resp.status();
    let errors = resp
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice::<Errors>(&b).ok())
        .unwrap_or_default()
        .errors;
    NodeError::Api {
        status: status.as_u16(),
        errors,
    }
}

/// reqwest's Display hides the cause (refused, TLS) in its source chain; people need it.
fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// A generic authenticated call: the whole JSON answer (`Null` for 204), optionally
/// response-wrapped for `wrap_ttl`.
impl Vault {
    pub async fn json(
        &self,
        method: Method,
        addr: &Addr,
        path: &str,
        body: Option<&serde_json::Value>,
        wrap_ttl: Option<&str>,
    ) -> NodeResult<serde_json::Value> {
        let body = body
            .map(|b| serde_json::to_vec(b).map_err(NodeError::encoding))
            .transpose()?;
        let req = Request::new(method.clone(), path)
            .body(body.map(Into::into))
            .wrap_ttl(wrap_ttl);
        let bytes = self.bytes(addr, req).await?;
        if bytes.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| NodeError::unexpected(format!("{method} {path}"), e))
    }

    pub async fn get(&self, addr: &Addr, path: &str) -> NodeResult<serde_json::Value> {
        self.json(Method::GET, addr, path, None, None).await
    }

    pub async fn post(
        &self,
        addr: &Addr,
        path: &str,
        body: &serde_json::Value,
    ) -> NodeResult<serde_json::Value> {
        self.json(Method::POST, addr, path, Some(body), None).await
    }

    pub async fn delete(&self, addr: &Addr, path: &str) -> NodeResult<serde_json::Value> {
        self.json(Method::DELETE, addr, path, None, None).await
    }

    pub async fn list(&self, addr: &Addr, path: &str) -> NodeResult<serde_json::Value> {
        self.json(
            Method::from_bytes(b"LIST").expect("LIST is a method"),
            addr,
            path,
            None,
            None,
        )
        .await
    }

    /// Creates a token and returns its secret, kept in zeroizing memory, and its accessor.
    pub async fn create_token(
        &self,
        addr: &Addr,
        path: &str,
        body: &serde_json::Value,
    ) -> NodeResult<(SecretString, String)> {
        #[derive(serde::Deserialize)]
        struct Created {
            auth: AuthPart,
        }
        #[derive(serde::Deserialize)]
        struct AuthPart {
            client_token: String,
            accessor: String,
        }
        let bytes = serde_json::to_vec(body).map_err(NodeError::encoding)?;
        let raw = self
            .call_secret(
                addr,
                Request::new(Method::POST, path).body(Some(bytes.into())),
            )
            .await?;
        let created: Created = serde_json::from_slice(&raw)
            .map_err(|e| NodeError::unexpected(format!("POST {path}"), e))?;
        Ok((
            SecretString::new(created.auth.client_token),
            created.auth.accessor,
        ))
    }
}

/// A snapshot being received: its body, chunk by chunk.
pub struct SnapshotStream(reqwest::Response);

/// How long a snapshot's stream may send nothing before custody gives up on it: a node cut
/// off mid-stream (a partition drops packets, nothing resets the connection) would otherwise
/// hold the save for the whole [`SNAPSHOT_TIMEOUT`].
pub const SNAPSHOT_STALL: Duration = Duration::from_secs(30);

impl SnapshotStream {
    /// The next chunk of the snapshot; `None` at its end. Fails when the stream broke off, or
    /// sent nothing for [`SNAPSHOT_STALL`].
    pub async fn next_chunk(&mut self) -> NodeResult<Option<bytes::Bytes>> {
        match tokio::time::timeout(SNAPSHOT_STALL, self.0.chunk()).await {
            Ok(chunk) => chunk.map_err(|e| NodeError::Failed {
                what: "the snapshot's stream broke off".to_owned(),
                source: Arc::new(e),
            }),
            Err(stalled) => Err(NodeError::Failed {
                what: format!(
                    "the snapshot's stream stalled: the node sent nothing for {} s (cut off \
                     from custody, or paused)",
                    SNAPSHOT_STALL.as_secs()
                ),
                source: Arc::new(stalled),
            }),
        }
    }
}

impl Vault {
    /// The Raft snapshot, as a stream of chunks the caller writes away.
    pub async fn snapshot_download(&self, addr: &Addr) -> NodeResult<SnapshotStream> {
        self.send_ok(
            addr,
            Request::new(Method::GET, "sys/storage/raft/snapshot").timeout(SNAPSHOT_TIMEOUT),
        )
        .await
        .map(SnapshotStream)
    }

    /// Restores a snapshot from `reader` (an already-open file, or a reader that yields only
    /// checked bytes), streamed as it is read: what was sent, with its sha256 computed over the
    /// very bytes that went into the request body. `force` skips the server's check that the
    /// snapshot's keyring matches its own (a snapshot of another cluster needs it).
    pub async fn snapshot_upload<R>(&self, addr: &Addr, reader: R, force: bool) -> NodeResult<Sent>
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
    {
        let path = if force {
            "sys/storage/raft/snapshot-force"
        } else {
            "sys/storage/raft/snapshot"
        };
        let tally = Arc::new(std::sync::Mutex::new(Tally::new()));
        let body = HashingBody {
            reader,
            buf: vec![0u8; 256 * 1024].into_boxed_slice(),
            tally: tally.clone(),
        };
        self.send_ok(
            addr,
            Request::new(Method::POST, path)
                .raw_body(reqwest::Body::wrap_stream(body))
                .timeout(SNAPSHOT_TIMEOUT),
        )
        .await?;
        let tally = std::mem::replace(
            &mut *tally.lock().unwrap_or_else(|p| p.into_inner()),
            Tally::new(),
        );
        Ok(tally.finish())
    }
}

/// What an upload sent: its sha256 and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub sha256: String,
    pub size: u64,
}

struct Tally {
    ctx: aws_lc_rs::digest::Context,
    size: u64,
}

impl Tally {
    fn new() -> Self {
        Tally {
            ctx: aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256),
            size: 0,
        }
    }
    fn finish(self) -> Sent {
        Sent {
            sha256: hex::encode(self.ctx.finish().as_ref()),
            size: self.size,
        }
    }
}

/// A request body read from `reader`, every byte hashed as it is handed to the HTTP stack.
struct HashingBody<R> {
    reader: R,
    buf: Box<[u8]>,
    tally: Arc<std::sync::Mutex<Tally>>,
}

impl<R: tokio::io::AsyncRead + Unpin> futures_core::Stream for HashingBody<R> {
    type Item = std::io::Result<bytes::Bytes>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let mut rb = tokio::io::ReadBuf::new(&mut this.buf);
        match std::task::ready!(std::pin::Pin::new(&mut this.reader).poll_read(cx, &mut rb)) {
            Err(e) => std::task::Poll::Ready(Some(Err(e))),
            Ok(()) if rb.filled().is_empty() => std::task::Poll::Ready(None),
            Ok(()) => {
                let chunk = rb.filled();
                let mut tally = this.tally.lock().unwrap_or_else(|p| p.into_inner());
                tally.ctx.update(chunk);
                tally.size += chunk.len() as u64;
                std::task::Poll::Ready(Some(Ok(bytes::Bytes::copy_from_slice(chunk))))
            }
        }
    }
}

/// How long a snapshot may take to stream, either way.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(3600);

/// One request to a node: what every call is built from.
pub(super) struct Request<'a> {
    method: Method,
    path: &'a str,
    body: Option<reqwest::Body>,
    /// The body is JSON (everything but a snapshot).
    json: bool,
    wrap_ttl: Option<&'a str>,
    timeout: Option<Duration>,
}

impl<'a> Request<'a> {
    pub(super) fn new(method: Method, path: &'a str) -> Request<'a> {
        Request {
            method,
            path,
            body: None,
            json: false,
            wrap_ttl: None,
            timeout: None,
        }
    }

    /// A JSON body.
    pub(super) fn body(mut self, body: Option<reqwest::Body>) -> Self {
        self.body = body;
        self.json = true;
        self
    }

    /// A body of raw bytes (a snapshot), sent without a content type.
    fn raw_body(mut self, body: reqwest::Body) -> Self {
        self.body = Some(body);
        self.json = false;
        self
    }

    /// Response-wrap the answer for `ttl`.
    pub(super) fn wrap_ttl(mut self, ttl: Option<&'a str>) -> Self {
        self.wrap_ttl = ttl;
        self
    }

    fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// The fields of an answer read straight from its bytes (no copy of a secret in a JSON tree):
/// under `data` (OpenBao's authenticated sys endpoints) or at the top (their classic twins).
/// `what` names the answer in the error.
pub(super) fn data_or_top<T: serde::de::DeserializeOwned>(raw: &[u8], what: &str) -> NodeResult<T> {
    #[derive(serde::Deserialize)]
    struct Wrapped<T> {
        data: T,
    }
    match serde_json::from_slice::<Wrapped<T>>(raw) {
        Ok(w) => Ok(w.data),
        Err(_) => serde_json::from_slice(raw).map_err(|e| NodeError::unexpected(what, e)),
    }
}

/// The `data` of an answer, or the answer itself where an endpoint puts its fields at the top.
pub fn data_of(v: serde_json::Value) -> serde_json::Value {
    if v["data"].is_object() {
        v["data"].clone()
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_that_does_not_parse_keeps_the_parser_error() {
        let e = serde_json::from_slice::<SealStatus>(b"<html>").unwrap_err();
        let parser_text = e.to_string();
        let err = NodeError::unexpected("GET sys/seal-status", e);
        assert_eq!(
            err.to_string(),
            format!("unexpected answer: GET sys/seal-status: {parser_text}")
        );
        assert!(err.message_contains("expected value"));
        let source = std::error::Error::source(&err).expect("the parser's error is kept");
        assert!(source.downcast_ref::<serde_json::Error>().is_some());
        let wrapped = crate::flows::context::node_error("reading the seal status", err);
        assert_eq!(
            wrapped.causes().collect::<Vec<_>>(),
            [format!(
                "unexpected answer: GET sys/seal-status: {parser_text}"
            )]
        );
    }
    /// A one-request HTTP/1.1 server on loopback that reads a chunked upload and answers 204:
    /// its address, and the request line and body bytes it received (all of them, or those
    /// before the client gave up).
    async fn one_upload_server() -> (Addr, tokio::task::JoinHandle<(String, Vec<u8>)>) {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = Addr::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let task = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let mut r = tokio::io::BufReader::new(sock);
            let mut request_line = String::new();
            r.read_line(&mut request_line).await.unwrap();
            loop {
                let mut h = String::new();
                r.read_line(&mut h).await.unwrap();
                if h == "\r\n" || h.is_empty() {
                    break;
                }
                assert!(!h.to_ascii_lowercase().starts_with("content-length"), "{h}");
            }
            let mut body = Vec::new();
            loop {
                let mut size = String::new();
                if r.read_line(&mut size).await.unwrap_or(0) == 0 {
                    return (request_line, body);
                }
                let n = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0u8; n + 2];
                if r.read_exact(&mut chunk).await.is_err() {
                    return (request_line, body);
                }
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
            r.get_mut()
                .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            (request_line, body)
        });
        (addr, task)
    }

    #[tokio::test]
    async fn an_upload_sends_the_open_file_and_reports_the_sha256_of_what_it_sent() {
        let (_dir, _path, bytes, file, report) =
            crate::snapshot::verified::tests::checked_snapshot();
        let (addr, server) = one_upload_server().await;
        let vault = Vault::new(None, None).unwrap();
        let reader = crate::snapshot::VerifiedReader::new(&file, &report)
            .await
            .unwrap();
        let sent = vault.snapshot_upload(&addr, reader, true).await.unwrap();
        let (request_line, received) = server.await.unwrap();
        assert!(
            request_line.starts_with("POST /v1/sys/storage/raft/snapshot-force "),
            "{request_line}"
        );
        assert_eq!(received, bytes);
        assert_eq!(sent.sha256, crate::digest::sha256_hex(&received));
        assert_eq!(sent.sha256, report.sha256);
        assert_eq!(sent.size, bytes.len() as u64);
    }

    #[tokio::test]
    async fn an_upload_of_a_file_changed_after_its_check_sends_only_checked_bytes() {
        let (_dir, path, bytes, file, report) =
            crate::snapshot::verified::tests::checked_snapshot();
        let mut changed = bytes.clone();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &changed))
            .unwrap();
        let (addr, server) = one_upload_server().await;
        let vault = Vault::new(None, None).unwrap();
        let reader = crate::snapshot::VerifiedReader::new(&file, &report)
            .await
            .unwrap();
        let flag = reader.changed_flag();
        let err = vault
            .snapshot_upload(&addr, reader, true)
            .await
            .unwrap_err();
        assert!(flag.changed(), "{err}");
        let (_, received) = server.await.unwrap();
        let whole_chunks = (bytes.len() - 1) / crate::snapshot::CHUNK * crate::snapshot::CHUNK;
        assert!(received.len() <= whole_chunks, "{} bytes", received.len());
        assert_eq!(received, bytes[..received.len()], "only checked bytes");
    }
}
