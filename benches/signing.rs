//! The signer's speed against OpenBao's own transit engine, on one real server in one run.
//!
//!   scripts/bench [--seconds N]
//!
//! One single-node Raft OpenBao (TLS, durable storage) holds both engines. Each scenario runs
//! for N seconds (after a one-second warm-up) at 1 and at 16 concurrent clients, and the table
//! gives p50/p99 latency, requests per second, and the plugin's ratio to transit's
//! `ecdsa-p256` sign. The raw k256 signing floor is measured in-process.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use support::plugin::{Api, init_plain, sha256_file};
use support::{ClusterSpec, bao_bin, cluster_with, root};

struct Stats {
    p50: Duration,
    p99: Duration,
    rps: f64,
    errors: usize,
}

async fn load(
    http: reqwest::Client,
    url: String,
    token: String,
    body: Value,
    clients: usize,
    secs: f64,
) -> Stats {
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
                            Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
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
    run(Duration::from_secs(1)).await;
    let dur = Duration::from_secs_f64(secs);
    let (mut lat, errors) = run(dur).await;
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

fn main() {
    let mut secs = 5.0f64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--seconds" {
            secs = args
                .next()
                .and_then(|s| s.parse().ok())
                .expect("--seconds N");
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
    api.ok("POST", "ethereum/accounts/bench", Some(json!({})));

    let pem = std::fs::read(&cluster.ca_cert).unwrap();
    let http = reqwest::Client::builder()
        .tls_backend_rustls()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let base = api.base.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let transit_body =
        json!({ "input": base64::engine::general_purpose::STANDARD.encode([7u8; 32]) });
    let message_body = json!({ "message": "custody bench" });
    let tx_body = json!({ "to": "0x2222222222222222222222222222222222222222", "value": "1", "gas": 21000, "max_fee_per_gas": "2000000000", "max_priority_fee_per_gas": "1000000000" });
    let scenarios: Vec<(&str, String, Value)> = vec![
        (
            "transit ecdsa-p256 sign (baseline)",
            format!("{base}/v1/transit/sign/bench"),
            transit_body,
        ),
        (
            "plugin sign-message (a)",
            format!("{base}/v1/ethereum/accounts/bench/sign-message"),
            message_body,
        ),
        (
            "plugin sign-tx, nonce stored (b)",
            format!("{base}/v1/ethereum/accounts/bench/sign-tx"),
            tx_body,
        ),
        (
            "plugin read config (no signature)",
            format!("{base}/v1/ethereum/config"),
            Value::Null,
        ),
        (
            "transit read key (no signature)",
            format!("{base}/v1/transit/keys/bench"),
            Value::Null,
        ),
    ];
    let mut results: Vec<(usize, usize, Stats)> = Vec::new();
    for clients in [1usize, 16] {
        for (i, (_, url, body)) in scenarios.iter().enumerate() {
            let s = rt.block_on(load(
                http.clone(),
                url.clone(),
                token.clone(),
                body.clone(),
                clients,
                secs,
            ));
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
        "{:<38} {:>7} {:>9} {:>9} {:>9} {:>6} {:>12} {:>12}",
        "scenario", "clients", "p50 ms", "p99 ms", "req/s", "errors", "p50 ratio", "req/s ratio"
    );
    for (i, clients, s) in &results {
        let base = &results
            .iter()
            .find(|(j, c, _)| *j == 0 && c == clients)
            .unwrap()
            .2;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:<38} {:>7} {:>9.2} {:>9.2} {:>9.0} {:>6} {:>11.2}x {:>11.2}x",
            scenarios[*i].0,
            clients,
            ms(s.p50),
            ms(s.p99),
            s.rps,
            s.errors,
            ms(s.p50) / ms(base.p50),
            s.rps / base.rps
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
    println!("sign-tx runs handed out {next} distinct nonces on one account.");
    let get = |i: usize, c: usize| {
        &results
            .iter()
            .find(|(j, cc, _)| *j == i && *cc == c)
            .unwrap()
            .2
    };
    let a1 = get(1, 1).p50.as_secs_f64() / get(0, 1).p50.as_secs_f64();
    let a16 = get(1, 16).rps / get(0, 16).rps;
    let b16 = get(2, 16).rps / get(0, 16).rps;
    println!(
        "targets: (a) p50 at 1 client ≤ 1.5x transit: {a1:.2}x {}",
        if a1 <= 1.5 { "met" } else { "NOT met" }
    );
    println!(
        "         (a) req/s at 16 clients ≥ 0.7x transit: {a16:.2}x {}",
        if a16 >= 0.7 { "met" } else { "NOT met" }
    );
    println!(
        "         (b) req/s at 16 clients ≥ 0.5x transit: {b16:.2}x {}",
        if b16 >= 0.5 { "met" } else { "NOT met" }
    );
}
