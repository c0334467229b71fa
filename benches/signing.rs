//! The signer's speed against OpenBao's own transit engine, on one real server in one run.
//!
//!   scripts/bench [--seconds N]
//!   cargo bench --bench signing -- [--seconds N] [--only TEXT] [--clients N]
//!
//! One single-node Raft OpenBao (TLS, durable storage) holds both engines. Each scenario runs
//! for N seconds (after a one-second warm-up) at 1 and at 16 concurrent clients, and the table
//! gives p50/p99 latency, requests per second, and the plugin's ratio to transit's
//! `ecdsa-p256` sign. It also shows where the CPU goes (the server's, the plugin's and this
//! load generator's CPU time per request, from /proc) and how many Raft writes each request
//! cost (the committed index's growth), so group commit can be seen. The "write floor" is a
//! plugin write that does no work: the cost of OpenBao's plugin path alone. The raw k256
//! signing floor is measured in-process. `--only` keeps the scenarios whose name holds TEXT
//! (and the baseline), `--clients` runs one client count: for profiling one path.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use support::plugin::{Api, init_plain, plugin_pids, sha256_file};
use support::{ClusterSpec, bao_bin, cluster_with, root};

struct Stats {
    p50: Duration,
    p99: Duration,
    rps: f64,
    errors: usize,
    /// CPU time per request of the server, the plugin and this load generator.
    cpu: [Duration; 3],
    /// Requests sent, warm-up included.
    requests: usize,
    /// Raft log entries committed per request (durable writes; group commit shares one).
    raft_writes: f64,
}

/// user + system CPU time of a process so far, from /proc/PID/stat (10 ms ticks).
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rfind(')')
        .map(|i| stat[i + 2..].split(' ').collect())
        .unwrap_or_default();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// The server's pid, the plugin's, and our own.
fn pids(cluster: &support::TestCluster) -> [String; 3] {
    let server = cluster.nodes[0].pid().expect("the server is running");
    let plugin = *plugin_pids(cluster, 0)
        .first()
        .expect("the plugin process is running");
    [server.to_string(), plugin.to_string(), "self".to_string()]
}

/// One scenario's request: where, what, and the status that counts as served.
struct Target {
    url: String,
    token: String,
    body: Value,
    expect: u16,
}

async fn load(
    http: reqwest::Client,
    target: Target,
    clients: usize,
    secs: f64,
    pids: &[String; 3],
) -> Stats {
    let Target {
        url,
        token,
        body,
        expect,
    } = target;
    let run = |dur: Duration| {
        let (http, url, token, body) = (http.clone(), url.clone(), token.clone(), body.clone());
        async move {
            let deadline = Instant::now() + dur;
            let mut tasks = Vec::new();
            for _ in 0..clients {
                let (http, url, token, body) =
                    (http.clone(), url.clone(), token.clone(), body.clone());
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut errors = 0usize;
                    while Instant::now() < deadline {
                        let t0 = Instant::now();
                        let req = if body.is_null() {
                            http.get(&url)
                        } else {
                            http.post(&url).json(&body)
                        };
                        let ok = match req.header("X-Vault-Token", &token).send().await {
                            Ok(r) => r.status().as_u16() == expect && r.bytes().await.is_ok(),
                            Err(_) => false,
                        };
                        if ok {
                            lat.push(t0.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                    (lat, errors)
                }));
            }
            let mut all = Vec::new();
            let mut errors = 0;
            for t in tasks {
                let (l, e) = t.await.unwrap();
                all.extend(l);
                errors += e;
            }
            (all, errors)
        }
    };
    let warm = run(Duration::from_secs(1)).await.0.len();
    let dur = Duration::from_secs_f64(secs);
    let cpu0 = pids.each_ref().map(|p| cpu_time(p));
    let (mut lat, errors) = run(dur).await;
    let n = lat.len().max(1) as u32;
    let cpu = std::array::from_fn(|i| cpu_time(&pids[i]).saturating_sub(cpu0[i]) / n);
    lat.sort_unstable();
    let pick = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Stats {
        p50: pick(0.50),
        p99: pick(0.99),
        rps: lat.len() as f64 / dur.as_secs_f64(),
        errors,
        cpu,
        requests: warm + lat.len(),
        raft_writes: 0.0,
    }
}

/// Signatures per second and time per signature of `f`, on one core, for `secs`.
fn per_core(secs: f64, mut f: impl FnMut()) -> (f64, Duration) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut n = 0u64;
    let t0 = Instant::now();
    while Instant::now() < deadline {
        f();
        n += 1;
    }
    (
        n as f64 / t0.elapsed().as_secs_f64(),
        t0.elapsed() / n as u32,
    )
}

/// The raw k256 floor, and the plugin's own signing step (which verifies before release).
fn k256_floor(secs: f64) -> [(f64, Duration); 2] {
    let raw = k256::ecdsa::SigningKey::random(&mut k256::elliptic_curve::rand_core::OsRng);
    let key = custody_signer::eth::AccountKey::generate().unwrap();
    let hash = custody_signer::eth::keccak256(b"custody bench");
    [
        per_core(secs, || {
            std::hint::black_box(raw.sign_prehash_recoverable(hash.as_slice()).unwrap());
        }),
        per_core(secs, || {
            std::hint::black_box(key.sign_hash(&hash).unwrap());
        }),
    ]
}

/// The Raft log's committed index: its growth over a run counts the durable writes.
fn raft_index(api: &Api) -> i64 {
    api.read("sys/leader").1["raft_committed_index"]
        .as_i64()
        .expect("sys/leader gives raft_committed_index")
}

fn main() {
    let mut secs = 5.0f64;
    let mut only: Option<String> = None;
    let mut client_counts = vec![1usize, 16];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => {
                secs = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seconds N")
            }
            // For profiling one path: run only the scenarios whose name contains this text.
            "--only" => only = Some(args.next().expect("--only TEXT")),
            "--clients" => {
                client_counts = vec![
                    args.next()
                        .and_then(|s| s.parse().ok())
                        .expect("--clients N"),
                ]
            }
            _ => {}
        }
    }
    let plugin = root().join("target/release/custody-signer");
    assert!(
        plugin.is_file(),
        "build the release plugin first: cargo build --release -p custody-signer (scripts/bench does)"
    );

    let cluster = cluster_with(ClusterSpec {
        plugins: vec![plugin.clone()],
        ..ClusterSpec::raft("bench", 1, bao_bin())
    });
    let (token, _keys) = init_plain(&cluster);
    let api = Api::new(&cluster, 0, &token);
    api.ok(
        "POST",
        "sys/plugins/catalog/secret/custody-signer",
        Some(json!({ "sha256": sha256_file(&plugin), "command": "custody-signer" })),
    );
    api.enable("custody-signer", "ethereum");
    api.ok(
        "POST",
        "sys/mounts/transit",
        Some(json!({ "type": "transit" })),
    );
    api.ok(
        "POST",
        "transit/keys/bench",
        Some(json!({ "type": "ecdsa-p256" })),
    );
    api.ok("POST", "ethereum/config", Some(json!({ "chain_id": 1 })));
    api.ok(
        "POST",
        "ethereum/accounts/bench",
        Some(json!({ "unrestricted": true, "allow_sign_message": true })),
    );

    let pem = std::fs::read(&cluster.ca_cert).unwrap();
    let http = reqwest::Client::builder()
        .tls_backend_rustls()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let base = api.base.clone();
    let pids = pids(&cluster);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let transit_body =
        json!({ "input": base64::engine::general_purpose::STANDARD.encode([7u8; 32]) });
    let message_body = json!({ "message": "custody bench" });
    let tx_body = json!({ "to": "0x2222222222222222222222222222222222222222", "value": "1", "gas": 21000, "max_fee_per_gas": "2000000000", "max_priority_fee_per_gas": "1000000000" });
    let scenarios: Vec<(&str, String, Value, u16)> = vec![
        (
            "transit ecdsa-p256 sign (baseline)",
            format!("{base}/v1/transit/sign/bench"),
            transit_body,
            200,
        ),
        (
            "plugin sign-message (a)",
            format!("{base}/v1/ethereum/accounts/bench/sign-message"),
            message_body,
            200,
        ),
        (
            "plugin sign-tx, nonce stored (b)",
            format!("{base}/v1/ethereum/accounts/bench/sign-tx"),
            tx_body,
            200,
        ),
        (
            "plugin read config (no signature)",
            format!("{base}/v1/ethereum/config"),
            Value::Null,
            200,
        ),
        (
            "transit read key (no signature)",
            format!("{base}/v1/transit/keys/bench"),
            Value::Null,
            200,
        ),
        // The floor of any plugin write: the server's three calls (resolve-path, existence
        // check, the request), each answered at once (404, unknown path).
        (
            "plugin write floor (404, no work)",
            format!("{base}/v1/ethereum/floor"),
            json!({ "x": 1 }),
            404,
        ),
    ];
    let mut results: Vec<(usize, usize, Stats)> = Vec::new();
    for &clients in &client_counts {
        for (i, (name, url, body, expect)) in scenarios.iter().enumerate() {
            if i != 0 && only.as_deref().is_some_and(|o| !name.contains(o)) {
                continue;
            }
            let index0 = raft_index(&api);
            let target = Target {
                url: url.clone(),
                token: token.clone(),
                body: body.clone(),
                expect: *expect,
            };
            let mut s = rt.block_on(load(http.clone(), target, clients, secs, &pids));
            s.raft_writes = (raft_index(&api) - index0) as f64 / s.requests.max(1) as f64;
            results.push((i, clients, s));
        }
    }
    let next = api.ok("GET", "ethereum/accounts/bench/nonce", None)["next_nonce"]
        .as_u64()
        .unwrap();
    let [raw, checked] = k256_floor(secs.min(3.0));

    println!(
        "custody-signer vs transit, one OpenBao 2.7.2 (1-node Raft, TLS), {secs} s per run, 2 cores"
    );
    println!(
        "{:<38} {:>7} {:>9} {:>9} {:>9} {:>6} {:>12} {:>12}   CPU µs/request: server plugin load   raft writes/request",
        "scenario", "clients", "p50 ms", "p99 ms", "req/s", "errors", "p50 ratio", "req/s ratio"
    );
    for (i, clients, s) in &results {
        let base = &results
            .iter()
            .find(|(j, c, _)| *j == 0 && c == clients)
            .unwrap()
            .2;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let us = |d: Duration| d.as_micros();
        println!(
            "{:<38} {:>7} {:>9.2} {:>9.2} {:>9.0} {:>6} {:>11.2}x {:>11.2}x {:>20} {:>6} {:>4} {:>10.3}",
            scenarios[*i].0,
            clients,
            ms(s.p50),
            ms(s.p99),
            s.rps,
            s.errors,
            ms(s.p50) / ms(base.p50),
            s.rps / base.rps,
            us(s.cpu[0]),
            us(s.cpu[1]),
            us(s.cpu[2]),
            s.raft_writes,
        );
    }
    println!(
        "k256 sign_prehash_recoverable floor (one core, in-process): {:.1} µs/signature, {:.0} signatures/s",
        raw.1.as_secs_f64() * 1e6,
        raw.0
    );
    println!(
        "the plugin's signing step (sign, then verify before release): {:.1} µs/signature, {:.0} signatures/s",
        checked.1.as_secs_f64() * 1e6,
        checked.0
    );
    if next > 0 {
        println!("the sign-tx runs advanced the account's next_nonce from 0 to {next}.");
    }
    let get = |i: usize, c: usize| {
        results
            .iter()
            .find(|(j, cc, _)| *j == i && *cc == c)
            .map(|r| &r.2)
    };
    let ratio = |i: usize, c: usize, f: fn(&Stats) -> f64| Some(f(get(i, c)?) / f(get(0, c)?));
    let verdict = |r: f64, ok: bool| format!("{r:.2}x {}", if ok { "met" } else { "NOT met" });
    if let Some(a1) = ratio(1, 1, |s| s.p50.as_secs_f64()) {
        println!(
            "target (a) p50 at 1 client ≤ 1.5x transit: {}",
            verdict(a1, a1 <= 1.5)
        );
    }
    if let Some(a16) = ratio(1, 16, |s| s.rps) {
        println!(
            "target (a) req/s at 16 clients ≥ 0.7x transit: {}",
            verdict(a16, a16 >= 0.7)
        );
    }
    if let Some(b16) = ratio(2, 16, |s| s.rps) {
        println!(
            "target (b) req/s at 16 clients ≥ 0.5x transit: {}",
            verdict(b16, b16 >= 0.5)
        );
    }
    if let (Some(f1), Some(f16)) = (
        ratio(5, 1, |s| s.p50.as_secs_f64()),
        ratio(5, 16, |s| s.rps),
    ) {
        println!(
            "a plugin write that does no work (the plugin path alone): p50 {f1:.2}x transit at 1 client, req/s {f16:.2}x at 16"
        );
    }
}
