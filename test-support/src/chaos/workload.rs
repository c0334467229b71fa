//! The workload, all through the balancer as the child chain reaches custody: one client
//! signing one transaction after another, 8 signing concurrently, and a reader of the nonce
//! counter; each acknowledged transaction is sent to the chain (anvil) by the client that got
//! it. Every operation goes into the [`History`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

use super::history::{History, Kind, Outcome};
use crate::netns::probe::causes;
use crate::plugin::RECIPIENT;

/// How long one request may take before it counts as unanswered (status 0).
pub const REQUEST_BOUND: Duration = Duration::from_secs(10);
/// The concurrent signers.
pub const CONCURRENT: usize = 8;

/// Where the workload goes.
#[derive(Clone)]
pub struct Target {
    /// The balancer's URL.
    pub lb: String,
    /// anvil's JSON-RPC URL.
    pub anvil: String,
    /// The signer token (sign-tx).
    pub token: String,
    /// A token that may read the counter (the signer's policy may not).
    pub read_token: String,
    /// The account's name.
    pub account: String,
}

pub struct Workload {
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl Workload {
    pub fn start(target: Target, history: History) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            rt.block_on(run(target, history, s));
        });
        Workload {
            stop,
            worker: Some(worker),
        }
    }

    /// Stops every client once its operation in flight completed.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(w) = self.worker.take() {
            w.join().expect("the workload thread");
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

async fn run(t: Target, h: History, stop: Arc<AtomicBool>) {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_BOUND)
        .connect_timeout(REQUEST_BOUND)
        // A fresh connection per request: a kept-alive one that HAProxy closed meanwhile
        // fails as "connection closed before message completed", which is no fault's doing.
        .pool_max_idle_per_host(0)
        // A standby's 307 to the active node is an answer to record, not to follow.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client");
    let c = Client {
        http,
        t,
        h,
        intents: Default::default(),
    };
    let c = Arc::new(c);
    let mut tasks = Vec::new();
    let mut spawn = |name: String, pause: u64, read: bool| {
        let (c, stop) = (c.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if read {
                    c.read(&name).await;
                } else {
                    c.sign_and_send(&name).await;
                }
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }));
    };
    spawn("seq".into(), 10, false);
    for i in 0..CONCURRENT {
        spawn(format!("c{i}"), 50, false);
    }
    spawn("reader".into(), 200, true);
    for task in tasks {
        let _ = task.await;
    }
}

struct Client {
    http: reqwest::Client,
    t: Target,
    h: History,
    /// The intents numbered so far, across every client.
    intents: std::sync::atomic::AtomicU64,
}

/// How long an intent is asked again before its client gives up on it (and may leave a gap).
const INTENT_BOUND: Duration = Duration::from_secs(90);

impl Client {
    /// One intent of `client`: `sign-tx` of a transfer whose value is the intent's number (so
    /// two intents' releases of one nonce always differ), with a `request_id` naming the
    /// intent, asked again with the same id until it is acknowledged (as the child chain's
    /// client must: an answer lost to a fault may have been signed, and only the same request
    /// gets that nonce again), for at most [`INTENT_BOUND`]; acknowledged, it is sent to anvil.
    /// Each attempt is an operation of its own in the history.
    async fn sign_and_send(&self, client: &str) {
        let intent = self.intents.fetch_add(1, Ordering::SeqCst);
        let body = json!({
            "to": RECIPIENT, "value": intent.to_string(), "gas": 21000,
            "max_fee_per_gas": "2000000000", "max_priority_fee_per_gas": "1",
            "request_id": format!("{client}-{intent}"),
        });
        let url = format!(
            "{}/v1/ethereum/accounts/{}/sign-tx",
            self.t.lb, self.t.account
        );
        let deadline = std::time::Instant::now() + INTENT_BOUND;
        loop {
            let id = self.h.invoke(client, Kind::Sign, "lb");
            let (status, v, error) = self
                .vault("POST", &url, &self.t.token, Some(body.clone()))
                .await;
            let d = &v["data"];
            let raw = d["signed_tx"].as_str().map(str::to_owned);
            let hash = d["tx_hash"].as_str().map(str::to_owned);
            self.h.complete(
                id,
                Outcome {
                    status,
                    nonce: d["nonce"].as_u64().filter(|_| status == 200),
                    payload: raw.clone().filter(|_| status == 200),
                    tx_hash: hash.clone().filter(|_| status == 200),
                    error,
                },
            );
            match (status, raw) {
                (200, Some(raw)) => return self.broadcast(client, raw, hash).await,
                // Refused for what it asks (never for a fault): asking again changes nothing.
                (400 | 403, _) => return,
                _ if std::time::Instant::now() > deadline => return,
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    async fn broadcast(&self, client: &str, raw: String, hash: Option<String>) {
        let id = self.h.invoke(client, Kind::Broadcast, "anvil");
        let body = json!({ "jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [raw] });
        let r = self.http.post(&self.t.anvil).json(&body).send().await;
        let o = match r {
            Err(e) => Outcome {
                error: Some(e.to_string()),
                tx_hash: hash,
                ..Outcome::default()
            },
            Ok(r) => {
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                Outcome {
                    status,
                    error: v.get("error").map(|e| e.to_string()),
                    tx_hash: v["result"].as_str().map(str::to_owned).or(hash),
                    ..Outcome::default()
                }
            }
        };
        self.h.complete(id, o);
    }

    async fn read(&self, client: &str) {
        let id = self.h.invoke(client, Kind::Read, "lb");
        let url = format!(
            "{}/v1/ethereum/accounts/{}/nonce",
            self.t.lb, self.t.account
        );
        let (status, v, error) = self.vault("GET", &url, &self.t.read_token, None).await;
        let nonce = v["data"]["next_nonce"].as_u64().filter(|_| status == 200);
        self.h.complete(
            id,
            Outcome {
                status,
                nonce,
                error,
                ..Outcome::default()
            },
        );
    }

    /// (status, body, error text): status 0 when nothing came back.
    async fn vault(
        &self,
        method: &str,
        url: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value, Option<String>) {
        let m = if method == "GET" {
            reqwest::Method::GET
        } else {
            reqwest::Method::POST
        };
        let mut req = self.http.request(m, url).header("X-Vault-Token", token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        match req.send().await {
            Err(e) => (0, Value::Null, Some(causes(&e))),
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let error = (status != 200).then(|| match &v["errors"] {
                    Value::Null => text.chars().take(300).collect(),
                    e => e.to_string(),
                });
                (status, v, error)
            }
        }
    }
}
