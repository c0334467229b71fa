//! `custody reconcile` against the chain queries it cannot do without, on one OpenBao and one
//! anvil in one run.
//!
//!   scripts/bench                       (runs this last)
//!   cargo bench --bench reconcile -- [--count N]     (default 100000)
//!
//! N transfers are signed through the plugin (audited by the node's file device, the mount
//! tuned to log the accounting fields in clear) and mined on anvil (700 a block, under the
//! block's gas target so the base fee stays put). Then three rounds, each running a baseline and
//! custody side by side (so that both see the same load), each figure the rounds' median:
//! - the baseline: batched `eth_getTransactionReceipt` of the N hashes alone (custody's batch
//!   client: the same batch size and requests in flight), which any reconcile must ask;
//! - `custody reconcile` without a token (lines taken as written);
//! - `custody reconcile` with a token: each explaining line proven the server's own
//!   (`eth_getRawTransactionByHash` and one `sys/audit-hash` per mined signature), beside
//!   those queries alone: the proof's own floor.
//!
//! It prints each time, its ratio to the baseline (the goal: custody adds at most 25 %), the
//! log's size and the reconcile's own peak memory (max RSS, read by GNU `time`).

use custody_test_support as support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use support::Custody;
use support::plugin::{Anvil, Api, RECIPIENT, authority_cluster};

/// Transactions a block: 700 × 21000 gas stays under the 15M gas target.
const PER_BLOCK: usize = 700;
/// Signing requests in flight at once while preparing.
const CLIENTS: usize = 32;

fn count_arg() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--count")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse().expect("--count N"))
        .unwrap_or(100_000)
}

fn median(mut f: impl FnMut() -> Duration) -> Duration {
    let mut v: Vec<Duration> = (0..3).map(|_| f()).collect();
    v.sort();
    v[1]
}

/// Runs custody with `args` under GNU `time` to its end: its stdout, exit status and its own
/// peak memory (max RSS, KiB). Not `wait4` on a child of this process: a child spawned from
/// the bench starts with the bench's pages (vfork), and Linux keeps that high-water mark across
/// `exec`, so it would report the bench's own memory (hundreds of MB of hashes and answers).
fn run_measured(c: &Custody, args: &[&str], rss_file: &std::path::Path) -> (Vec<u8>, i32, i64) {
    let time = support::require_tool("time", "apt-get install time (scripts/setup installs it)");
    let custody = c.command(&[]);
    let mut cmd = std::process::Command::new(time);
    cmd.arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(rss_file)
        .arg(custody.get_program())
        .args(custody.get_args())
        .args(args)
        .current_dir(custody.get_current_dir().unwrap())
        .env_clear()
        .envs(custody.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let out = cmd.output().expect("running custody under GNU time");
    let rss = std::fs::read_to_string(rss_file)
        .unwrap()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("GNU time's %M");
    (out.stdout, out.status.code().unwrap_or(-1), rss)
}

fn main() {
    let count = count_arg();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let t_setup = Instant::now();
    let (cl, root, _keys, signer, address) = authority_cluster("reconcile-bench", dir);
    Api::new(&cl, 0, &root).ok(
        "POST",
        "sys/mounts/ethereum/tune",
        Some(json!({
            "audit_non_hmac_request_keys": ["to", "nonce", "chain_id"],
            "audit_non_hmac_response_keys": ["tx_hash", "nonce", "from", "chain_id"],
        })),
    );
    let anvil = Anvil::start(1);
    anvil.rpc(
        "anvil_setBalance",
        json!([address, "0xd3c21bcecceda1000000"]),
    );
    anvil.rpc("evm_setAutomine", json!([false]));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rpc = custody::chain::Rpc::new(&anvil.url).unwrap();
    let api = Api::new(&cl, 0, &signer);
    let body = json!({ "to": RECIPIENT, "gas": 21000, "max_fee_per_gas": "100000000000",
                       "max_priority_fee_per_gas": "1" });
    let mut hashes: Vec<[u8; 32]> = Vec::with_capacity(count);
    let mut signed_total = Duration::ZERO;
    while hashes.len() < count {
        let n = PER_BLOCK.min(count - hashes.len());
        let t = Instant::now();
        let mut answers = Vec::with_capacity(n);
        while answers.len() < n {
            let calls = (0..CLIENTS.min(n - answers.len()))
                .map(|_| {
                    (
                        "POST".to_owned(),
                        "ethereum/accounts/authority/sign-tx".to_owned(),
                        Some(body.clone()),
                    )
                })
                .collect();
            answers.extend(api.concurrent(calls));
        }
        signed_total += t.elapsed();
        let mut raws = Vec::with_capacity(n);
        for (status, v) in answers {
            assert_eq!(status, 200, "sign-tx: {v}");
            raws.push(json!([v["data"]["signed_tx"]]));
            let h = hex::decode(&v["data"]["tx_hash"].as_str().unwrap()[2..]).unwrap();
            hashes.push(h.try_into().unwrap());
        }
        let sent = rt
            .block_on(rpc.batch("eth_sendRawTransaction", raws))
            .unwrap();
        assert!(
            sent.iter().all(Result::is_ok),
            "a transaction was refused: {sent:?}"
        );
        anvil.rpc("evm_mine", json!([]));
    }
    let mined = anvil.rpc("eth_getTransactionCount", json!([address, "latest"]));
    assert_eq!(
        u64::from_str_radix(mined.as_str().unwrap().trim_start_matches("0x"), 16).unwrap(),
        count as u64,
        "every transaction mined"
    );
    let log = cl.nodes[0].audit_log();
    // The reconciles read a copy, so that every run reads the same bytes.
    let copy = dir.join("audit-copy.log");
    std::fs::copy(&log, &copy).unwrap();
    let log_mb = std::fs::metadata(&copy).unwrap().len() as f64 / 1e6;
    eprintln!(
        "prepared {count} audited signatures mined on anvil in {:.0} s (signing {:.0} s, {:.0}/s)",
        t_setup.elapsed().as_secs_f64(),
        signed_total.as_secs_f64(),
        count as f64 / signed_total.as_secs_f64()
    );

    // Where custody's time goes: the log read alone, in process.
    let read_alone = median(|| {
        let path = custody::audit::sign_path("ethereum", "authority");
        let t = Instant::now();
        let mut signed = 0usize;
        custody::audit::read_logs(std::slice::from_ref(&copy), |_, text| {
            if let Ok(text) = text
                && let custody::audit::Entry::Signed { .. } = custody::audit::entry(text, &path)
            {
                signed += 1;
            }
        })
        .unwrap();
        assert_eq!(signed, count);
        t.elapsed()
    });
    let receipts_alone = || {
        let params: Vec<Value> = hashes
            .iter()
            .map(|h| json!([format!("0x{}", hex::encode(h))]))
            .collect();
        let t = Instant::now();
        let got = rt
            .block_on(rpc.batch("eth_getTransactionReceipt", params))
            .unwrap();
        let el = t.elapsed();
        assert!(got.iter().all(|r| r.as_ref().is_ok_and(|v| !v.is_null())));
        el
    };
    // What the proof cannot do without: the raw transactions (batched), and one
    // `sys/audit-hash` per mined signature with custody's own client (the same requests in
    // flight), the server's HMAC being the proof.
    let raws_alone = || {
        let t = Instant::now();
        let got = rt.block_on(rpc.raw_transactions(&hashes)).unwrap();
        let el = t.elapsed();
        assert!(got.iter().all(Option::is_some));
        el
    };
    let raws: Vec<String> = rt
        .block_on(rpc.raw_transactions(&hashes))
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect();
    let vault = custody::vault::Vault::new(
        Some(&cl.ca_cert),
        Some(custody::secret::SecretString::new(root.clone())),
    )
    .unwrap();
    let node = cl.nodes[0].addr();
    let hashes_alone = || {
        let t = Instant::now();
        let got = rt
            .block_on(vault.audit_hashes(&node, "file", std::sync::Arc::new(raws.clone())))
            .unwrap();
        let el = t.elapsed();
        assert_eq!(got.len(), count);
        el
    };
    let witness = Custody::new(dir);
    let token_file = dir.join("reconcile-bench-root.token");
    let operator = Custody::for_cluster(dir, &cl).with_token_file(&token_file);
    let run = |c: &Custody| {
        let t = Instant::now();
        let (out, code, rss) = run_measured(
            c,
            &[
                "--format",
                "json",
                "reconcile",
                "--audit-log",
                copy.to_str().unwrap(),
                "--rpc",
                &anvil.url,
                "--account",
                "authority",
            ],
            &dir.join("reconcile-rss"),
        );
        let el = t.elapsed();
        assert_eq!(
            code,
            0,
            "custody reconcile: {}",
            String::from_utf8_lossy(&out)
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["explained"], count as u64);
        (el, rss)
    };
    // Side by side: each round runs a baseline and then custody, so that both see the same
    // load on the shared cores; the ratios are each round's, their median printed.
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let receipts = receipts_alone();
        let (unproven, rss_unproven) = run(&witness);
        let floor = receipts + raws_alone() + hashes_alone();
        let (proven, rss_proven) = run(&operator);
        rounds.push(Round {
            receipts,
            unproven,
            floor,
            proven,
            rss_unproven,
            rss_proven,
        });
    }
    drop(raws);
    let med = |f: fn(&Round) -> f64| {
        let mut v: Vec<f64> = rounds.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let receipts = med(|r| r.receipts.as_secs_f64());
    println!(
        "custody reconcile vs the batched receipt queries alone: {count} signatures mined on anvil, \
         audit log {log_mb:.0} MB, one OpenBao 2.7.2 (1-node Raft, TLS), median of {ROUNDS} \
         rounds (baseline and custody side by side in each), 2 shared cores"
    );
    println!("{:<48} {:>10} {:>8}", "", "seconds", "ratio");
    println!(
        "{:<48} {:>10.2} {:>8}",
        "eth_getTransactionReceipt × N (batched): baseline", receipts, "1.00"
    );
    println!(
        "{:<48} {:>10.2} {:>8.2}",
        "part: the log read and parsed, in process",
        read_alone.as_secs_f64(),
        read_alone.as_secs_f64() / receipts
    );
    println!(
        "{:<48} {:>10.2} {:>8.2}",
        "custody reconcile, no token (unproven)",
        med(|r| r.unproven.as_secs_f64()),
        med(|r| r.unproven.as_secs_f64() / r.receipts.as_secs_f64())
    );
    println!(
        "{:<48} {:>10.2} {:>8.2}",
        "receipts + raw txs + sys/audit-hash × N alone",
        med(|r| r.floor.as_secs_f64()),
        med(|r| r.floor.as_secs_f64() / r.receipts.as_secs_f64())
    );
    println!(
        "{:<48} {:>10.2} {:>8.2}",
        "custody reconcile, token (audit-hash proof)",
        med(|r| r.proven.as_secs_f64()),
        med(|r| r.proven.as_secs_f64() / r.receipts.as_secs_f64())
    );
    println!(
        "the proven reconcile against its own queries alone (receipts, raw transactions, \
         sys/audit-hash with {} in flight): {:.2}×",
        custody::vault::audit::AUDIT_HASH_LANES,
        med(|r| r.proven.as_secs_f64() / r.floor.as_secs_f64())
    );
    println!(
        "peak memory (max RSS) of custody reconcile itself: {:.0} MB without proof, {:.0} MB \
         with it, for a {log_mb:.0} MB log",
        rounds.iter().map(|r| r.rss_unproven).max().unwrap_or(0) as f64 / 1024.0,
        rounds.iter().map(|r| r.rss_proven).max().unwrap_or(0) as f64 / 1024.0
    );
}

const ROUNDS: usize = 3;

/// One round's times, side by side, and the reconciles' peak memory (KiB).
struct Round {
    receipts: Duration,
    unproven: Duration,
    floor: Duration,
    proven: Duration,
    rss_unproven: i64,
    rss_proven: i64,
}
