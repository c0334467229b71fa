//! Pulling the plug on a cutover under load: the balancer's runtime API vanishes right after
//! blue is frozen, and green is sealed right after the switch. Whatever the moment, the end is
//! "blue serves, green frozen" or "blue frozen, refused with instructions" — never two unfrozen
//! clusters — and no nonce is handed out twice among every signature the load got.

use custody_test_support as support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use support::plugin::{
    Anvil, Api, BlueGreen, blue_green_behind_haproxy, lb_states, transfer_tx, unseal_plain,
};
use support::*;

/// Signatures asked for through the balancer until stopped: every (status, body).
struct Load {
    stop: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<(u16, Value)>>>,
    worker: std::thread::JoinHandle<()>,
}

impl Load {
    fn start(lb_url: String, signer: String) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (s, g) = (stop.clone(), got.clone());
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let http = reqwest::Client::new();
            rt.block_on(async move {
                while !s.load(Ordering::SeqCst) {
                    let r = http
                        .post(format!("{lb_url}/v1/ethereum/accounts/authority/sign-tx"))
                        .header("X-Vault-Token", &signer)
                        .json(&transfer_tx())
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    let entry = match r {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            (status, r.json().await.unwrap_or(Value::Null))
                        }
                        Err(e) => (0, json!({ "error": e.to_string() })),
                    };
                    g.lock().unwrap().push(entry);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
        });
        Load { stop, got, worker }
    }

    /// Stops the load: the nonce of every signature it got.
    fn stop(self) -> Vec<u64> {
        self.stop.store(true, Ordering::SeqCst);
        self.worker.join().unwrap();
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| *s == 200)
            .map(|(_, v)| v["data"]["nonce"].as_u64().unwrap())
            .collect()
    }
}

#[test]
fn a_cutover_that_loses_its_balancer_or_green_never_signs_a_nonce_twice() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let bg = blue_green_behind_haproxy(dir);
    let mut nonces = Vec::new();
    nonces.extend(step_balancer_gone_after_the_freeze(&bg, dir));
    nonces.extend(step_green_sealed_after_the_switch(&bg, dir, &nonces));
    let distinct: BTreeSet<u64> = nonces.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        nonces.len(),
        "a nonce was signed twice: {nonces:?}"
    );
}

fn frozen(bg: &BlueGreen, green: bool) -> bool {
    let cluster = if green { &bg.green } else { &bg.blue };
    Api::new(cluster, 0, &bg.root).ok("GET", "ethereum/config", None)["frozen"] == true
}

/// custody's cutover (`rollback` first when given), spawned.
fn spawn_cutover(bg: &BlueGreen, dir: &Path, extra: &[&str]) -> std::process::Child {
    let mut args = bg.cutover_args(
        &bg.green.nodes[0].addr().to_string(),
        &bg.lb_spec(),
        "green1",
    );
    args.extend(extra.iter().map(|s| s.to_string()));
    bg.operator(dir)
        .command(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn rollback(bg: &BlueGreen, dir: &Path, extra: &[&str]) -> Run {
    let mut args = bg.cutover_args(
        &bg.green.nodes[0].addr().to_string(),
        &bg.lb_spec(),
        "green1",
    );
    args.insert(1, "rollback".into());
    args.extend(extra.iter().map(|s| s.to_string()));
    bg.operator(dir)
        .run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Never two unfrozen clusters.
#[track_caller]
fn at_most_one_signs(bg: &BlueGreen, when: &str) {
    assert!(
        frozen(bg, false) || frozen(bg, true),
        "{when}: blue and green are both unfrozen"
    );
}

/// The runtime API's socket renamed away the moment blue is frozen (HAProxy goes on balancing,
/// custody can no longer drive it), then put back. Wherever the fault lands, at most one cluster
/// signs; a rollback then puts blue back.
fn step_balancer_gone_after_the_freeze(bg: &BlueGreen, dir: &Path) -> Vec<u64> {
    let load = Load::start(bg.lb.url(), bg.signer.clone());
    std::thread::sleep(Duration::from_millis(500));
    let child = spawn_cutover(bg, dir, &[]);
    let away = bg.lb.socket.with_extension("away");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !frozen(bg, false) {
        assert!(Instant::now() < deadline, "blue was never frozen");
    }
    std::fs::rename(&bg.lb.socket, &away).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    at_most_one_signs(bg, "balancer gone");
    eprintln!(
        "balancer gone after the freeze: cutover exit {:?}",
        out.status.code()
    );
    if !out.status.success() {
        // The fault landed: the automatic rollback could not drive the balancer either, so
        // blue stays frozen and custody says what to do.
        assert!(frozen(bg, false), "{stderr}");
        assert!(stderr.contains("runtime API"), "{stderr}");
        assert!(stderr.contains("rollback failed too"), "{stderr}");
    }
    std::fs::rename(&away, &bg.lb.socket).unwrap();
    rollback(bg, dir, &[]).expect(0);
    assert!(!frozen(bg, false) && frozen(bg, true));
    std::thread::sleep(Duration::from_millis(1000));
    let nonces = load.stop();
    assert!(!nonces.is_empty());
    nonces
}

/// Green sealed the moment HAProxy puts it in service: the cutover fails its check through the
/// balancer, and the automatic rollback cannot read green's counters, so it refuses and blue
/// stays frozen (or, if the seal came after the end, the cutover finished with blue frozen).
/// The chain then gives the floor: blue goes on after every nonce the load got.
fn step_green_sealed_after_the_switch(bg: &BlueGreen, dir: &Path, earlier: &[u64]) -> Vec<u64> {
    // The previous rollback froze green; the operator unfreezes it for the next cutover.
    Api::new(&bg.green, 0, &bg.root).ok(
        "POST",
        "ethereum/config",
        Some(json!({ "frozen": false })),
    );
    let load = Load::start(bg.lb.url(), bg.signer.clone());
    std::thread::sleep(Duration::from_millis(500));
    let child = spawn_cutover(bg, dir, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lb_states(&bg.lb)["green1"].starts_with("UP") {
        assert!(Instant::now() < deadline, "green1 never came UP");
    }
    Api::new(&bg.green, 0, &bg.root).ok("POST", "sys/seal", None);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    at_most_one_signs(bg, "green sealed");
    eprintln!(
        "green sealed after the switch: cutover exit {:?}",
        out.status.code()
    );
    assert!(
        frozen(bg, false),
        "blue signs while green may have: {stderr}"
    );
    if !out.status.success() {
        assert!(stderr.contains("cannot be read"), "{stderr}");
        assert!(stderr.contains("--nonce-floor-from-rpc"), "{stderr}");
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut nonces = load.stop();

    // Every signature the load got reached the chain: its pending nonce is past them all.
    let next = earlier.iter().chain(&nonces).max().unwrap() + 1;
    let chain = Anvil::start(1);
    chain.rpc("anvil_setNonce", json!([bg.address, format!("{next:#x}")]));
    rollback(bg, dir, &["--nonce-floor-from-rpc", &chain.url]).expect(0);
    assert!(!frozen(bg, false));
    let deadline = Instant::now() + Duration::from_secs(20);
    while lb_states(&bg.lb)["blue1"] != "UP" {
        assert!(Instant::now() < deadline, "blue1 never came back UP");
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = Load::start(bg.lb.url(), bg.signer.clone());
    std::thread::sleep(Duration::from_millis(300));
    let resumed = after.stop();
    assert_eq!(resumed.first().copied(), Some(next), "{resumed:?}");
    nonces.extend(resumed);
    unseal_plain(&bg.green, &bg.keys[..3]);
    nonces
}
