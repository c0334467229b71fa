//! The plugin on a real (non-dev) OpenBao Raft server: registered in the catalog by sha256 from
//! its `plugin_directory`, mounted, intact across a seal and unseal, and never handing out a
//! nonce twice when it is killed in the middle of concurrent signatures, nor leaving a gap when
//! its storage goes away under load (a step-down, a seal).

use custody_test_support as support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use support::plugin::{
    Api, eth_check, init_plain_cluster, kill_plugins, plugin_bin, plugin_pids, sha256_file,
    unseal_plain,
};
use support::*;

#[test]
fn plugin_registered_by_sha256_signs_and_survives_seal_and_unseal() {
    let (c, _root, keys, api) = init_plain_cluster(ClusterSpec {
        plugins: vec![plugin_bin()],
        ..ClusterSpec::raft("plugin-raft", 1, bao_bin())
    });
    let sha = sha256_file(&plugin_bin());

    // A wrong sha256 registers (the server cannot know) but the mount refuses to start it.
    let wrong = "00".repeat(32);
    api.ok(
        "POST",
        "sys/plugins/catalog/secret/custody-signer",
        Some(json!({ "sha256": wrong, "command": "custody-signer" })),
    );
    let (status, v) = api.write("sys/mounts/ethereum", json!({ "type": "custody-signer" }));
    assert_ne!(status, 200, "a mount with a wrong sha256 must fail: {v}");
    assert!(v.to_string().contains("checksums did not match"), "{v}");
    assert_eq!(
        api.call("DELETE", "sys/plugins/catalog/secret/custody-signer", None)
            .0,
        204
    );

    api.ok(
        "POST",
        "sys/plugins/catalog/secret/custody-signer",
        Some(json!({ "sha256": sha, "command": "custody-signer" })),
    );
    // The plugin reports its own version, so the catalog entry is versioned.
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    let entry = api.ok(
        "GET",
        &format!("sys/plugins/catalog/secret/custody-signer?version={version}"),
        None,
    );
    assert_eq!(entry["sha256"], sha.as_str());
    assert_eq!(
        entry["version"],
        version.as_str(),
        "the catalog takes the plugin's own version: {entry}"
    );
    api.enable("custody-signer", "ethereum");

    api.ok("POST", "ethereum/config", Some(json!({ "chain_id": 1337 })));
    let account = api.ok(
        "POST",
        "ethereum/accounts/authority",
        Some(json!({ "unrestricted": true, "allow_sign_message": true, "allow_sign_typed_data": true })),
    );
    let address = account["address"].as_str().unwrap().to_owned();
    let tx = api.ok(
        "POST",
        "ethereum/accounts/authority/sign-tx",
        Some(json!({ "to": "0x2222222222222222222222222222222222222222", "gas": 21000, "max_fee_per_gas": "2", "max_priority_fee_per_gas": "1" })),
    );
    let check = eth_check(json!({ "kind": "tx", "raw": tx["signed_tx"] }));
    assert_eq!(check["from"], address.as_str());
    assert_eq!(check["chain_id"], 1337);
    let legacy = api.ok(
        "POST",
        "ethereum/accounts/authority/sign-tx",
        Some(json!({ "type": "legacy", "to": "0x2222222222222222222222222222222222222222", "gas": 21000, "gas_price": "2" })),
    );
    assert_eq!(
        eth_check(json!({ "kind": "tx", "raw": legacy["signed_tx"] }))["from"],
        address.as_str()
    );
    let m = api.ok(
        "POST",
        "ethereum/accounts/authority/sign-message",
        Some(json!({ "message": "raft" })),
    );
    assert_eq!(
        eth_check(
            json!({ "kind": "message", "message": "raft", "encoding": "utf8", "signature": m["signature"] })
        )["from"],
        address.as_str()
    );
    let typed = json!({
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}],
            "Block": [{"name": "root", "type": "bytes32"}]
        },
        "primaryType": "Block",
        "domain": {"name": "custody", "chainId": 1337},
        "message": {"root": format!("0x{}", "11".repeat(32))}
    });
    let t = api.ok(
        "POST",
        "ethereum/accounts/authority/sign-typed-data",
        Some(json!({ "typed_data": typed })),
    );
    assert_eq!(
        eth_check(
            json!({ "kind": "typed_data", "typed_data": typed, "signature": t["signature"] })
        )["from"],
        address.as_str()
    );
    assert_eq!(
        api.ok("LIST", "ethereum/accounts", None)["keys"],
        json!(["authority"])
    );

    // Seal and unseal: the plugin is started again and finds its key and nonce in storage.
    api.ok("POST", "sys/seal", None);
    assert_eq!(api.read("ethereum/accounts/authority").0, 503);
    unseal_plain(&c, &keys);
    let after = api.read_when_ready("ethereum/accounts/authority", 30);
    assert_eq!(after["address"], address.as_str());
    assert_eq!(after["next_nonce"], 2);
    let tx = api.ok(
        "POST",
        "ethereum/accounts/authority/sign-tx",
        Some(json!({ "to": "0x2222222222222222222222222222222222222222", "gas": 21000, "max_fee_per_gas": "2", "max_priority_fee_per_gas": "1" })),
    );
    assert_eq!(tx["nonce"], 2);

    // Killed under load: 8 clients sign in a loop while the plugin is SIGKILLed. OpenBao starts
    // it again; no nonce is ever handed out twice, and the stored counter is past every nonce
    // released (a signature whose reply was lost may leave a gap, never a repeat).
    let stop = AtomicBool::new(false);
    let mut killed = Vec::new();
    let (released, failures) = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    let (mut nonces, mut failures) = (Vec::new(), 0usize);
                    while !stop.load(Ordering::SeqCst) {
                        let (status, v) = api.write(
                            "ethereum/accounts/authority/sign-tx",
                            json!({ "to": "0x2222222222222222222222222222222222222222", "gas": 21000, "max_fee_per_gas": "2", "max_priority_fee_per_gas": "1" }),
                        );
                        match status {
                            200 => nonces.push((
                                v["data"]["nonce"].as_u64().unwrap(),
                                v["data"]["tx_hash"].as_str().unwrap().to_owned(),
                            )),
                            _ => failures += 1,
                        }
                    }
                    (nonces, failures)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500));
        killed = kill_plugins(&c, 0);
        assert!(!killed.is_empty(), "no plugin process under the server");
        // Signing works again once OpenBao has restarted the plugin; then a little more load.
        let deadline = Instant::now() + Duration::from_secs(30);
        while api.read("ethereum/accounts/authority").0 != 200 {
            assert!(Instant::now() < deadline, "the plugin did not come back");
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(1000));
        stop.store(true, Ordering::SeqCst);
        let mut all = Vec::new();
        let mut failures = 0;
        for client in clients {
            let (n, f) = client.join().unwrap();
            all.extend(n);
            failures += f;
        }
        (all, failures)
    });
    let mut by_nonce: BTreeMap<u64, String> = BTreeMap::new();
    for (nonce, hash) in &released {
        if let Some(other) = by_nonce.insert(*nonce, hash.clone()) {
            panic!("nonce {nonce} was handed out twice: {other} and {hash}");
        }
    }
    let highest = *by_nonce.keys().last().unwrap();
    assert!(
        by_nonce.range(..3).next().is_none(),
        "nonces below 3 were already used: {by_nonce:?}"
    );
    let next = api.ok("GET", "ethereum/accounts/authority/nonce", None)["next_nonce"]
        .as_u64()
        .unwrap();
    assert!(
        next > highest,
        "the stored counter {next} is not past the highest released nonce {highest}"
    );
    let restarted = plugin_pids(&c, 0);
    assert!(
        !restarted.is_empty() && restarted.iter().all(|p| !killed.contains(p)),
        "OpenBao did not start a new plugin process: killed {killed:?}, now {restarted:?}"
    );
    assert!(
        released.len() > 20,
        "too few signatures around the kill to show anything: {} signed, {failures} failed",
        released.len()
    );
}

/// A signer that sees its storage go away under load (a step-down, then a seal) hands out no
/// nonce twice and leaves no gap: the nonces released are exactly 0..N and the counter is N.
/// A write that fails gives its reservation back; the plugin that comes back reads the counter
/// from storage.
#[test]
fn a_step_down_and_a_seal_under_load_leave_no_gap_and_no_repeat() {
    let (c, root, keys, api) = init_plain_cluster(ClusterSpec {
        plugins: vec![plugin_bin()],
        ..ClusterSpec::raft("plugin-faults", 1, bao_bin())
    });
    api.register_and_enable(&plugin_bin());
    api.ok("POST", "ethereum/config", Some(json!({ "chain_id": 1337 })));
    api.ok(
        "POST",
        "ethereum/accounts/load",
        Some(json!({ "unrestricted": true })),
    );
    let body = json!({ "to": "0x2222222222222222222222222222222222222222", "gas": 21000, "max_fee_per_gas": "2", "max_priority_fee_per_gas": "1" });

    let stop = AtomicBool::new(false);
    let (released, failures) = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    let client = Api::new(&c, 0, &root);
                    let (mut nonces, mut failures) = (Vec::new(), BTreeMap::<String, usize>::new());
                    while !stop.load(Ordering::SeqCst) {
                        let (status, v) =
                            client.write("ethereum/accounts/load/sign-tx", body.clone());
                        if status == 200 {
                            nonces.push(v["data"]["nonce"].as_u64().unwrap());
                            continue;
                        }
                        let text = v.to_string();
                        let what = if text.contains("given back") {
                            "a reservation given back"
                        } else if text.contains("storing the nonce counter failed") {
                            "a failed nonce write"
                        } else {
                            "refused by the server"
                        };
                        *failures.entry(format!("{status} {what}")).or_default() += 1;
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    (nonces, failures)
                })
            })
            .collect();
        let wait_signing = || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while api.read("ethereum/accounts/load/nonce").0 != 200 {
                assert!(Instant::now() < deadline, "the signer did not come back");
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        std::thread::sleep(Duration::from_millis(1500));
        api.ok("PUT", "sys/step-down", None);
        wait_signing();
        std::thread::sleep(Duration::from_millis(1500));
        api.ok("PUT", "sys/seal", None);
        unseal_plain(&c, &keys);
        wait_signing();
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::SeqCst);
        let mut all = Vec::new();
        let mut failures = BTreeMap::<String, usize>::new();
        for client in clients {
            let (n, f) = client.join().unwrap();
            all.extend(n);
            for (k, v) in f {
                *failures.entry(k).or_default() += v;
            }
        }
        (all, failures)
    });
    eprintln!(
        "released {} nonces; failed requests: {failures:?}",
        released.len()
    );
    let mut sorted = released.clone();
    sorted.sort_unstable();
    for pair in sorted.windows(2) {
        assert_ne!(pair[0], pair[1], "nonce {} was handed out twice", pair[0]);
    }
    assert_eq!(
        sorted,
        (0..released.len() as u64).collect::<Vec<_>>(),
        "the released nonces have a gap"
    );
    assert_eq!(
        api.ok("GET", "ethereum/accounts/load/nonce", None)["next_nonce"],
        released.len() as u64
    );
    assert!(
        released.len() > 50,
        "too little load to prove anything: {failures:?}"
    );
    assert!(
        !failures.is_empty(),
        "no request failed: the faults did not strike"
    );
}
