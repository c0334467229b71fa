//! The signer's speed against OpenBao's own transit engine, on one real server in one run.
//!
//!   scripts/bench [--seconds N]
//!   cargo bench --bench signing -- [--seconds N] [--only TEXT] [--clients N]
//!
//! One single-node Raft OpenBao (TLS, durable storage) holds both engines. Each scenario runs
//! for N seconds (after a one-second warm-up) at 1 and at 16 concurrent clients, and the table
//! gives p50/p99 latency, requests per second, and each row's ratio to the plugin write floor
//! (the yardstick: OpenBao's plugin path alone), run just before and after each signing row so
//! that drift on a shared machine cancels, and, for context, to transit's `ecdsa-p256` sign. It also shows where the CPU goes (the server's, the plugin's and this
//! load generator's CPU time per request, from /proc) and how many Raft writes each request
//! cost (the committed index's growth), so group commit can be seen. The "write floor" is a
//! plugin write that does no work: the cost of OpenBao's plugin path alone. The signing step
//! (sign, verify before release) is measured in-process with k256 and with libsecp256k1. `--only` keeps the scenarios whose name holds TEXT
//! (and the baseline), `--clients` runs one client count: for profiling one path.

use custody_test_support as support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use support::plugin::{Api, init_plain_cluster, plugin_pids};
use support::{ClusterSpec, bao_bin, root};

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

/// The signing step on one core: the raw signature, and the plugin's sign-then-verify, with
/// k256 (what the plugin uses) and with libsecp256k1 (the `secp256k1` crate), on one hash.
struct SigningStep {
    k256_raw: (f64, Duration),
    k256_checked: (f64, Duration),
    plugin_step: (f64, Duration),
    secp_raw: (f64, Duration),
    secp_checked: (f64, Duration),
}

fn signing_step(secs: f64) -> SigningStep {
    let raw = k256::ecdsa::SigningKey::random(&mut k256::elliptic_curve::rand_core::OsRng);
    let key = custody_signer::eth::AccountKey::generate().unwrap();
    let hash = custody_signer::eth::keccak256(b"custody bench");
    let secp = secp256k1::Secp256k1::new();
    let sk = secp256k1::SecretKey::from_byte_array(raw.to_bytes().into()).unwrap();
    let pk = secp256k1::PublicKey::from_secret_key(&secp, &sk);
    let msg = secp256k1::Message::from_digest(hash.0);
    SigningStep {
        k256_raw: per_core(secs, || {
            std::hint::black_box(raw.sign_prehash_recoverable(hash.as_slice()).unwrap());
        }),
        k256_checked: per_core(secs, || {
            let (sig, _) = raw.sign_prehash_recoverable(hash.as_slice()).unwrap();
            k256::ecdsa::signature::hazmat::PrehashVerifier::verify_prehash(
                raw.verifying_key(),
                hash.as_slice(),
                &sig,
            )
            .unwrap();
        }),
        plugin_step: per_core(secs, || {
            std::hint::black_box(key.sign_hash(&hash).unwrap());
        }),
        secp_raw: per_core(secs, || {
            std::hint::black_box(secp.sign_ecdsa_recoverable(msg, &sk));
        }),
        secp_checked: per_core(secs, || {
            let sig = secp.sign_ecdsa_recoverable(msg, &sk);
            secp.verify_ecdsa(msg, &sig.to_standard(), &pk).unwrap();
        }),
    }
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

    let (cluster, token, _keys, api) = init_plain_cluster(ClusterSpec {
        plugins: vec![plugin.clone()],
        ..ClusterSpec::raft("bench", 1, bao_bin())
    });
    api.register_and_enable(&plugin);
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
    // The floor runs before and after each signing row, so each row is set against the floor
    // measured beside it: on a shared machine the load drifts over a minute.
    let order = [0, FLOOR, 1, FLOOR, 2, FLOOR, 3, 4];
    let mut results: Vec<(usize, usize, Stats)> = Vec::new();
    for &clients in &client_counts {
        for &i in &order {
            let (name, url, body, expect) = &scenarios[i];
            if i != 0 && i != FLOOR && only.as_deref().is_some_and(|o| !name.contains(o)) {
                continue;
            }
            if i == FLOOR
                && results
                    .last()
                    .is_some_and(|(j, c, _)| *j == FLOOR && *c == clients)
            {
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
    let step = signing_step(secs.min(3.0));

    println!(
        "custody-signer vs transit, one OpenBao 2.7.2 (1-node Raft, TLS), {secs} s per run, 2 cores"
    );
    println!(
        "{:<38} {:>7} {:>8} {:>8} {:>7} {:>6} {:>10} {:>10} {:>10} {:>10}   CPU µs/request: server plugin load   raft writes/request",
        "scenario",
        "clients",
        "p50 ms",
        "p99 ms",
        "req/s",
        "errors",
        "p50/floor",
        "rps/floor",
        "p50/trnst",
        "rps/trnst"
    );
    let get = |i: usize, c: usize| {
        results
            .iter()
            .find(|(j, cc, _)| *j == i && *cc == c)
            .map(|r| &r.2)
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    // (p50 ms, req/s) of the floor: the runs just before and after row `k`, or every floor run
    // at that client count for the rows not bracketed.
    let floor_of = |k: usize| -> Option<(f64, f64)> {
        let (_, clients, _) = &results[k];
        let is_floor = |r: &&(usize, usize, Stats)| r.0 == FLOOR && r.1 == *clients;
        let beside: Vec<&Stats> = [k.checked_sub(1), Some(k + 1)]
            .into_iter()
            .flatten()
            .filter_map(|j| results.get(j))
            .filter(is_floor)
            .map(|r| &r.2)
            .collect();
        let runs: Vec<&Stats> = if beside.is_empty() || results[k].0 == FLOOR {
            results.iter().filter(is_floor).map(|r| &r.2).collect()
        } else {
            beside
        };
        (!runs.is_empty()).then(|| {
            let n = runs.len() as f64;
            (
                runs.iter().map(|s| ms(s.p50)).sum::<f64>() / n,
                runs.iter().map(|s| s.rps).sum::<f64>() / n,
            )
        })
    };
    for (k, (i, clients, s)) in results.iter().enumerate() {
        let us = |d: Duration| d.as_micros();
        let pair = |r: Option<(f64, f64)>| {
            r.map_or(("-".to_owned(), "-".to_owned()), |(p50, rps)| {
                (
                    format!("{:.2}x", ms(s.p50) / p50),
                    format!("{:.2}x", s.rps / rps),
                )
            })
        };
        let (floor_p50, floor_rps) = pair(floor_of(k));
        let (transit_p50, transit_rps) = pair(get(0, *clients).map(|b| (ms(b.p50), b.rps)));
        println!(
            "{:<38} {:>7} {:>8.2} {:>8.2} {:>7.0} {:>6} {:>10} {:>10} {:>10} {:>10} {:>20} {:>6} {:>4} {:>10.3}",
            scenarios[*i].0,
            clients,
            ms(s.p50),
            ms(s.p99),
            s.rps,
            s.errors,
            floor_p50,
            floor_rps,
            transit_p50,
            transit_rps,
            us(s.cpu[0]),
            us(s.cpu[1]),
            us(s.cpu[2]),
            s.raft_writes,
        );
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("the signing step on one core, in-process (same key, same hash):");
    for (what, (rate, each)) in [
        ("k256 sign_prehash_recoverable", step.k256_raw),
        ("k256 sign + verify", step.k256_checked),
        (
            "the plugin's AccountKey::sign_hash (k256)",
            step.plugin_step,
        ),
        ("libsecp256k1 sign_ecdsa_recoverable", step.secp_raw),
        ("libsecp256k1 sign + verify", step.secp_checked),
    ] {
        println!("  {what:<44} {:>7.1} µs  {rate:>7.0}/s", us(each));
    }
    println!(
        "  libsecp256k1 sign + verify is {:.2}x the time of the plugin's step",
        us(step.secp_checked.1) / us(step.plugin_step.1)
    );
    if next > 0 {
        println!("the sign-tx runs advanced the account's next_nonce from 0 to {next}.");
    }
    let against_floor = |i: usize, c: usize| {
        let k = results.iter().position(|(j, cc, _)| *j == i && *cc == c)?;
        let (p50, rps) = floor_of(k)?;
        let s = &results[k].2;
        Some((ms(s.p50) / p50, s.rps / rps))
    };
    println!("against the plugin write floor measured beside each row (the plugin path alone):");
    if let Some((p50, _)) = against_floor(1, 1) {
        println!("  sign-message p50 at 1 client:  {p50:.2}x the floor's");
    }
    if let Some((_, rps)) = against_floor(1, 16) {
        println!("  sign-message req/s at 16:      {rps:.2}x the floor's");
    }
    if let Some((_, rps)) = against_floor(2, 16) {
        println!("  sign-tx req/s at 16:           {rps:.2}x the floor's");
    }
}

/// The scenario every signing row is set against: a plugin write that does no work.
const FLOOR: usize = 5;
