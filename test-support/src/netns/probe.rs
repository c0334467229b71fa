//! A plain HTTPS client that never panics: each answer is `Ok((status, body))` or `Err` with
//! what went wrong (a partitioned node times out), within a short bound.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// How long one request may take before it counts as unanswered.
pub const REQUEST_BOUND: Duration = Duration::from_secs(2);

pub struct Probe {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

/// One request: base URL, method, path under `/v1/`, token, JSON body.
pub struct Request {
    pub base: String,
    pub method: &'static str,
    pub path: String,
    pub token: Option<String>,
    pub body: Option<Value>,
}

impl Request {
    pub fn get(base: String, path: &str) -> Request {
        Request {
            base,
            method: "GET",
            path: path.to_owned(),
            token: None,
            body: None,
        }
    }
}

pub type Answer = Result<(u16, Value), String>;

impl Probe {
    /// Trusting only the certificates in `ca`.
    pub fn new(ca: &Path) -> Probe {
        let pem = std::fs::read(ca).unwrap_or_else(|e| panic!("reading {}: {e}", ca.display()));
        let http = reqwest::Client::builder()
            .tls_backend_rustls()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).expect("a PEM bundle"))
            .timeout(REQUEST_BOUND)
            .connect_timeout(REQUEST_BOUND)
            .pool_max_idle_per_host(0)
            .build()
            .expect("an HTTP client");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        Probe { rt, http }
    }

    pub fn call(&self, req: Request) -> Answer {
        self.rt.block_on(send(self.http.clone(), req))
    }

    /// Every request at once; the answers in order.
    pub fn all(&self, reqs: Vec<Request>) -> Vec<Answer> {
        let http = self.http.clone();
        self.rt.block_on(async move {
            let tasks: Vec<_> = reqs
                .into_iter()
                .map(|r| tokio::spawn(send(http.clone(), r)))
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap_or_else(|e| Err(e.to_string())));
            }
            out
        })
    }
}

async fn send(http: reqwest::Client, r: Request) -> Answer {
    let shown = format!("{} {}/v1/{}", r.method, r.base, r.path);
    let method = reqwest::Method::from_bytes(r.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut req = http.request(method, format!("{}/v1/{}", r.base, r.path));
    if let Some(t) = r.token {
        req = req.header("X-Vault-Token", t);
    }
    if let Some(b) = r.body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("{shown}: {}", causes(&e)))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| format!("{shown}: {e}"))?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// An error and its causes, "a: b: c" (reqwest's own text leaves out why a request failed).
pub(crate) fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(c) = next {
        out.push_str(&format!(": {c}"));
        next = c.source();
    }
    out
}
