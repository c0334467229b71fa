//! Plugin test helpers: the built plugin binary, a plain JSON client for the server's HTTP API,
//! the independent signature checker (eth-account) and a real chain (anvil).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use custody::localcluster::haproxy::LocalHaproxy;

use super::{ClusterSpec, Custody, Run, TestCluster, bao_bin, cluster_with, root};

/// A Raft cluster of `nodes` TLS nodes with the plugin in each node's plugin directory
/// (registered and enabled by nobody yet).
pub fn plugin_cluster(name: &str, nodes: usize) -> TestCluster {
    cluster_with(ClusterSpec {
        plugins: vec![plugin_bin()],
        ..ClusterSpec::raft(name, nodes, bao_bin())
    })
}

/// A cluster started from `spec`, initialized with one plaintext key and unsealed: the cluster,
/// its root token, the key, and a client with the root token on node 0.
pub fn init_plain_cluster(spec: ClusterSpec) -> (TestCluster, String, Vec<String>, Api) {
    let cluster = cluster_with(spec);
    let (root, keys) = init_plain(&cluster);
    let api = Api::new(&cluster, 0, &root);
    (cluster, root, keys, api)
}

/// Whether node `node` is the active, unsealed node (`sys/health` answers 200).
pub fn is_active(cluster: &TestCluster, node: usize) -> bool {
    Api::new(cluster, node, "").read("sys/health").0 == 200
}

/// The node that is active now, if any.
pub fn active_node(cluster: &TestCluster) -> Option<usize> {
    (0..cluster.nodes.len()).find(|i| is_active(cluster, *i))
}

/// A dev server with the plugin in its plugin directory, mounted at `ethereum/`.
pub fn dev_server_with_plugin(name: &str) -> (TestCluster, Api) {
    let c = cluster_with(ClusterSpec {
        dev: true,
        plugins: vec![plugin_bin()],
        ..ClusterSpec::raft(name, 1, bao_bin())
    });
    let token = c
        .dev_root_token()
        .expect("a dev server has a root token")
        .expose()
        .to_owned();
    let api = Api::new(&c, 0, &token);
    api.enable("custody-signer", "ethereum");
    (c, api)
}

/// The plugin binary cargo built beside this test (`scripts/test` builds every binary first).
pub fn plugin_bin() -> PathBuf {
    super::target_bin(
        "custody-signer",
        "build it first (cargo build --workspace --bins; scripts/test does)",
    )
}

pub fn sha256_file(p: &std::path::Path) -> String {
    custody::digest::sha256_file(p).unwrap()
}

/// A blocking JSON client for one node, with a token.
pub struct Api {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub fn new(cluster: &TestCluster, node: usize, token: &str) -> Api {
        let pem = std::fs::read(&cluster.ca_cert).unwrap();
        let http = reqwest::Client::builder()
            .tls_backend_rustls()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        Api {
            rt,
            http,
            base: cluster.nodes[node].addr().to_string(),
            token: token.to_owned(),
        }
    }

    /// (status, body as JSON or Null).
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let fut = Self::send(
            self.http.clone(),
            self.base.clone(),
            self.token.clone(),
            method.to_owned(),
            path.to_owned(),
            body,
        );
        self.rt.block_on(fut)
    }

    async fn send(
        http: reqwest::Client,
        base: String,
        token: String,
        method: String,
        path: String,
        body: Option<Value>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = http
            .request(m, format!("{base}/v1/{path}"))
            .header("X-Vault-Token", token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn read(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None)
    }
    pub fn write(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(body))
    }

    /// A POST of `body` as written (JSON text a `Value` cannot hold, such as an integer beyond
    /// 64 bits), answered as (status, body as JSON or Null).
    pub fn write_text(&self, path: &str, body: &str) -> (u16, Value) {
        let req = self
            .http
            .post(format!("{}/v1/{path}", self.base))
            .header("X-Vault-Token", &self.token)
            .header("Content-Type", "application/json")
            .body(body.to_owned());
        self.rt.block_on(async move {
            let resp = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("POST {path}: {e}"));
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
    }

    /// The `data` of a successful call; panics with the server's words otherwise.
    #[track_caller]
    pub fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body);
        assert!(
            status == 200 || status == 204,
            "{method} {path}: HTTP {status}: {v}"
        );
        v.get("data").cloned().unwrap_or(Value::Null)
    }

    /// The `data` of a read that succeeds within `secs` (a mount coming back after a restart).
    #[track_caller]
    pub fn read_when_ready(&self, path: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (status, v) = self.read(path);
            if status == 200 {
                return v["data"].clone();
            }
            assert!(
                Instant::now() < deadline,
                "{path} did not answer within {secs} s: HTTP {status} {v}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Many requests at once (each its own task), results in order.
    pub fn concurrent(&self, calls: Vec<(String, String, Option<Value>)>) -> Vec<(u16, Value)> {
        let (http, base, token) = (self.http.clone(), self.base.clone(), self.token.clone());
        self.rt.block_on(async move {
            let mut handles = Vec::new();
            for (m, p, b) in calls {
                handles.push(tokio::spawn(Self::send(
                    http.clone(),
                    base.clone(),
                    token.clone(),
                    m,
                    p,
                    b,
                )));
            }
            let mut out = Vec::new();
            for h in handles {
                out.push(h.await.unwrap());
            }
            out
        })
    }

    /// A write refused with `status`, its error naming `needle`.
    #[track_caller]
    pub fn refused(&self, path: &str, body: Value, status: u16, needle: &str) {
        let (got, v) = self.write(path, body.clone());
        assert_eq!(
            got, status,
            "{path} {body}: HTTP {got} (want {status}): {v}"
        );
        let text = v.to_string();
        assert!(
            text.contains(needle),
            "{path} {body}: the error lacks {needle:?}: {text}"
        );
    }

    /// Registers `bin` (already in the server's plugin directory) in the catalog by its sha256
    /// and enables it at `ethereum/`.
    pub fn register_and_enable(&self, bin: &Path) {
        self.ok(
            "POST",
            "sys/plugins/catalog/secret/custody-signer",
            Some(json!({ "sha256": sha256_file(bin), "command": "custody-signer" })),
        );
        self.enable("custody-signer", "ethereum");
    }

    /// Enables the plugin at `mount` and waits until it answers.
    pub fn enable(&self, plugin: &str, mount: &str) {
        self.ok(
            "POST",
            &format!("sys/mounts/{mount}"),
            Some(json!({ "type": plugin })),
        );
    }
}

/// Init (plaintext keys: test clusters only) and unseal a 1-node Raft cluster; the root token.
pub fn init_plain(cluster: &TestCluster) -> (String, Vec<String>) {
    init_plain_n(cluster, 1, 1)
}

/// Init with `shares`/`threshold` (plaintext keys: test clusters only) and unseal; the root
/// token and every key.
pub fn init_plain_n(cluster: &TestCluster, shares: u32, threshold: usize) -> (String, Vec<String>) {
    let api = Api::new(cluster, 0, "");
    let (status, v) = api.write(
        "sys/init",
        json!({ "secret_shares": shares, "secret_threshold": threshold }),
    );
    assert_eq!(status, 200, "init: {v}");
    let keys: Vec<String> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    unseal_plain(cluster, &keys[..threshold]);
    (v["root_token"].as_str().unwrap().to_owned(), keys)
}

pub fn unseal_plain(cluster: &TestCluster, keys: &[String]) {
    let api = Api::new(cluster, 0, "");
    for k in keys {
        let (status, v) = api.write("sys/unseal", json!({ "key": k }));
        assert_eq!(status, 200, "unseal: {v}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = api.read("sys/health");
        if status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the node did not become active (health {status})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// eth-account's verdict on a signature (tests/tools/eth_check.py in the set-up's venv).
pub fn eth_check(input: Value) -> Value {
    let python = root().join("tools/venv/bin/python");
    assert!(
        python.is_file(),
        "the tests need eth-account in tools/venv: run scripts/setup"
    );
    let mut child = Command::new(python)
        .arg(root().join("tests/tools/eth_check.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        input.to_string().as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("eth_check: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "eth_check refused {input}: {v}");
    v
}

/// A real chain on a free loopback port, stopped by pid on drop.
pub struct Anvil {
    child: Child,
    pub url: String,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Anvil {
    pub fn start(chain_id: u64) -> Anvil {
        Anvil::spawn(chain_id, &[])
    }

    /// `anvil --fork-url` of `of` at its latest block: another node of the same chain, which
    /// agrees with `of` on every block up to that one (until the test changes it).
    pub fn fork(of: &Anvil, chain_id: u64) -> Anvil {
        let block = of.rpc("eth_blockNumber", json!([]));
        let block =
            u64::from_str_radix(block.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
        Anvil::spawn(
            chain_id,
            &[
                "--fork-url",
                &of.url,
                "--fork-block-number",
                &block.to_string(),
            ],
        )
    }

    fn spawn(chain_id: u64, extra: &[&str]) -> Anvil {
        let bin = root().join("tools/bin/anvil");
        assert!(
            bin.is_file(),
            "the tests need anvil at tools/bin/anvil: run scripts/setup"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--chain-id",
                &chain_id.to_string(),
                "--silent",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let a = Anvil {
            child,
            url: format!("http://127.0.0.1:{port}"),
            rt,
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while a.try_rpc("eth_chainId", json!([])).is_err() {
            assert!(
                Instant::now() < deadline,
                "anvil did not answer on {}",
                a.url
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        a
    }

    fn try_rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
        let (http, url) = (self.http.clone(), self.url.clone());
        self.rt.block_on(async move {
            let resp = http
                .post(url)
                .json(&body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            resp.json::<Value>().await.map_err(|e| e.to_string())
        })
    }

    #[track_caller]
    pub fn rpc(&self, method: &str, params: Value) -> Value {
        let v = self.try_rpc(method, params).unwrap();
        assert!(v.get("error").is_none(), "{method}: {v}");
        v["result"].clone()
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The recipient every test Authority may send to.
pub const RECIPIENT: &str = "0x2222222222222222222222222222222222222222";

/// The body of a plain transfer to [`RECIPIENT`] (`sign-tx`), which every test Authority signs.
pub fn transfer_tx() -> Value {
    json!({ "to": RECIPIENT, "gas": 21000, "max_fee_per_gas": "2", "max_priority_fee_per_gas": "1" })
}

/// A cluster with the plugin, the Authority and a signer token; (cluster, root, keys, signer, address).
pub fn authority_cluster(
    name: &str,
    dir: &Path,
) -> (TestCluster, String, Vec<String>, String, String) {
    let cl = plugin_cluster(name, 1);
    let (root, keys) = init_plain_n(&cl, 5, 3);
    let root_file = dir.join(format!("{name}-root.token"));
    std::fs::write(&root_file, &root).unwrap();
    let c = Custody::for_cluster(dir, &cl).with_token_file(&root_file);
    let wrap = dir.join(format!("{name}-signer.wrap"));
    let address = install_authority(&c, &wrap);
    let signer = unwrap_signer(&cl, &wrap);
    (cl, root, keys, signer, address)
}

/// `plugin install` and `wallet create authority` (chain 1, allowed to send to [`RECIPIENT`]) by
/// `c`, which carries a token that may (a root token); the wrapped signer token goes to `wrap`.
/// The Authority's address.
pub fn install_authority(c: &Custody, wrap: &Path) -> String {
    c.run(&[
        "plugin",
        "install",
        "--plugin-bin",
        plugin_bin().to_str().unwrap(),
    ])
    .expect(0);
    let r = c.run(&[
        "--format",
        "json",
        "wallet",
        "create",
        "authority",
        "--chain-id",
        "1",
        "--allowed-to",
        RECIPIENT,
        "--signer-token-out",
        wrap.to_str().unwrap(),
    ]);
    r.expect(0);
    r.json()["wallet"]["address"].as_str().unwrap().to_owned()
}

/// The signer token, unwrapped (once) from the file `wallet create --signer-token-out` wrote.
pub fn unwrap_signer(cluster: &TestCluster, wrap: &Path) -> String {
    let wrapping = std::fs::read_to_string(wrap).unwrap().trim().to_owned();
    let (status, v) = Api::new(cluster, 0, &wrapping).write("sys/wrapping/unwrap", json!({}));
    assert_eq!(status, 200, "unwrapping the signer token: {v}");
    v["auth"]["client_token"].as_str().unwrap().to_owned()
}

/// A 1-node "green" cluster with the plugin, initialized by its own throwaway key (5 shares,
/// threshold 3, plaintext: test clusters only), its root token in `dir/green-root.token`: the
/// target a snapshot is restored into.
pub struct Green {
    pub cluster: TestCluster,
    pub keys: Vec<String>,
    pub root_file: PathBuf,
}

pub fn green_cluster(dir: &Path) -> Green {
    let cluster = plugin_cluster("green", 1);
    let (root, keys) = init_plain_n(&cluster, 5, 3);
    let root_file = dir.join("green-root.token");
    std::fs::write(&root_file, &root).unwrap();
    Green {
        cluster,
        keys,
        root_file,
    }
}

impl Green {
    /// custody pointed at green, working in `dir`.
    pub fn custody(&self, dir: &Path) -> Custody {
        Custody::for_cluster(dir, &self.cluster)
    }

    /// `custody snapshot restore SNAP` into green with green's own root token (it needs a passed
    /// `snapshot verify` of SNAP in the transcript).
    pub fn restore(&self, dir: &Path, snap: &Path) -> Run {
        self.custody(dir).with_token_file(&self.root_file).run(&[
            "snapshot",
            "restore",
            snap.to_str().unwrap(),
        ])
    }
}

/// Each server of HAProxy's `vault` backend and its status (UP, MAINT, DOWN, ...).
pub fn lb_states(lb: &LocalHaproxy) -> BTreeMap<String, String> {
    custody::lb::haproxy::Haproxy::new(&lb.socket)
        .servers("vault")
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.status))
        .collect()
}

/// Blue (with the Authority) and green restored from it and unsealed by blue's keys, HAProxy in
/// front (blue1 in service, green1 in maintenance, waited until blue1 is UP), and a CA bundle of
/// both: the starting point of every cutover.
pub struct BlueGreen {
    pub blue: TestCluster,
    pub green: TestCluster,
    pub lb: custody::localcluster::haproxy::LocalHaproxy,
    pub root: String,
    pub root_file: PathBuf,
    pub keys: Vec<String>,
    pub signer: String,
    pub address: String,
    pub both_ca: PathBuf,
}

impl BlueGreen {
    /// The operator's custody for a cutover: both clusters' CAs and blue's root token.
    pub fn operator(&self, dir: &Path) -> Custody {
        Custody::with_ca_and_token(dir, &self.both_ca, &self.root_file)
    }

    /// `--lb` for the balancer's runtime API.
    pub fn lb_spec(&self) -> String {
        format!("haproxy:{}", self.lb.socket.display())
    }

    /// `cutover` from blue1 to `to` through the balancer `lb_spec`, green's server named
    /// `green_server` in the `vault` backend, 20 s to drain.
    pub fn cutover_args(&self, to: &str, lb_spec: &str, green_server: &str) -> Vec<String> {
        vec![
            "cutover".into(),
            "--from".into(),
            self.blue.nodes[0].addr().to_string(),
            "--to".into(),
            to.into(),
            "--lb".into(),
            lb_spec.into(),
            "--lb-backend".into(),
            "vault".into(),
            "--blue-server".into(),
            "blue1".into(),
            "--green-server".into(),
            green_server.into(),
            "--lb-url".into(),
            self.lb.url(),
            "--drain-timeout".into(),
            "20s".into(),
        ]
    }
}

pub fn blue_green_behind_haproxy(dir: &Path) -> BlueGreen {
    use custody::localcluster::haproxy::LbServer;
    let (blue, root, keys, signer, address) = authority_cluster("blue", dir);
    let root_file = dir.join("blue-root.token");
    let green = green_cluster(dir);
    let snap = dir.join("blue.snap");
    Custody::for_cluster(dir, &blue)
        .with_token_file(&root_file)
        .run(&["snapshot", "save", "--out", snap.to_str().unwrap()])
        .expect(0);
    // A restore needs a passed verify of these bytes in the transcript.
    Custody::new(dir)
        .run(&["snapshot", "verify", snap.to_str().unwrap()])
        .expect(0);
    green.restore(dir, &snap).expect(0);
    let green = green.cluster;
    unseal_plain(&green, &keys[..3]);
    let lb = LocalHaproxy::start(
        &dir.join("lb"),
        "vault",
        &[
            LbServer {
                name: "blue1".into(),
                ip: blue.nodes[0].host.ip,
                port: blue.nodes[0].api_port,
                ca_file: blue.ca_cert.clone(),
                disabled: false,
            },
            LbServer {
                name: "green1".into(),
                ip: green.nodes[0].host.ip,
                port: green.nodes[0].api_port,
                ca_file: green.ca_cert.clone(),
                disabled: true,
            },
        ],
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while lb_states(&lb)["blue1"] != "UP" {
        assert!(Instant::now() < deadline, "blue1 never came UP");
        std::thread::sleep(Duration::from_millis(100));
    }
    let both_ca = super::ca_bundle(&dir.join("both-ca.pem"), &[&blue.ca_cert, &green.ca_cert]);
    BlueGreen {
        blue,
        green,
        lb,
        root,
        root_file,
        keys,
        signer,
        address,
        both_ca,
    }
}

/// The custody-signer processes that node `node`'s server started.
pub fn plugin_pids(cluster: &TestCluster, node: usize) -> Vec<u32> {
    let server = cluster.nodes[node].pid().expect("the server is running");
    custody::localcluster::children_of(server)
        .into_iter()
        .filter(|p| {
            std::fs::read_link(format!("/proc/{p}/exe"))
                .map(|e| e.ends_with("custody-signer"))
                .unwrap_or(false)
        })
        .collect()
}

/// SIGKILLs every custody-signer process that node `node`'s server started; returns their pids.
pub fn kill_plugins(cluster: &TestCluster, node: usize) -> Vec<u32> {
    let plugins = plugin_pids(cluster, node);
    for p in &plugins {
        // SAFETY: kill(2) on a pid this test's server started.
        unsafe { libc::kill(*p as i32, libc::SIGKILL) };
    }
    plugins
}
