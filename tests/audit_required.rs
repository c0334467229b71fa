//! No Authority without an audit trail. On a cluster whose nodes declare no audit device,
//! `plugin install`, `wallet create` and `wallet bind` are refused (exit 4) with nothing changed;
//! with `--accept-no-audit` they go on, and the transcript, the report and `status` say so. On a
//! cluster with the audit stanza, a signature is accounted for in clear in the node's own audit
//! log (the account in the path; `to`, `nonce`, `chain_id`; `tx_hash`, `nonce`, `from`), the rest
//! hashed; `status` lists the devices, says when they differ from the transcript's record, and
//! says a token that may not read them may not.

use custody_test_support as support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use support::plugin::{Anvil, Api, RECIPIENT, authority_cluster, init_plain_cluster, plugin_bin};
use support::*;

const CHAIN: u64 = 31337;

fn transcript(dir: &Path) -> std::path::PathBuf {
    dir.join("custody-transcript.jsonl")
}

/// The transcript's lines for `step`.
fn lines_of(dir: &Path, step: &str) -> Vec<Value> {
    if !transcript(dir).exists() {
        return Vec::new();
    }
    transcript_lines(&transcript(dir))
        .into_iter()
        .filter(|l| l["step"] == step)
        .collect()
}

/// A contract that names `authority` (PlasmaAuthority), deployed from anvil's first account.
fn deploy(anvil: &Anvil, authority: &str) -> String {
    let code = std::fs::read_to_string(root().join("contracts/PlasmaAuthority.bin")).unwrap();
    let word = format!("{:0>64}", authority.trim_start_matches("0x").to_lowercase());
    let from = anvil.rpc("eth_accounts", json!([]))[0].clone();
    let hash = anvil.rpc(
        "eth_sendTransaction",
        json!([{ "from": from, "data": format!("0x{}{word}", code.trim()), "gas": "0x800000" }]),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = anvil.rpc("eth_getTransactionReceipt", json!([hash]));
        if !r.is_null() {
            assert_eq!(r["status"], "0x1", "{r}");
            return r["contractAddress"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "the deployment was never mined");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_authority_is_refused_a_cluster_without_an_audit_trail() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (cluster, root, _keys, api) = init_plain_cluster(ClusterSpec {
        audit: None,
        plugins: vec![plugin_bin()],
        ..ClusterSpec::raft("noaudit", 1, bao_bin())
    });
    assert_eq!(
        api.ok("GET", "sys/audit", None),
        json!({}),
        "no device declared"
    );
    let root_file = dir.join("root.token");
    std::fs::write(&root_file, &root).unwrap();
    let c = Custody::for_cluster(dir, &cluster).with_token_file(&root_file);
    let bin = plugin_bin();
    let install = ["plugin", "install", "--plugin-bin", bin.to_str().unwrap()];

    // plugin install: refused before anything is registered or mounted.
    c.run(&install)
        .expect(4)
        .stderr_has("no enabled audit device")
        .stderr_has("nothing was changed")
        .stderr_has("--accept-no-audit");
    let (catalog, _) = api.read("sys/plugins/catalog/secret/custody-signer");
    assert_eq!(catalog, 404, "nothing registered");
    let (mount, _) = api.read("sys/mounts/ethereum");
    assert!(
        mount == 400 || mount == 404,
        "nothing mounted: HTTP {mount}"
    );
    assert!(lines_of(dir, "plugin-install").is_empty());

    let r = c.run(&[&["--format", "json"], &install[..], &["--accept-no-audit"]].concat());
    r.expect(0).stderr_has("no audit device");
    assert_eq!(r.json()["plugin"]["audit"]["accepted_no_audit"], true);
    let line = &lines_of(dir, "plugin-install")[0];
    assert_eq!(line["facts"]["audit"]["accepted_no_audit"], true, "{line}");
    assert_eq!(line["facts"]["audit"]["devices"], json!([]), "{line}");

    // wallet create: refused with no account, no policy and no token file.
    let wrap = dir.join("authority.wrap");
    let create = [
        "--format",
        "json",
        "wallet",
        "create",
        "authority",
        "--chain-id",
        "31337",
        "--signer-token-out",
        wrap.to_str().unwrap(),
    ];
    c.run(&create)
        .expect(4)
        .stderr_has("wallet create")
        .stderr_has("no enabled audit device");
    assert_eq!(api.read("ethereum/accounts/authority").0, 404);
    assert_eq!(api.read("sys/policy/custody-authority-signer").0, 404);
    assert!(!wrap.exists(), "no token file");
    assert!(lines_of(dir, "wallet-create").is_empty());

    let r = c.run(&[&create[..], &["--accept-no-audit"]].concat());
    r.expect(0);
    let address = r.json()["wallet"]["address"].as_str().unwrap().to_owned();
    let facts = &lines_of(dir, "wallet-create")[0]["facts"];
    assert_eq!(facts["audit"]["accepted_no_audit"], true, "{facts}");

    // wallet bind: refused before it reads the chain or asks for a confirmation.
    let anvil = Anvil::start(CHAIN);
    let contract = deploy(&anvil, &address);
    let bind = [
        "--yes",
        "--format",
        "json",
        "wallet",
        "bind",
        "authority",
        "--rpc",
        anvil.url.as_str(),
        "--contract",
        contract.as_str(),
    ];
    c.run(&bind)
        .expect(4)
        .stderr_has("wallet bind")
        .stderr_has("no enabled audit device");
    let a = api.ok("GET", "ethereum/accounts/authority", None);
    assert_eq!(a["allowed_calls"], json!([]), "still unbound: {a}");
    assert!(lines_of(dir, "wallet-bind").is_empty());

    let r = c.run(&[&bind[..], &["--accept-no-audit"]].concat());
    r.expect(0);
    assert_eq!(r.json()["bind"]["audit"]["accepted_no_audit"], true);
    let a = api.ok("GET", "ethereum/accounts/authority", None);
    assert_eq!(
        a["allowed_calls"].as_array().unwrap().len(),
        1,
        "bound: {a}"
    );

    // The report shows each of the three as a failed check; status says there is no device.
    let page = dir.join("report.html");
    c.run(&[
        "transcript",
        "report",
        transcript(dir).to_str().unwrap(),
        "--out",
        page.to_str().unwrap(),
    ])
    .expect(0);
    let page = std::fs::read_to_string(page).unwrap();
    let failed = page
        .lines()
        .flat_map(|l| l.split("<tr "))
        .filter(|row| row.contains("data-ok=\"false\""))
        .filter(|row| row.contains("no audit device: accepted with --accept-no-audit"))
        .count();
    assert_eq!(failed, 3, "three red audit checks in {page}");
    assert!(
        page.contains("tr.check[data-ok=false]{color:#a40000"),
        "red"
    );

    let r = c.run(&["status"]);
    r.expect(0)
        .stdout_has("NONE enabled")
        .stdout_has("without an audit device (line 3, wallet-bind, --accept-no-audit)");
    let r = c.run(&["--format", "json", "status"]);
    r.expect(0);
    assert_eq!(r.json()["audit"]["nodes"][0]["devices"], json!([]));
}

/// The audit log's entries of `kind` (`request` or `response`) for `path`.
fn audit_entries(log: &Path, kind: &str, path: &str) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_else(|e| panic!("reading {}: {e}", log.display()))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == kind && e["request"]["path"] == path)
        .collect()
}

/// `v` is `want` in clear: the same text, or the same number.
fn clear(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s == want,
        Value::Number(n) => n.to_string() == want,
        _ => false,
    }
}

#[test]
fn a_signature_is_accounted_for_in_clear_in_the_audit_log() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (cluster, root, _keys, signer, address) = authority_cluster("audited", dir);
    let root_file = dir.join("audited-root.token");
    let c = Custody::for_cluster(dir, &cluster).with_token_file(&root_file);

    // plugin install and wallet create recorded the device, and the mount's tuning.
    let install = &lines_of(dir, "plugin-install")[0]["facts"];
    let device = json!([{ "type": "file", "path": "file/", "file_path": "audit.log" }]);
    assert_eq!(install["audit"]["devices"], device, "{install}");
    assert_eq!(install["audit"]["accepted_no_audit"], false, "{install}");
    for k in ["to", "nonce", "chain_id"] {
        assert!(
            install["audit_clear_keys"]["request"]
                .as_array()
                .unwrap()
                .contains(&json!(k)),
            "{install}"
        );
    }
    let created = &lines_of(dir, "wallet-create")[0]["facts"];
    assert_eq!(created["audit"]["devices"], device, "{created}");

    // A signature, then the node's own audit log. The nonce and chain id are sent as text: the
    // server leaves numbers unhashed whatever the tuning, text only when the mount is tuned.
    let body = json!({
        "to": RECIPIENT, "gas": 21000, "max_fee_per_gas": "2", "max_priority_fee_per_gas": "1",
        "nonce": "0", "chain_id": "1",
    });
    let path = "ethereum/accounts/authority/sign-tx";
    let signed = Api::new(&cluster, 0, &signer).ok("POST", path, Some(body));
    let tx_hash = signed["tx_hash"].as_str().unwrap();
    let log = cluster.nodes[0].audit_log();
    let requests = audit_entries(&log, "request", path);
    let responses = audit_entries(&log, "response", path);
    assert_eq!(
        (requests.len(), responses.len()),
        (1, 1),
        "{}",
        log.display()
    );
    let asked = &requests[0]["request"]["data"];
    assert!(clear(&asked["to"], RECIPIENT), "to in clear: {asked}");
    assert!(clear(&asked["nonce"], "0"), "nonce in clear: {asked}");
    assert!(clear(&asked["chain_id"], "1"), "chain_id in clear: {asked}");
    let gas = asked["max_fee_per_gas"].as_str().unwrap();
    assert!(gas.starts_with("hmac-sha256:"), "the rest hashed: {asked}");
    let answer = &responses[0]["response"]["data"];
    assert!(
        clear(&answer["tx_hash"], tx_hash),
        "tx_hash in clear: {answer}"
    );
    assert!(clear(&answer["from"], &address), "from in clear: {answer}");
    assert!(clear(&answer["nonce"], "0"), "nonce in clear: {answer}");
    let raw = answer["signed_tx"].as_str().unwrap();
    assert!(
        raw.starts_with("hmac-sha256:"),
        "signed_tx hashed: {answer}"
    );
    let token = requests[0]["auth"]["client_token"].as_str().unwrap();
    assert!(token.starts_with("hmac-sha256:"), "the token hashed");

    // status: the device on the node, as recorded; the mount tuned.
    let r = c.run(&["--format", "json", "status"]);
    r.expect(0);
    let s = r.json();
    let node = &s["audit"]["nodes"][0];
    assert_eq!(node["devices"], device, "{s}");
    assert_eq!(s["audit"]["recorded"]["step"], "wallet-create", "{s}");
    assert_eq!(s["audit"]["differs_from_recorded"], json!([]), "{s}");
    assert_eq!(s["signer_mounts"][0]["audit_keys_hashed"], json!([]), "{s}");
    c.run(&["status"])
        .expect(0)
        .stdout_has("file/ (file → audit.log)")
        .stdout_has("the ones the transcript recorded")
        .stdout_has("logs what accounts for a signature in clear");

    // A token that may not read sys/audit: said, not an error.
    let signer_file = dir.join("signer.token");
    std::fs::write(&signer_file, &signer).unwrap();
    Custody::for_cluster(dir, &cluster)
        .with_token_file(&signer_file)
        .run(&["status"])
        .expect(0)
        .stdout_has("may not read sys/audit");

    // A record that names another file: status says the devices differ.
    let mut lines = transcript_lines(&transcript(dir));
    for l in lines.iter_mut().filter(|l| l["facts"]["audit"].is_object()) {
        l["facts"]["audit"]["devices"][0]["file_path"] = json!("node1.log");
    }
    std::fs::write(transcript(dir), rechain(&lines)).unwrap();
    let r = c.run(&["status"]);
    r.expect(0)
        .stdout_has("DIFFER from what the transcript recorded")
        .stdout_has("node1.log");
    let r = c.run(&["--format", "json", "status"]);
    let d = r.json()["audit"]["differs_from_recorded"].clone();
    assert_eq!(d.as_array().map(Vec::len), Some(1), "{d}");

    // A mount tuned back to hashing: status says so.
    Api::new(&cluster, 0, &root).ok(
        "POST",
        "sys/mounts/ethereum/tune",
        Some(json!({ "audit_non_hmac_response_keys": ["from"] })),
    );
    c.run(&["status"])
        .expect(0)
        .stdout_has("HASHES in the audit log")
        .stdout_has("response_keys tx_hash");
}
