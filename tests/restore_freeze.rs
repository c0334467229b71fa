//! A restored cluster signs nothing until its counters are raised: green restored from blue
//! refuses the signer token at its own address until the cutover carries blue's counters (and
//! the rollback leaves it frozen); a `--force` restore back into the source comes up frozen with
//! its counters rolled back, and `wallet unfreeze` lifts it only with a floor, recorded.

use custody_test_support as support;

use std::path::Path;

use serde_json::{Value, json};

use support::plugin::{
    Anvil, Api, BlueGreen, authority_cluster, blue_green_behind_haproxy, transfer_tx, unseal_plain,
};
use support::*;

/// The signer token's `sign-tx` at `api`'s node: (status, answer).
fn sign(api: &Api) -> (u16, Value) {
    api.write("ethereum/accounts/authority/sign-tx", transfer_tx())
}

fn next_nonce(api: &Api) -> u64 {
    api.ok("GET", "ethereum/accounts/authority/nonce", None)["next_nonce"]
        .as_u64()
        .unwrap()
}

#[track_caller]
fn refused_as_restored(api: &Api, what: &str) {
    let (status, v) = sign(api);
    assert_eq!(status, 503, "{what}: {v}");
    assert!(
        v.to_string().contains("restored from a snapshot"),
        "{what}: {v}"
    );
}

/// The transcript's lines whose step is `step`.
fn lines(dir: &Path, step: &str) -> Vec<Value> {
    std::fs::read_to_string(dir.join("custody-transcript.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["step"] == step)
        .collect()
}

#[test]
fn a_restored_green_signs_nothing_until_the_cutover_carries_blues_counters() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let bg = blue_green_behind_haproxy(dir);
    let blue_signer = Api::new(&bg.blue, 0, &bg.signer);
    for n in 0..3 {
        assert_eq!(sign(&blue_signer).1["data"]["nonce"], n, "blue signs on");
    }
    step_green_refuses_the_signer_token_at_its_own_address(&bg);
    step_status_and_wallet_show_say_why_and_how_to_lift_it(&bg, dir);
    step_cutover_unfreezes_green_after_the_carry(&bg, dir);
    step_rollback_leaves_green_frozen(&bg, dir);
}

fn step_green_refuses_the_signer_token_at_its_own_address(bg: &BlueGreen) {
    let green_root = Api::new(&bg.green, 0, &bg.root);
    let before = next_nonce(&green_root);
    assert_eq!(before, 0, "green holds the snapshot's counter");
    for node in 0..bg.green.nodes.len() {
        refused_as_restored(
            &Api::new(&bg.green, node, &bg.signer),
            &format!("the signer token at green node {}", node + 1),
        );
    }
    assert_eq!(next_nonce(&green_root), before, "no nonce was used");
    // Nor may a token that can write the config simply unfreeze it.
    let (status, v) = green_root.write("ethereum/config", json!({ "frozen": false }));
    assert_eq!(status, 400, "{v}");
    refused_as_restored(&Api::new(&bg.green, 0, &bg.signer), "after a bare unfreeze");
}

fn step_status_and_wallet_show_say_why_and_how_to_lift_it(bg: &BlueGreen, dir: &Path) {
    let on_green = bg.operator(dir);
    let green_addr = bg.green.nodes[0].addr().to_string();
    let r = on_green.run(&["--addr", &green_addr, "status"]);
    r.expect(0)
        .stdout_has("ethereum/ is FROZEN: this cluster was restored from a snapshot")
        .stdout_has("custody cutover")
        .stdout_has("wallet unfreeze");
    let r = on_green.run(&["--addr", &green_addr, "--format", "json", "status"]);
    assert_eq!(r.json()["signer_mounts"][0]["signing"], "restored");
    let r = on_green.run(&["--addr", &green_addr, "wallet", "show", "authority"]);
    r.expect(0)
        .stdout_has("Signing:        ethereum/ is FROZEN: this cluster was restored")
        .stdout_has("custody snapshot save blue.snap");
    let r = on_green.run(&[
        "--addr",
        &green_addr,
        "--format",
        "json",
        "wallet",
        "show",
        "authority",
    ]);
    assert_eq!(r.json()["signing"], "restored");
    // Blue signs, and says so.
    let blue_addr = bg.blue.nodes[0].addr().to_string();
    on_green
        .run(&["--addr", &blue_addr, "status"])
        .expect(0)
        .stdout_has("ethereum/ signs");
    // wallet unfreeze needs a floor (exit 2), and on a cluster that signs changes nothing.
    on_green
        .run(&["--addr", &green_addr, "wallet", "unfreeze"])
        .expect(2)
        .stderr_has("needs a floor");
    on_green
        .run(&[
            "--addr",
            &blue_addr,
            "wallet",
            "unfreeze",
            "--nonce-floor",
            "3",
        ])
        .expect(0)
        .stdout_has("not frozen");
    refused_as_restored(&Api::new(&bg.green, 0, &bg.signer), "after the refusals");
}

fn step_cutover_unfreezes_green_after_the_carry(bg: &BlueGreen, dir: &Path) {
    let args = bg.cutover_args(
        &bg.green.nodes[0].addr().to_string(),
        &bg.lb_spec(),
        "green1",
    );
    let r = bg
        .operator(dir)
        .run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    r.expect(0);
    let cutover = lines(dir, "cutover");
    let facts = &cutover.last().unwrap()["facts"];
    assert_eq!(facts["green_before"], "restored", "{facts}");
    assert_eq!(facts["nonces"]["authority"]["from"], 3, "{facts}");
    assert_eq!(facts["nonces"]["authority"]["to_after"], 3, "{facts}");
    let signed = sign(&Api::new(&bg.green, 0, &bg.signer));
    assert_eq!(signed.0, 200, "{}", signed.1);
    assert_eq!(
        signed.1["data"]["nonce"], 3,
        "green signs the nonce carried from blue"
    );
    let (status, _) = sign(&Api::new(&bg.blue, 0, &bg.signer));
    assert_eq!(status, 503, "blue is frozen now");
}

fn step_rollback_leaves_green_frozen(bg: &BlueGreen, dir: &Path) {
    let mut args = bg.cutover_args(
        &bg.green.nodes[0].addr().to_string(),
        &bg.lb_spec(),
        "green1",
    );
    args.insert(1, "rollback".into());
    bg.operator(dir)
        .run(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .expect(0);
    let (status, v) = sign(&Api::new(&bg.green, 0, &bg.signer));
    assert_eq!(status, 503, "green is frozen after the rollback: {v}");
    let signed = sign(&Api::new(&bg.blue, 0, &bg.signer));
    assert_eq!(
        signed.1["data"]["nonce"], 4,
        "blue takes over after green's 3"
    );
}

#[test]
fn a_force_restore_into_the_source_comes_up_frozen_until_wallet_unfreeze() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (cl, root, keys, signer, address) = authority_cluster("source", dir);
    let root_file = dir.join("source-root.token");
    let op = Custody::for_cluster(dir, &cl).with_token_file(&root_file);
    let signs = Api::new(&cl, 0, &signer);
    let as_root = Api::new(&cl, 0, &root);
    for n in 0..2 {
        assert_eq!(sign(&signs).1["data"]["nonce"], n);
    }
    let snap = dir.join("source.snap");
    let r = op.run(&["snapshot", "save", "--out", snap.to_str().unwrap()]);
    r.expect(0).stdout_has("Restore fence snap-");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("source.snap.manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["restore_fence"]["mounts"], json!(["ethereum"]));
    let fence_id = manifest["restore_fence"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        as_root.read("ethereum/restore-fence").0,
        404,
        "the save removed its fence"
    );
    for n in 2..4 {
        assert_eq!(sign(&signs).1["data"]["nonce"], n, "the source signs on");
    }
    op.run(&["snapshot", "verify", snap.to_str().unwrap()])
        .expect(0);
    // A manifest naming a fence the snapshot does not hold (a fenceless snapshot passed off
    // as fenced) is refused: a cluster restored from it would sign at once.
    let unfenced = dir.join("unfenced.snap");
    std::fs::copy(&snap, &unfenced).unwrap();
    let mut lie = manifest.clone();
    lie["restore_fence"]["id"] = json!("snap-0-00000000");
    lie["file"] = json!("unfenced.snap");
    std::fs::write(
        dir.join("unfenced.snap.manifest.json"),
        serde_json::to_vec(&lie).unwrap(),
    )
    .unwrap();
    op.run(&["snapshot", "verify", unfenced.to_str().unwrap()])
        .expect(3)
        .stderr_has("state.bin holds it 0 time(s)");
    op.run(&["snapshot", "restore", "--force", snap.to_str().unwrap()])
        .expect(0);
    unseal_plain(&cl, &keys[..3]);
    let config = as_root.read_when_ready("ethereum/config", 30);
    assert_eq!(config["frozen_reason"], "restored", "{config}");
    assert_eq!(config["restored"]["fences"][0]["id"], fence_id.as_str());
    assert_eq!(
        next_nonce(&as_root),
        2,
        "the restore rolled the counter back"
    );
    refused_as_restored(&signs, "the source after a --force restore");

    step_unfreeze_refusals_change_nothing(&op, &as_root);
    let chain = Anvil::start(1);
    chain.rpc("anvil_setNonce", json!([address, "0x6"]));
    let r = op.run(&[
        "--format",
        "json",
        "wallet",
        "unfreeze",
        "--nonce-floor-from-rpc",
        &chain.url,
    ]);
    r.expect(0);
    assert_eq!(r.json()["unfreeze"]["counters"]["authority"]["after"], 6);
    let recorded = lines(dir, "unfreeze");
    let facts = &recorded.last().unwrap()["facts"];
    assert_eq!(facts["counters"]["authority"]["before"], 2, "{facts}");
    assert_eq!(facts["counters"]["authority"]["chain"], 6, "{facts}");
    assert_eq!(facts["fences"], json!([fence_id]), "{facts}");
    assert_eq!(
        sign(&signs).1["data"]["nonce"],
        6,
        "the first nonce above the floor"
    );
}

/// Each refused unfreeze leaves the mount frozen and the counter where it was.
fn step_unfreeze_refusals_change_nothing(op: &Custody, as_root: &Api) {
    let unchanged = |what: &str| {
        assert_eq!(next_nonce(as_root), 2, "{what}: the counter moved");
        let c = as_root.ok("GET", "ethereum/config", None);
        assert_eq!(c["frozen_reason"], "restored", "{what}: {c}");
    };
    op.run(&["wallet", "unfreeze", "--nonce-floor", "x"])
        .expect(2);
    unchanged("a floor that is no number");
    op.run(&["wallet", "unfreeze", "--nonce-floor", "nobody=3"])
        .expect(2)
        .stderr_has("no such account");
    unchanged("a floor for no account");
    // Far above the counter: a lying source could spend the nonces for good.
    op.run(&["wallet", "unfreeze", "--nonce-floor", "5000"])
        .expect(4)
        .stderr_has("--max-nonce-jump 1000");
    unchanged("a jump without --yes");
    let other_chain = Anvil::start(5);
    op.run(&[
        "wallet",
        "unfreeze",
        "--nonce-floor-from-rpc",
        &other_chain.url,
    ])
    .expect(3)
    .stderr_has("serves chain 5");
    unchanged("an RPC of another chain");
}
