//! Blue-green phase 2 with a real HAProxy (Debian's) in front of two real clusters: the
//! pre-flight refusals leave the balancer untouched; the cutover under continuous load loses no
//! read and signs no nonce twice, with no gap; a rollback puts blue back.

use custody_test_support as support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use support::plugin::{
    Anvil, Api, BlueGreen, authority_cluster, blue_green_behind_haproxy, lb_states as states,
    transfer_tx, unseal_plain,
};
use support::*;

#[test]
fn cutover_under_load_refusals_and_rollback() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let bg = blue_green_behind_haproxy(dir);
    let chain = Anvil::start(1);
    step_preflight_refusals_leave_the_balancer_untouched(&bg, dir, &chain);
    let n = step_cutover_under_load_loses_no_read_and_no_nonce(&bg, dir, &chain);
    step_rollback(&bg, dir, n);
}

/// custody with `args`, as the operator runs it.
fn run_args(op: &Custody, args: Vec<String>) -> Run {
    op.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Pre-flight refusals: the balancer untouched each time.
fn step_preflight_refusals_leave_the_balancer_untouched(bg: &BlueGreen, dir: &Path, chain: &Anvil) {
    let BlueGreen {
        blue,
        green,
        lb,
        root,
        keys,
        address,
        both_ca,
        root_file,
        ..
    } = bg;
    let op = bg.operator(dir);
    let sock = bg.lb_spec();
    let cut =
        |to: &str, lb_spec: &str, green_server: &str| bg.cutover_args(to, lb_spec, green_server);
    let green_addr = green.nodes[0].addr().to_string();
    let untouched = |what: &str| {
        let s = states(lb);
        assert_eq!(
            (s["blue1"].as_str(), s["green1"].as_str()),
            ("UP", "MAINT"),
            "{what}: the balancer changed"
        );
        let frozen = Api::new(blue, 0, root).ok("GET", "ethereum/config", None)["frozen"].clone();
        assert_eq!(frozen, false, "{what}: blue was frozen");
    };
    let run = |args: Vec<String>| run_args(&op, args);
    run(cut(
        &green_addr,
        "haproxy:/nonexistent/haproxy.sock",
        "green1",
    ))
    .expect(4)
    .stderr_has("runtime API");
    untouched("socket missing");
    run(cut(&green_addr, &sock, "green9"))
        .expect(4)
        .stderr_has("no server green9");
    untouched("unknown server");
    // --rpc: the chain has seen more of the Authority than blue and green signed: refused.
    chain.rpc("anvil_setNonce", json!([address, "0x3e8"]));
    let mut ahead_chain = cut(&green_addr, &sock, "green1");
    ahead_chain.extend(["--rpc".into(), chain.url.clone()]);
    run(ahead_chain)
        .expect(4)
        .stderr_has("behind the chain's pending nonce 1000");
    untouched("a chain ahead of both");
    chain.rpc("anvil_setNonce", json!([address, "0x0"]));
    // RPC URLs: plain http:// to another host, another scheme: refused before anything is read.
    for (flag, url) in [
        ("--rpc", "http://10.0.0.1:8545"),
        ("--nonce-floor-from-rpc", "wss://rpc.example.org/v3/KEY"),
    ] {
        let mut args = cut(&green_addr, &sock, "green1");
        args.extend([flag.into(), url.into()]);
        run(args).expect(2).stderr_has(flag);
        untouched(url);
    }
    // Two RPCs of chain 1 that disagree on what the Authority had mined by the same block.
    let other = Anvil::start(1);
    other.rpc("anvil_setNonce", json!([address, "0x5"]));
    let mut two = cut(&green_addr, &sock, "green1");
    two.extend([
        "--rpc".into(),
        chain.url.clone(),
        "--rpc".into(),
        other.url.clone(),
    ]);
    run(two)
        .expect(3)
        .stderr_has("the RPCs disagree")
        .stderr_has(&format!("RPC 1 ({}) says 0", chain.url))
        .stderr_has(&format!("RPC 2 ({}) says 5", other.url));
    untouched("two RPCs that disagree");
    drop(other);
    Api::new(green, 0, root).ok("POST", "sys/seal", None);
    run(cut(&green_addr, &sock, "green1"))
        .expect(4)
        .stderr_has("not unsealed");
    untouched("sealed green");
    unseal_plain(green, &keys[..3]);
    let (red, _red_root, _, _, red_address) = authority_cluster("red", dir);
    assert_ne!(&red_address, address);
    let red_ca = ca_bundle(&dir.join("three-ca.pem"), &[both_ca, &red.ca_cert]);
    let op_red = Custody::with_ca_and_token(dir, &red_ca, root_file);
    // red's own root token is not valid on blue: use a token valid on both sides of the check.
    let red_args = cut(&red.nodes[0].addr().to_string(), &sock, "green1");
    let r = op_red.run(&red_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        r.code() == 3 || r.code() == 4,
        "another Authority must be refused: {}",
        r.stderr()
    );
    untouched("another snapshot");
    // unseal sends no share to nodes of two clusters (red is another cluster, blue is unsealed
    // and shows its id): refused before any share is read.
    let blue_addr = blue.nodes[0].addr().to_string();
    let red_addr = red.nodes[0].addr().to_string();
    op_red
        .run_stdin(
            &[
                "--addr",
                &blue_addr,
                "--addr",
                &red_addr,
                "unseal",
                "--share-stdin",
            ],
            Some(b"not a share\n"),
        )
        .expect(4)
        .stderr_has("not one cluster");
    drop(red);

    // A green on an older OpenBao (2.6.2) than blue (2.7.2): a downgrade, refused before any
    // account or token is read.
    let old_bao = support::root().join("tools/openbao-2.6.2/bao");
    assert!(
        old_bao.is_file(),
        "the test needs OpenBao 2.6.2 at {}: run scripts/setup",
        old_bao.display()
    );
    let old = cluster_with(ClusterSpec::raft("old-green", 1, old_bao));
    support::plugin::init_plain_n(&old, 1, 1);
    let old_ca = ca_bundle(&dir.join("old-ca.pem"), &[both_ca, &old.ca_cert]);
    Custody::with_ca_and_token(dir, &old_ca, root_file)
        .run(
            &cut(&old.nodes[0].addr().to_string(), &sock, "green1")
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
        .expect(4)
        .stderr_has("older than blue's 2.7.2");
    untouched("an older green");
    drop(old);
}

/// The cutover under continuous load through HAProxy: no read fails, every signature's nonce
/// is 0..n exactly once, green's counter goes on from n, blue is frozen; n.
fn step_cutover_under_load_loses_no_read_and_no_nonce(
    bg: &BlueGreen,
    dir: &Path,
    chain: &Anvil,
) -> u64 {
    let BlueGreen {
        blue,
        green,
        lb,
        root,
        signer,
        ..
    } = bg;
    // The chain's RPCs from CUSTODY_RPC_URL: anvil, and anvil again through a provider's
    // gateway whose URL holds a key (user info, path, query) that only the gateway may see.
    let gateway = support::gateway::KeyGateway::start(&chain.url);
    let mut op = bg.operator(dir);
    op.env.push((
        "CUSTODY_RPC_URL".into(),
        format!(
            "{}\nhttp://aliceuser:hunter2pw@127.0.0.1:{}/v3/0123abcdKEY?apikey=QSECRETQ",
            chain.url, gateway.port
        ),
    ));
    let sock = bg.lb_spec();
    let green_addr = green.nodes[0].addr().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let reads_failed = Arc::new(Mutex::new(Vec::<String>::new()));
    let signs = Arc::new(Mutex::new(Vec::<(u16, Value)>::new()));
    let lb_url = lb.url();
    let mut workers = Vec::new();
    for kind in 0..3 {
        let (stop, reads_failed, signs, lb_url, root, signer) = (
            stop.clone(),
            reads_failed.clone(),
            signs.clone(),
            lb_url.clone(),
            root.clone(),
            signer.clone(),
        );
        workers.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let http = reqwest::Client::new();
            rt.block_on(async move {
                while !stop.load(Ordering::SeqCst) {
                    match kind {
                        0 | 1 => {
                            let (path, token) = if kind == 0 {
                                ("sys/health", "")
                            } else {
                                ("ethereum/accounts/authority", root.as_str())
                            };
                            let r = http
                                .get(format!("{lb_url}/v1/{path}"))
                                .header("X-Vault-Token", token)
                                .send()
                                .await;
                            match r {
                                Ok(r) if r.status().as_u16() == 200 => {}
                                Ok(r) => reads_failed
                                    .lock()
                                    .unwrap()
                                    .push(format!("{path}: HTTP {}", r.status())),
                                Err(e) => reads_failed.lock().unwrap().push(format!("{path}: {e}")),
                            }
                        }
                        _ => {
                            let r = http
                                .post(format!("{lb_url}/v1/ethereum/accounts/authority/sign-tx"))
                                .header("X-Vault-Token", &signer)
                                .json(&transfer_tx())
                                .send()
                                .await;
                            match r {
                                Ok(r) => {
                                    let s = r.status().as_u16();
                                    let v: Value = r.json().await.unwrap_or(Value::Null);
                                    signs.lock().unwrap().push((s, v));
                                }
                                Err(e) => signs
                                    .lock()
                                    .unwrap()
                                    .push((0, json!({ "error": e.to_string() }))),
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
        }));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let r = run_args(&op, bg.cutover_args(&green_addr, &sock, "green1"));
    r.expect(0);
    let transcript = std::fs::read_to_string(dir.join("custody-transcript.jsonl")).unwrap();
    let recorded = format!(
        "\"rpc\":\"{}, http://…@127.0.0.1:{}/…?…\"",
        chain.url, gateway.port
    );
    assert!(transcript.contains(&recorded), "{transcript}");
    for secret in ["aliceuser", "hunter2pw", "0123abcdKEY", "QSECRETQ"] {
        for (what, text) in [
            ("stdout", r.stdout()),
            ("stderr", r.stderr()),
            ("transcript", transcript.clone()),
        ] {
            assert!(
                !text.contains(secret),
                "the cutover's {what} shows {secret}: {text}"
            );
        }
    }
    assert!(
        gateway
            .seen()
            .iter()
            .any(|s| s.starts_with("/v3/0123abcdKEY?apikey=QSECRETQ ")),
        "the watch never asked the keyed RPC: {:?}",
        gateway.seen()
    );
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    let s = states(lb);
    assert_eq!(
        (s["blue1"].as_str(), s["green1"].as_str()),
        ("MAINT", "UP"),
        "{s:?}"
    );
    assert!(
        reads_failed.lock().unwrap().is_empty(),
        "failed reads: {:?}",
        reads_failed.lock().unwrap()
    );
    let signs = signs.lock().unwrap();
    let mut nonces = Vec::new();
    for (status, v) in signs.iter() {
        match status {
            200 => nonces.push(v["data"]["nonce"].as_u64().unwrap()),
            503 => assert!(
                v.to_string().contains("frozen"),
                "a 503 that is not the frozen error: {v}"
            ),
            _ => panic!("a sign request failed: {status} {v}"),
        }
    }
    let n = nonces.len() as u64;
    nonces.sort_unstable();
    assert!(n > 20, "too few signatures under load: {n}");
    assert_eq!(
        nonces,
        (0..n).collect::<Vec<_>>(),
        "nonces are not 0..{n} exactly once"
    );
    let green_nonce = Api::new(green, 0, root).ok("GET", "ethereum/accounts/authority/nonce", None)
        ["next_nonce"]
        .as_u64()
        .unwrap();
    assert_eq!(green_nonce, n);
    assert_eq!(
        Api::new(blue, 0, root).ok("GET", "ethereum/config", None)["frozen"],
        true
    );
    n
}

/// Rollback: refused while green's counters cannot be read (blue stays frozen, the balancer
/// untouched) and with an RPC of another chain; on demand once green answers (blue goes on from
/// green's counter `n`); and, with green sealed again, from the chain's pending nonce
/// (--nonce-floor-from-rpc), recorded as such.
fn step_rollback(bg: &BlueGreen, dir: &Path, n: u64) {
    let BlueGreen {
        blue,
        green,
        lb,
        root,
        keys,
        signer,
        address,
        ..
    } = bg;
    let op = bg.operator(dir);
    let green_addr = green.nodes[0].addr().to_string();
    let rollback = |rpc: Option<&str>| {
        let mut args = vec!["--format".to_owned(), "json".to_owned()];
        args.extend(bg.cutover_args(&green_addr, &bg.lb_spec(), "green1"));
        args.insert(3, "rollback".into());
        if let Some(url) = rpc {
            args.extend(["--nonce-floor-from-rpc".into(), url.to_owned()]);
        }
        run_args(&op, args)
    };
    let blue_frozen =
        || Api::new(blue, 0, root).ok("GET", "ethereum/config", None)["frozen"].clone();
    let blue_next = || {
        Api::new(blue, 0, root).ok("GET", "ethereum/accounts/authority/nonce", None)["next_nonce"]
            .as_u64()
            .unwrap()
    };

    // Green sealed: its counters cannot be read, and nothing tells blue which nonces green used.
    Api::new(green, 0, root).ok("POST", "sys/seal", None);
    rollback(None)
        .expect(4)
        .stderr_has("cannot be read")
        .stderr_has("--nonce-floor-from-rpc");
    assert_eq!(blue_frozen(), true, "a refused rollback unfroze blue");
    assert_eq!(
        states(lb)["blue1"],
        "MAINT",
        "a refused rollback moved the balancer"
    );
    let other_chain = Anvil::start(5);
    rollback(Some(&other_chain.url))
        .expect(3)
        .stderr_has("serves chain 5");
    assert_eq!(blue_frozen(), true);
    assert_eq!(states(lb)["blue1"], "MAINT");
    drop(other_chain);

    // Green back: its counters are carried to blue.
    unseal_plain(green, &keys[..3]);
    rollback(None).expect(0);
    wait_up(lb, "blue1");
    assert_eq!(states(lb)["green1"], "MAINT");
    assert_eq!(
        Api::new(green, 0, root).ok("GET", "ethereum/config", None)["frozen"],
        true
    );
    let (status, v) = reqwest::blocking_free_sign(&lb.url(), signer);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["nonce"], n);

    // A second cutover, to a green whose counter was above blue's (it signed before the
    // cutover): the carry records 50 more than blue had. Green sealed, and the chain has seen
    // fewer (green's signatures were not broadcast): the floor is the carry, from the
    // transcript.
    let carried = n + 50;
    Api::new(green, 0, root).ok("POST", "ethereum/config", Some(json!({ "frozen": false })));
    Api::new(green, 0, root).ok(
        "POST",
        "ethereum/accounts/authority/nonce",
        Some(json!({ "next_nonce": carried })),
    );
    run_args(&op, bg.cutover_args(&green_addr, &bg.lb_spec(), "green1")).expect(0);
    Api::new(green, 0, root).ok("POST", "sys/seal", None);
    let chain = Anvil::start(1);
    chain.rpc("anvil_setNonce", json!([address, format!("{:#x}", n + 3)]));
    let r = rollback(Some(&chain.url));
    r.expect(0);
    let facts = &r.json()["rollback"];
    assert_eq!(
        facts["counters_from"],
        json!(["transcript", "chain"]),
        "{facts}"
    );
    let back = &facts["nonces_back"]["authority"];
    assert_eq!(back["carried"], carried, "{facts}");
    assert_eq!(back["chain"], n + 3, "{facts}");
    assert_eq!(back["floor_from"], json!(["transcript"]), "{facts}");
    assert!(facts["green_error"].is_string(), "{facts}");
    assert_eq!(
        blue_next(),
        carried,
        "the floor fell below the carry recorded"
    );
    assert_eq!(blue_frozen(), false);

    // An RPC lying high: a floor 5000 above blue's counter is refused (nothing changes) unless
    // confirmed with --yes.
    let lie = carried + 5000;
    chain.rpc("anvil_setNonce", json!([address, format!("{lie:#x}")]));
    wait_up(lb, "blue1");
    let balancer = states(lb);
    rollback(Some(&chain.url))
        .expect(4)
        .stderr_has("--max-nonce-jump 1000")
        .stderr_has("--yes");
    assert_eq!(blue_next(), carried, "a refused floor raised blue");
    assert_eq!(blue_frozen(), false, "a refused rollback froze blue");
    assert_eq!(
        states(lb),
        balancer,
        "a refused rollback moved the balancer"
    );
    let mut args = vec!["--yes".to_owned(), "--format".to_owned(), "json".to_owned()];
    args.extend(bg.cutover_args(&green_addr, &bg.lb_spec(), "green1"));
    args.insert(4, "rollback".into());
    args.extend(["--nonce-floor-from-rpc".into(), chain.url.clone()]);
    let r = run_args(&op, args);
    r.expect(0);
    assert_eq!(r.json()["rollback"]["jump_confirmed"], true);
    assert_eq!(blue_next(), lie);
    let (status, v) = reqwest::blocking_free_sign(&lb.url(), signer);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["nonce"], lie);
}

/// Waits (up to 20 s) until HAProxy counts `server` UP.
fn wait_up(lb: &custody::localcluster::haproxy::LocalHaproxy, server: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while states(lb)[server] != "UP" {
        assert!(
            std::time::Instant::now() < deadline,
            "{server} never came back UP: {:?}",
            states(lb)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

mod reqwest {
    pub use ::reqwest::*;
    /// One sign-tx through the balancer (a blocking helper for the end of the test).
    pub fn blocking_free_sign(lb: &str, token: &str) -> (u16, serde_json::Value) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let r = ::reqwest::Client::new()
                .post(format!("{lb}/v1/ethereum/accounts/authority/sign-tx"))
                .header("X-Vault-Token", token)
                .json(&super::transfer_tx())
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, r.json().await.unwrap_or_default())
        })
    }
}
