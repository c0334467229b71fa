//! `custody reconcile` on a real cluster, the plugin and anvil: every mined nonce explained by
//! an audited signature (proven the server's own with a token), a signature never broadcast
//! listed unmined, a log with one signature's lines removed leaving its nonce unexplained,
//! bad lines named by number, a forged line refused, and a restored copy's signature seen only
//! in its own log.

use custody_test_support as support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use support::plugin::{Anvil, Api, RECIPIENT, authority_cluster, blue_green_behind_haproxy};
use support::*;

/// Logs the signer's accounting fields in clear (until `plugin install` does it).
fn tune(api: &Api) {
    api.ok(
        "POST",
        "sys/mounts/ethereum/tune",
        Some(json!({
            "audit_non_hmac_request_keys": ["to", "nonce", "chain_id"],
            "audit_non_hmac_response_keys": ["tx_hash", "nonce", "from", "chain_id"],
        })),
    );
}

/// A transfer anvil accepts (its base fee is 1 gwei), `fee` making the payload distinct.
fn sign(api: &Api, fee: u64) -> Value {
    let (status, v) = api.write(
        "ethereum/accounts/authority/sign-tx",
        json!({ "to": RECIPIENT, "gas": 21000, "max_fee_per_gas": fee.to_string(),
                "max_priority_fee_per_gas": "1" }),
    );
    assert_eq!(status, 200, "sign-tx: {v}");
    v["data"].clone()
}

const FEE: u64 = 100_000_000_000;

fn broadcast(anvil: &Anvil, signed: &Value) {
    anvil.rpc("eth_sendRawTransaction", json!([signed["signed_tx"]]));
}

fn reconcile(c: &Custody, logs: &[&Path], rpc: &str, extra: &[&str]) -> Run {
    let mut args = vec!["--format", "json", "reconcile"];
    for l in logs {
        args.extend(["--audit-log", l.to_str().unwrap()]);
    }
    args.extend(["--rpc", rpc, "--account", "authority"]);
    args.extend(extra);
    c.run(&args)
}

/// `log` without the lines of the request `request_id`, written to `out`.
fn without_request(log: &Path, request_id: &str, out: &Path) -> PathBuf {
    let text = std::fs::read_to_string(log).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains(&format!("\"id\":\"{request_id}\"")))
        .collect();
    assert!(kept.len() + 2 <= text.lines().count(), "both lines removed");
    std::fs::write(out, kept.join("\n") + "\n").unwrap();
    out.to_owned()
}

/// The response line of the request `request_id` and its 1-based number.
fn response_line(log: &Path, request_id: &str) -> (usize, String) {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .enumerate()
        .find(|(_, l)| {
            l.contains(&format!("\"id\":\"{request_id}\"")) && l.contains("\"type\":\"response\"")
        })
        .map(|(i, l)| (i + 1, l.to_owned()))
        .unwrap()
}

fn lines_with(dir: &Path, step: &str) -> Vec<Value> {
    transcript_lines(&dir.join("custody-transcript.jsonl"))
        .into_iter()
        .filter(|e| e["step"] == step)
        .collect()
}

#[test]
fn reconcile_accounts_for_every_mined_nonce_and_names_what_the_logs_do_not_explain() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (cl, root, _keys, signer, address) = authority_cluster("blue", dir);
    tune(&Api::new(&cl, 0, &root));
    let anvil = Anvil::start(1);
    anvil.rpc("anvil_setBalance", json!([address, "0x56BC75E2D63100000"]));
    let api = Api::new(&cl, 0, &signer);
    let mut signed = Vec::new();
    for n in 0..4u64 {
        let s = sign(&api, FEE);
        assert_eq!(s["nonce"], n);
        if n < 3 {
            broadcast(&anvil, &s);
        }
        signed.push(s);
    }
    let log = cl.nodes[0].audit_log();
    let op = Custody::for_cluster(dir, &cl).with_token_file(&dir.join("blue-root.token"));

    // Clean: nonces 0..2 mined and explained, proven the server's own; nonce 3 never broadcast.
    let r = reconcile(&op, &[&log], &anvil.url, &[]);
    r.expect(0);
    let j = r.json();
    assert_eq!(j["account"], "authority");
    assert_eq!(j["address"].as_str().unwrap(), address);
    assert_eq!(j["chain_id"], 1);
    assert_eq!(j["mined_nonces"], 3);
    assert_eq!(j["explained"], 3);
    assert_eq!(j["unexplained"], json!([]));
    assert_eq!(j["equivocations"], json!([]));
    assert_eq!(
        j["unmined"],
        json!([{ "nonce": 3, "tx_hash": signed[3]["tx_hash"] }])
    );
    assert!(j["log_lines"].as_u64().unwrap() > 8, "{j}");
    assert_eq!(j["bad_lines"], json!([]));
    assert_eq!(j["proof"], "audit-hash");
    let recorded = lines_with(dir, "reconcile");
    assert_eq!(recorded.len(), 1);
    let facts = &recorded[0]["facts"];
    assert_eq!(facts["passed"], true, "{facts}");
    assert_eq!(facts["explained"], 3, "{facts}");
    // The log is live (the reconcile's own requests are audited): its sha256 as it was read.
    assert_eq!(facts["files"][0]["path"], log.display().to_string());
    assert_eq!(facts["files"][0]["sha256"].as_str().unwrap().len(), 64);
    let shown = op.run(&[
        "--format",
        "json",
        "transcript",
        "show",
        "custody-transcript.jsonl",
    ]);
    let checks = shown.expect(0).json()["checks"].clone();
    let check = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["step"] == "reconcile")
        .unwrap_or_else(|| panic!("the report shows no reconcile: {checks}"));
    assert_eq!(check["ok"], true, "{check}");
    assert!(
        check["what"]
            .as_str()
            .unwrap()
            .contains("every mined nonce")
    );

    // A witness's token (update on sys/audit-hash/file, read on the account, no sudo) proves
    // the same.
    let root_api = Api::new(&cl, 0, &root);
    root_api.ok(
        "PUT",
        "sys/policies/acl/reconcile-witness",
        Some(json!({ "policy": "path \"sys/audit-hash/file\" { capabilities = [\"update\"] }\n\
                               path \"ethereum/accounts/authority\" { capabilities = [\"read\"] }" })),
    );
    let (status, v) = root_api.write(
        "auth/token/create",
        json!({ "policies": ["reconcile-witness"], "no_default_policy": true }),
    );
    assert_eq!(status, 200, "{v}");
    let witness_token = dir.join("witness.token");
    std::fs::write(&witness_token, v["auth"]["client_token"].as_str().unwrap()).unwrap();
    let r = reconcile(
        &Custody::for_cluster(dir, &cl).with_token_file(&witness_token),
        &[&log],
        &anvil.url,
        &[],
    );
    r.expect(0);
    assert_eq!(r.json()["proof"], "audit-hash");
    assert_eq!(r.json()["explained"], 3);

    // Without a token: the same counts, said unproven.
    let witness = Custody::new(dir);
    let r = reconcile(&witness, &[&log], &anvil.url, &[]);
    r.expect(0).stderr_has("no token");
    assert_eq!(r.json()["explained"], 3);
    assert_eq!(r.json()["proof"], "none");

    step_a_removed_signature_leaves_its_nonce_unexplained(dir, &op, &log, &anvil, &signed);
    step_bad_lines_are_named_by_number(dir, &op, &log, &anvil, &signed);
    step_a_forged_line_is_not_the_servers_own(dir, &op, &witness, &log, &anvil, &signed);
    step_bad_input_changes_nothing(dir, &op, &log, &anvil);
}

fn request_id_of(log: &Path, tx_hash: &Value) -> String {
    let text = std::fs::read_to_string(log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains(tx_hash.as_str().unwrap()))
        .unwrap();
    serde_json::from_str::<Value>(line).unwrap()["request"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn step_a_removed_signature_leaves_its_nonce_unexplained(
    dir: &Path,
    op: &Custody,
    log: &Path,
    anvil: &Anvil,
    signed: &[Value],
) {
    let id = request_id_of(log, &signed[1]["tx_hash"]);
    let cut = without_request(log, &id, &dir.join("cut.log"));
    let r = reconcile(op, &[&cut], &anvil.url, &[]);
    r.expect(3).stderr_has("no audited signature explains");
    let j = r.json();
    assert_eq!(j["explained"], 2);
    // anvil answers ots_getTransactionBySenderAndNonce: the mined transaction is named.
    assert_eq!(
        j["unexplained"],
        json!([{ "nonce": 1, "tx_hash": signed[1]["tx_hash"] }])
    );
    let recorded = lines_with(dir, "reconcile");
    let facts = &recorded.last().unwrap()["facts"];
    assert_eq!(facts["passed"], false, "{facts}");
    assert_eq!(facts["unexplained_count"], 1, "{facts}");
    // --since-nonce 2 leaves nonce 1 out of it.
    let r = reconcile(op, &[&cut], &anvil.url, &["--since-nonce", "2"]);
    r.expect(0);
    assert_eq!(r.json()["mined_nonces"], 1);
    assert_eq!(r.json()["explained"], 1);
}

fn step_bad_lines_are_named_by_number(
    dir: &Path,
    op: &Custody,
    log: &Path,
    anvil: &Anvil,
    signed: &[Value],
) {
    let id = request_id_of(log, &signed[0]["tx_hash"]);
    let (_, response) = response_line(log, &id);
    let mut lines: Vec<String> = std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.insert(2, "this is not json".into());
    let garbage = 3;
    lines.push(response.clone());
    let duplicate = lines.len();
    let first = lines.iter().position(|l| *l == response).unwrap() + 1;
    let mut text = lines.join("\n") + "\n";
    text.push_str(&response[..response.len() / 2]);
    let truncated = lines.len() + 1;
    let bad = dir.join("bad.log");
    std::fs::write(&bad, text).unwrap();
    let r = reconcile(op, &[&bad], &anvil.url, &[]);
    r.expect(0);
    let j = r.json();
    assert_eq!(j["explained"], 3, "{j}");
    let bad_lines = j["bad_lines"].as_array().unwrap();
    let at = |n: usize| {
        bad_lines
            .iter()
            .find(|b| b["line"] == n)
            .unwrap_or_else(|| panic!("line {n} not reported: {j}"))["problem"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(at(garbage).starts_with("not JSON"), "{j}");
    assert!(
        at(duplicate).contains(&format!("a duplicate of {}:{first}", bad.display())),
        "{j}"
    );
    assert!(at(truncated).starts_with("truncated"), "{j}");
    assert_eq!(bad_lines.len(), 3, "{j}");
    assert_eq!(j["log_lines"], truncated);
}

fn step_a_forged_line_is_not_the_servers_own(
    dir: &Path,
    op: &Custody,
    witness: &Custody,
    log: &Path,
    anvil: &Anvil,
    signed: &[Value],
) {
    // A forger who has the log but not the device's salt rewrites nonce 1's line with an HMAC
    // of their own making.
    let id = request_id_of(log, &signed[1]["tx_hash"]);
    let (n, response) = response_line(log, &id);
    let mut v: Value = serde_json::from_str(&response).unwrap();
    v["response"]["data"]["signed_tx"] = json!(format!("hmac-sha256:{}", "ab".repeat(32)));
    let cut = without_request(log, &id, &dir.join("cut2.log"));
    let forged = dir.join("forged.log");
    let mut text = std::fs::read_to_string(&cut).unwrap();
    text.push_str(&format!("{v}\n"));
    std::fs::write(&forged, &text).unwrap();
    let _ = n;
    let r = reconcile(op, &[&forged], &anvil.url, &[]);
    r.expect(3);
    let j = r.json();
    assert_eq!(j["unexplained"][0]["nonce"], 1, "{j}");
    let problem = j["bad_lines"][0]["problem"].as_str().unwrap();
    assert!(problem.contains("not this server's line"), "{j}");
    assert_eq!(j["bad_lines"][0]["line"], text.lines().count());
    // Without a token nothing can tell: the forged line explains the nonce (and says so).
    let r = reconcile(witness, &[&forged], &anvil.url, &[]);
    r.expect(0);
    assert_eq!(r.json()["proof"], "none");
}

fn step_bad_input_changes_nothing(dir: &Path, op: &Custody, log: &Path, anvil: &Anvil) {
    let before = lines_with(dir, "reconcile").len();
    op.run(&[
        "reconcile",
        "--audit-log",
        log.to_str().unwrap(),
        "--account",
        "authority",
    ])
    .expect(2)
    .stderr_has("--rpc");
    reconcile(op, &[log, log], &anvil.url, &[])
        .expect(2)
        .stderr_has("give each log once");
    reconcile(op, &[&dir.join("no-such.log")], &anvil.url, &[])
        .expect(4)
        .stderr_has("no-such.log");
    reconcile(op, &[log], "http://example.com:8545", &[]).expect(2);
    let r = reconcile(op, &[log], &anvil.url, &["--since-nonce", "x"]);
    r.expect(2);
    assert_eq!(
        lines_with(dir, "reconcile").len(),
        before,
        "nothing recorded"
    );
}

#[test]
fn a_restored_copys_signature_is_explained_only_by_its_own_log() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let bg = blue_green_behind_haproxy(dir);
    tune(&Api::new(&bg.blue, 0, &bg.root));
    let anvil = Anvil::start(1);
    anvil.rpc(
        "anvil_setBalance",
        json!([bg.address, "0x56BC75E2D63100000"]),
    );
    let blue = Api::new(&bg.blue, 0, &bg.signer);
    for n in 0..3u64 {
        let s = sign(&blue, FEE);
        assert_eq!(s["nonce"], n);
        broadcast(&anvil, &s);
    }
    // Green, restored from blue's snapshot, is unfrozen by hand and signs nonce 3.
    let green_addr = bg.green.nodes[0].addr().to_string();
    let op = bg.operator(dir);
    op.run(&[
        "--addr",
        &green_addr,
        "wallet",
        "unfreeze",
        "--nonce-floor",
        "3",
    ])
    .expect(0);
    tune(&Api::new(&bg.green, 0, &bg.root));
    let green_sig = sign(&Api::new(&bg.green, 0, &bg.signer), FEE);
    assert_eq!(green_sig["nonce"], 3);
    broadcast(&anvil, &green_sig);

    let blue_log = bg.blue.nodes[0].audit_log();
    let green_log = bg.green.nodes[0].audit_log();
    let blue_addr = bg.blue.nodes[0].addr().to_string();
    let on_blue = |logs: &[&Path]| {
        let mut args = vec![
            "--addr",
            blue_addr.as_str(),
            "--format",
            "json",
            "reconcile",
        ];
        for l in logs {
            args.extend(["--audit-log", l.to_str().unwrap()]);
        }
        args.extend(["--rpc", &anvil.url, "--account", "authority"]);
        op.run(&args)
    };
    let r = on_blue(&[&blue_log]);
    r.expect(3);
    assert_eq!(
        r.json()["unexplained"],
        json!([{ "nonce": 3, "tx_hash": green_sig["tx_hash"] }])
    );
    // With green's log too it is explained: green's device hashes with blue's salt (the
    // snapshot carried it), so blue's token proves green's line.
    let r = on_blue(&[&blue_log, &green_log]);
    r.expect(0);
    assert_eq!(r.json()["explained"], 4, "{}", r.json());
    assert_eq!(r.json()["mined_nonces"], 4);

    // Blue, which never saw green's nonce 3, signs a different payload at 3: an equivocation.
    let blue_sig = sign(&blue, FEE + 1);
    assert_eq!(blue_sig["nonce"], 3);
    let r = on_blue(&[&blue_log, &green_log]);
    r.expect(3).stderr_has("two different payloads");
    let j = r.json();
    assert_eq!(j["equivocations"][0]["nonce"], 3, "{j}");
    let mut both = vec![
        green_sig["tx_hash"].as_str().unwrap().to_owned(),
        blue_sig["tx_hash"].as_str().unwrap().to_owned(),
    ];
    both.sort();
    assert_eq!(j["equivocations"][0]["tx_hashes"], json!(both));
    assert_eq!(j["explained"], 4);
    assert_eq!(
        j["unmined"],
        json!([{ "nonce": 3, "tx_hash": blue_sig["tx_hash"] }])
    );
}
