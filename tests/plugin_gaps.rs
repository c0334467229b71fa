//! Nonce gaps under faults on a real 3-node OpenBao Raft cluster (issue 25, section 2b): six
//! clients sign through every node while the active node is paused (SIGSTOP/SIGCONT), steps
//! down, a standby is paused, and the active node is killed (SIGKILL, restarted, unsealed).
//! Each client retries every transaction with its `request_id` until it is answered 200. Every
//! answer is recorded (node, status, nonce, tx hash); after healing the counter is read on the
//! active node. The checker: no nonce acknowledged with two payloads (nor a payload at two
//! nonces among the acknowledged), and every other answer is the plugin's retryable 503 or one
//! of OpenBao's own fault answers (see `classify`). Gaps are printed as KNOWN, each explained
//! from the audit logs: the request id does not fill them all yet. `GAPS_KEEP=1` keeps the
//! cluster's directory and prints the first answer of each kind.

use custody_test_support as support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use support::plugin::{
    Api, RECIPIENT, init_plain_n, plugin_bin, plugin_cluster, plugin_pids, sha256_file,
};
use support::*;

const CLIENTS: usize = 6;
const ACCOUNT: &str = "load";

/// One answer a client got.
#[derive(Clone, Debug)]
struct Answer {
    at_ms: u128,
    node: usize,
    /// 0: no HTTP answer (timeout, connection refused or reset).
    status: u16,
    nonce: Option<u64>,
    tx_hash: Option<String>,
    /// The plugin answered a retry with the nonce an earlier attempt was given.
    repeated: bool,
    /// The transaction's `value`: unique per request, so each payload differs.
    value: u64,
    error: String,
}

/// An HTTP client for every node, with short timeouts and no redirects followed (a 307 is an
/// answer to record, not to follow).
struct Nodes {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    addrs: Vec<String>,
    token: String,
}

async fn send(
    http: reqwest::Client,
    url: String,
    token: String,
    method: reqwest::Method,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let mut req = http.request(method, url).header("X-Vault-Token", token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

impl Nodes {
    fn new(c: &TestCluster, token: &str) -> Nodes {
        let pem = std::fs::read(&c.ca_cert).unwrap();
        let http = reqwest::Client::builder()
            .tls_backend_rustls()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        Nodes {
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
            http,
            addrs: c.nodes.iter().map(|n| n.addr().to_string()).collect(),
            token: token.to_owned(),
        }
    }

    fn call(
        &self,
        node: usize,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Option<(u16, Value)> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let url = format!("{}/v1/{path}", self.addrs[node]);
        self.rt
            .block_on(send(self.http.clone(), url, self.token.clone(), m, body))
            .ok()
    }

    fn active(&self) -> Option<usize> {
        (0..self.addrs.len())
            .find(|i| matches!(self.call(*i, "GET", "sys/health", None), Some((200, _))))
    }

    /// Waits until a node is active and signs; that node.
    #[track_caller]
    fn wait_signing(&self, bound: Duration) -> usize {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(a) = self.active()
                && matches!(
                    self.call(
                        a,
                        "GET",
                        &format!("ethereum/accounts/{ACCOUNT}/nonce"),
                        None
                    ),
                    Some((200, _))
                )
            {
                return a;
            }
            assert!(Instant::now() < deadline, "no node signs within {bound:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Unseals node `i` (it joins the cluster through retry_join first).
    #[track_caller]
    fn unseal(&self, i: usize, key: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some((200, v)) = self.call(i, "POST", "sys/unseal", Some(json!({ "key": key })))
                && v["sealed"] == false
            {
                return;
            }
            assert!(Instant::now() < deadline, "node {i} was not unsealed");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a process this test's cluster started.
    unsafe { libc::kill(pid as i32, sig) };
}

/// Client `id` signs through node `node` until `stop`, each transaction a new payload (its
/// `value`) with its own `request_id`, retried (same id, same payload) until it is answered 200,
/// as a careful client retries; after `stop` it finishes the transaction it has begun.
async fn client(
    id: usize,
    node: usize,
    http: reqwest::Client,
    url: String,
    token: String,
    start: Instant,
    stop: Arc<AtomicBool>,
) -> Vec<Answer> {
    let mut out = Vec::new();
    let mut seq = 0u64;
    let mut pending: Option<u64> = None;
    loop {
        let value = match pending {
            Some(v) => v,
            None if stop.load(Ordering::SeqCst) => break,
            None => {
                seq += 1;
                id as u64 * 1_000_000 + seq
            }
        };
        pending = Some(value);
        let body = json!({
            "to": RECIPIENT, "value": value.to_string(), "gas": 21000,
            "max_fee_per_gas": "2", "max_priority_fee_per_gas": "1",
            "request_id": format!("c{id}-{seq}"),
        });
        let r = send(
            http.clone(),
            url.clone(),
            token.clone(),
            reqwest::Method::POST,
            Some(body),
        )
        .await;
        let at_ms = start.elapsed().as_millis();
        // A 200 whose body did not arrive whole (the node killed while answering) gives the
        // client no signature: it is no answer, and asked again.
        let r = r.and_then(|(status, v)| {
            let signed = v["data"]["nonce"].as_u64().is_some() && v["data"]["tx_hash"].is_string();
            if status == 200 && !signed {
                Err(format!("a 200 without a readable signature (cut off): {v}"))
            } else {
                Ok((status, v))
            }
        });
        let a = match r {
            Ok((status, v)) => Answer {
                at_ms,
                node,
                status,
                nonce: v["data"]["nonce"].as_u64(),
                tx_hash: v["data"]["tx_hash"].as_str().map(str::to_owned),
                repeated: v["data"]["repeated"] == true,
                value,
                error: if status == 200 {
                    String::new()
                } else {
                    v["errors"].to_string()
                },
            },
            Err(e) => Answer {
                at_ms,
                node,
                status: 0,
                nonce: None,
                tx_hash: None,
                repeated: false,
                value,
                error: e,
            },
        };
        let failed = a.status != 200;
        out.push(a);
        if failed {
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "client {id} could not finish its transaction: {:?}",
                out.last()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        } else {
            pending = None;
        }
    }
    out
}

/// A 3-node cluster, every node unsealed and a voter, the plugin mounted (nonce and tx_hash in
/// clear in the audit log) with account `load`; (cluster, root token, unseal key).
fn cluster() -> (TestCluster, String, String) {
    let c = plugin_cluster("gaps", 3);
    let (root, keys) = init_plain_n(&c, 1, 1);
    let nodes = Nodes::new(&c, &root);
    for i in 1..3 {
        nodes.unseal(i, &keys[0]);
    }
    let api = Api::new(&c, 0, &root);
    api.ok(
        "POST",
        "sys/plugins/catalog/secret/custody-signer",
        Some(json!({ "sha256": sha256_file(&plugin_bin()), "command": "custody-signer" })),
    );
    api.ok(
        "POST",
        "sys/mounts/ethereum",
        Some(json!({ "type": "custody-signer", "config": {
            "audit_non_hmac_request_keys": ["value"],
            "audit_non_hmac_response_keys": ["nonce", "tx_hash"],
        }  })),
    );
    api.ok("POST", "ethereum/config", Some(json!({ "chain_id": 1337 })));
    api.ok(
        "POST",
        &format!("ethereum/accounts/{ACCOUNT}"),
        Some(json!({ "unrestricted": true })),
    );
    // Every node a voter, so losing one keeps a quorum.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let state = api.ok("GET", "sys/storage/raft/autopilot/state", None);
        if state["failure_tolerance"].as_u64() >= Some(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster never became failure tolerant: {state}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    (c, root, keys[0].clone())
}

/// The faults, in order, each healed before the next; their names and times.
fn faults(
    c: &mut TestCluster,
    nodes: &Nodes,
    key: &str,
    start: Instant,
) -> Vec<(String, u128, u128)> {
    let mut log = Vec::new();
    let mut mark = |what: String, from: u128| log.push((what, from, start.elapsed().as_millis()));
    std::thread::sleep(Duration::from_secs(3));

    // The active node paused 8 s: a standby takes over; the old one wakes up deposed.
    let a = nodes.wait_signing(Duration::from_secs(30));
    let t = start.elapsed().as_millis();
    let pid = c.nodes[a].pid().unwrap();
    signal(pid, libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(8));
    signal(pid, libc::SIGCONT);
    nodes.wait_signing(Duration::from_secs(60));
    mark(format!("pause node{} 8 s", a + 1), t);
    std::thread::sleep(Duration::from_secs(3));

    // A step-down of the active node.
    let a = nodes.wait_signing(Duration::from_secs(30));
    let t = start.elapsed().as_millis();
    let r = nodes.call(a, "PUT", "sys/step-down", None);
    assert!(matches!(r, Some((204, _))), "step-down: {r:?}");
    nodes.wait_signing(Duration::from_secs(60));
    mark(format!("step-down node{}", a + 1), t);
    std::thread::sleep(Duration::from_secs(3));

    // A standby paused 5 s: it wakes with a stale counter in its plugin (OpenBao runs it on
    // read-enabled standbys), then hears of the active node's writes.
    let a = nodes.wait_signing(Duration::from_secs(30));
    let s = (a + 1) % 3;
    let t = start.elapsed().as_millis();
    let pid = c.nodes[s].pid().unwrap();
    signal(pid, libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(5));
    signal(pid, libc::SIGCONT);
    mark(format!("pause standby node{} 5 s", s + 1), t);
    std::thread::sleep(Duration::from_secs(3));

    // The active node killed (its plugin with it), restarted sealed and unsealed.
    let a = nodes.wait_signing(Duration::from_secs(30));
    let t = start.elapsed().as_millis();
    let pid = c.nodes[a].pid().unwrap();
    let plugins = plugin_pids(c, a);
    signal(pid, libc::SIGKILL);
    for p in plugins {
        signal(p, libc::SIGKILL);
    }
    c.stop_node(a);
    nodes.wait_signing(Duration::from_secs(60));
    c.start_node(a).unwrap();
    nodes.unseal(a, key);
    mark(format!("kill, restart and unseal node{}", a + 1), t);
    std::thread::sleep(Duration::from_secs(3));
    log
}

/// Every audit line (of every node) whose response carries `nonce` for the account.
fn audit_lines_with_nonce(c: &TestCluster, nonce: u64) -> Vec<(usize, Value)> {
    let mut out = Vec::new();
    for (i, n) in c.nodes.iter().enumerate() {
        let text = std::fs::read_to_string(n.audit_log()).unwrap_or_default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if v["type"] == "response"
                && v["request"]["path"] == format!("ethereum/accounts/{ACCOUNT}/sign-tx")
                && v["response"]["data"]["nonce"].as_u64() == Some(nonce)
            {
                out.push((i, v));
            }
        }
    }
    out
}

#[test]
fn faults_sign_no_nonce_twice_and_every_gap_is_reported() {
    let (mut c, root, key) = cluster();
    if std::env::var_os("GAPS_KEEP").is_some() {
        c.keep_files();
        eprintln!("keeping {}", c.dir().display());
    }
    let nodes = Nodes::new(&c, &root);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let node = id % 3;
            nodes.rt.spawn(client(
                id,
                node,
                nodes.http.clone(),
                format!(
                    "{}/v1/ethereum/accounts/{ACCOUNT}/sign-tx",
                    nodes.addrs[node]
                ),
                root.clone(),
                start,
                stop.clone(),
            ))
        })
        .collect();
    let schedule = faults(&mut c, &nodes, &key, start);
    stop.store(true, Ordering::SeqCst);
    let mut history: Vec<Answer> = Vec::new();
    for h in handles {
        history.extend(nodes.rt.block_on(h).unwrap());
    }
    history.sort_by_key(|a| a.at_ms);

    // Healed: every node unsealed, one active; the counter read there.
    let active = nodes.wait_signing(Duration::from_secs(60));
    let counter = nodes
        .call(
            active,
            "GET",
            &format!("ethereum/accounts/{ACCOUNT}/nonce"),
            None,
        )
        .unwrap()
        .1["data"]["next_nonce"]
        .as_u64()
        .unwrap();

    // No (account, nonce) acknowledged with two payloads, and each payload at one nonce.
    let mut acked: BTreeMap<u64, (String, u64)> = BTreeMap::new();
    let mut nonce_of: BTreeMap<u64, u64> = BTreeMap::new();
    for a in history.iter().filter(|a| a.status == 200) {
        let (n, h) = (a.nonce.unwrap(), a.tx_hash.clone().unwrap());
        if let Some((other, v)) = acked.insert(n, (h.clone(), a.value))
            && (other != h || v != a.value)
        {
            panic!(
                "nonce {n} acknowledged twice: value {v} ({other}) and value {} ({h})",
                a.value
            );
        }
        if let Some(m) = nonce_of.insert(a.value, n) {
            assert_eq!(m, n, "value {} acknowledged at nonces {m} and {n}", a.value);
        }
    }
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut unexplained = Vec::new();
    for a in history.iter() {
        let kind = classify(a);
        if kind.starts_with("other") {
            unexplained.push(a.clone());
        }
        *statuses.entry(kind).or_default() += 1;
    }
    if std::env::var_os("GAPS_KEEP").is_some() {
        let mut seen = std::collections::BTreeSet::new();
        for a in history.iter().filter(|a| a.status != 200) {
            if seen.insert(short(&a.error)) {
                eprintln!(
                    "  first {} at {} ms node{}: {}",
                    a.status,
                    a.at_ms,
                    a.node + 1,
                    a.error
                );
            }
        }
    }
    // A retry answered with the nonce of an earlier attempt whose answer was lost: a gap the
    // request id filled.
    let filled: Vec<u64> = history
        .iter()
        .filter(|a| a.status == 200 && a.repeated)
        .map(|a| a.nonce.unwrap())
        .collect();
    let gaps: Vec<u64> = (0..counter).filter(|n| !acked.contains_key(n)).collect();
    eprintln!("faults: {schedule:?}");
    eprintln!(
        "answers: {} ; acknowledged {} ; counter {counter}; filled by a retry: {filled:?}",
        history.len(),
        acked.len()
    );
    for (k, v) in &statuses {
        eprintln!("  {v:6}  {k}");
    }
    let answered = explain_gaps(&c, &history, &gaps);
    assert!(
        acked.keys().all(|n| *n < counter),
        "acknowledged nonces at or above the counter {counter}"
    );
    // A gap whose signature some node answered is one a retry should have filled with the
    // same nonce; a gap no node answered is a nonce stored without a signature leaving the
    // server. Both are still seen (in 3 of the last 5 runs: nonce 465 unanswered; 1010, 1011
    // and 1014 answered during a pause while the retries got 307s, then signed at new nonces),
    // so they are printed as KNOWN with what the audit logs hold, not failed on: the request id
    // does not yet fill every gap (ARCHITECTURE.md, "Nonce gaps").
    if !gaps.is_empty() {
        println!(
            "KNOWN: {} gap(s) {gaps:?}; of them answered by a node (a signature out, its request \
             given another nonce): {answered:?}",
            gaps.len()
        );
    }
    assert!(
        unexplained.is_empty(),
        "answers other than 200, a retryable 503 and OpenBao's own fault answers: {unexplained:?}"
    );
    assert!(
        acked.len() > 100,
        "too little load to prove anything: {statuses:?}"
    );
    assert!(
        statuses.keys().any(|k| k != "200"),
        "no request failed: the faults did not strike"
    );
}

/// What an answer is, and who gave it.
fn classify(a: &Answer) -> String {
    let e = &a.error;
    match a.status {
        200 => "200".into(),
        503 if e.contains("nothing was signed") => "503 plugin: nothing was signed, retry".into(),
        503 if e.contains("Vault is sealed") => {
            "503 OpenBao: the node is sealed (restarted)".into()
        }
        503 if e.contains("no active Vault instance found") => "503 OpenBao: no active node".into(),
        307 => "307 OpenBao: a standby whose forwarding to the active failed redirects (the \
                active may have executed it)"
            .into(),
        500 if e.contains("local node not active but active cluster node not found") => {
            "500 OpenBao: a standby that knows no active node (an election)".into()
        }
        0 => {
            "no answer: connection refused or reset, or a timeout (a paused or killed node)".into()
        }
        s => format!("other {s} {}", short(e)),
    }
}

/// Prints what the audit logs say of each gap: a response on some node (signed and answered,
/// the answer lost on the way) or none (stored, never answered: the node was killed or paused
/// between the counter's write and the signature's answer).
/// Prints what the audit logs hold of each gap's nonce; returns the gaps some node answered a
/// signature for (a signature that left the server, its answer lost and never asked again).
fn explain_gaps(c: &TestCluster, history: &[Answer], gaps: &[u64]) -> Vec<u64> {
    let mut answered = Vec::new();
    for n in gaps {
        let lines = audit_lines_with_nonce(c, *n);
        if !lines.is_empty() {
            answered.push(*n);
        }
        let near: Vec<String> = history
            .iter()
            .filter(|a| a.status != 200)
            .filter(|a| {
                lines.iter().any(|(_, v)| {
                    v["request"]["data"]["value"].as_str() == Some(a.value.to_string().as_str())
                })
            })
            .map(|a| {
                format!(
                    "client answer at {} ms from node{}: {}",
                    a.at_ms,
                    a.node + 1,
                    classify(a)
                )
            })
            .collect();
        eprintln!(
            "gap {n}: {} audit response(s): {:?}; {near:?}",
            lines.len(),
            lines
                .iter()
                .map(|(i, v)| format!(
                    "node{} {} value {}",
                    i + 1,
                    v["time"],
                    v["request"]["data"]["value"]
                ))
                .collect::<Vec<_>>()
        );
    }
    answered
}

/// The first words of an error, without the varying parts.
fn short(e: &str) -> String {
    let e: String = e.chars().filter(|c| !c.is_ascii_digit()).collect();
    e.chars().take(110).collect()
}
