//! A cutover under sustained load through HAProxy: failed requests, p99 latency before, during
//! and after, the signing pause (freeze → switch) and the time blue took to drain.
//!
//!   cargo bench --bench cutover [-- --rate 250]      (scripts/bench runs it)
//!
//! One blue and one green OpenBao (1-node Raft, TLS, the release plugin), green restored from
//! blue, Debian's HAProxy in front. The load is open-loop at a fixed rate: a third signatures
//! (`sign-tx` with the signer token), two thirds reads (`sys/health`, the account).

use custody_test_support as support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use support::plugin::{BlueGreen, blue_green_behind_haproxy, transfer_tx};

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Before,
    During,
    After,
}

struct Sample {
    phase: Phase,
    latency: Duration,
    ok: bool,
    frozen: bool,
}

fn main() {
    let mut rate = 250u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--rate" {
            rate = args.next().and_then(|s| s.parse().ok()).expect("--rate N");
        }
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let bg = blue_green_behind_haproxy(dir);
    let BlueGreen {
        green,
        lb,
        root,
        signer,
        ..
    } = &bg;
    let phase = Arc::new(Mutex::new(Phase::Before));
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loader = {
        let (phase, samples, stop, url) = (phase.clone(), samples.clone(), stop.clone(), lb.url());
        let (root, signer) = (root.clone(), signer.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let http = reqwest::Client::new();
                let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
                let mut i = 0u64;
                let mut tasks = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    tick.tick().await;
                    i += 1;
                    let (http, url, root, signer, phase, samples) = (
                        http.clone(),
                        url.clone(),
                        root.clone(),
                        signer.clone(),
                        phase.clone(),
                        samples.clone(),
                    );
                    tasks.push(tokio::spawn(async move {
                        let p = *phase.lock().unwrap();
                        let t0 = Instant::now();
                        let req = match i % 3 {
                            0 => http
                                .post(format!("{url}/v1/ethereum/accounts/authority/sign-tx"))
                                .header("X-Vault-Token", &signer)
                                .json(&transfer_tx()),
                            1 => http.get(format!("{url}/v1/sys/health")),
                            _ => http
                                .get(format!("{url}/v1/ethereum/accounts/authority"))
                                .header("X-Vault-Token", &root),
                        };
                        let (ok, frozen) = match req.send().await {
                            Ok(r) => {
                                let s = r.status().as_u16();
                                let body: Value = r.json().await.unwrap_or(Value::Null);
                                (s == 200, s == 503 && body.to_string().contains("frozen"))
                            }
                            Err(_) => (false, false),
                        };
                        samples.lock().unwrap().push(Sample {
                            phase: p,
                            latency: t0.elapsed(),
                            ok,
                            frozen,
                        });
                    }));
                }
                for t in tasks {
                    let _ = t.await;
                }
            });
        })
    };
    std::thread::sleep(Duration::from_secs(4));
    *phase.lock().unwrap() = Phase::During;
    let op = bg.operator(dir);
    let mut args: Vec<String> = vec!["--format".into(), "json".into()];
    args.extend(bg.cutover_args(&green.nodes[0].addr().to_string(), &bg.lb_spec(), "green1"));
    let t0 = Instant::now();
    let r = op.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let cut_secs = t0.elapsed().as_secs_f64();
    *phase.lock().unwrap() = Phase::After;
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    loader.join().unwrap();
    r.expect(0);
    let facts = r.json()["cutover"].clone();

    let samples = samples.lock().unwrap();
    println!(
        "cutover under load through HAProxy 2.6: blue → green (1-node Raft each, TLS), target {rate} req/s"
    );
    println!(
        "{:<8} {:>9} {:>8} {:>8} {:>9} {:>9}",
        "phase", "requests", "req/s", "failed", "frozen", "p99 ms"
    );
    for (name, p, secs) in [
        ("before", Phase::Before, 4.0),
        ("during", Phase::During, cut_secs),
        ("after", Phase::After, 4.0),
    ] {
        let mut lat: Vec<Duration> = samples
            .iter()
            .filter(|s| s.phase == p)
            .map(|s| s.latency)
            .collect();
        lat.sort();
        let failed = samples
            .iter()
            .filter(|s| s.phase == p && !s.ok && !s.frozen)
            .count();
        let frozen = samples.iter().filter(|s| s.phase == p && s.frozen).count();
        let p99 = lat
            .get((lat.len() as f64 * 0.99) as usize)
            .or(lat.last())
            .copied()
            .unwrap_or_default();
        println!(
            "{:<8} {:>9} {:>8.0} {:>8} {:>9} {:>9.2}",
            name,
            lat.len(),
            lat.len() as f64 / secs,
            failed,
            frozen,
            p99.as_secs_f64() * 1000.0
        );
    }
    println!(
        "signing pause (freeze → switch): {:.0} ms; blue drained in {:.2} s; the whole cutover took {:.2} s",
        facts["signing_pause_ms"].as_f64().unwrap_or(0.0),
        facts["drain_seconds"].as_f64().unwrap_or(0.0),
        cut_secs
    );
    let failed = samples.iter().filter(|s| !s.ok && !s.frozen).count();
    println!("failed requests over the whole run: {failed} (must be 0)");
}
