//! Ceremony 5 and blue-green phase 1 on real clusters: save from a 3-node cluster holding the
//! Authority and a few hundred KV entries, verify (offline and by a restore test), every kind of
//! damage refused, and a restore into a second cluster that only the original quorum unseals.

use custody_test_support as support;

use std::io::Write;

use serde_json::json;

use std::path::{Path, PathBuf};

use support::plugin::{Api, Green, active_node, green_cluster, plugin_bin, plugin_cluster};
use support::*;

#[test]
fn snapshot_save_verify_restore_test_and_restore_into_green() {
    let mut u = init_and_unseal(
        plugin_cluster("blue", 3),
        &["holder1", "holder3", "holder5", "operator"],
    );
    let as_root = u.custody.with_token_file(&u.root_file);
    let (address, ceremony_file) = step_authority_ceremony_token_and_kv_entries(&u, &as_root);
    let snap = step_save(&u, &as_root, &address);
    let set_id = step_save_without_a_known_share_set(&u, &as_root);
    step_verify_offline_then_by_a_restore_test(&u, &snap, &ceremony_file, &address, &set_id);
    step_an_older_set_and_keys_outside_it_refused(&u, &snap, &ceremony_file, &set_id);
    step_damage_of_every_kind_refused_and_unrecorded(&u, &snap);
    step_trusted_only_by_its_manifest_and_its_recorded_save(&u, &snap);
    step_restore_refused_over_the_source_cluster(&as_root, &snap);
    step_restore_refused_while_a_peer_is_not_a_healthy_voter(&mut u, &as_root, &snap);
    let green = green_cluster(u.dir());
    let newer = step_a_newer_save_makes_the_first_older(&u, &as_root, &snap, &green);
    step_restore_into_green_opened_by_the_original_quorum(&u, &snap, &address, &green);
    drop(green);
    step_restore_with_its_own_verification(&u, &newer);
}

/// The Authority, a ceremony token (kept valid in the snapshot), and 300 KV entries.
/// The Authority's address and the ceremony token's file.
fn step_authority_ceremony_token_and_kv_entries(
    u: &Unsealed,
    as_root: &Custody,
) -> (String, PathBuf) {
    let dir = u.dir();
    let (blue, root_text) = (&u.cluster, &u.root_token);
    as_root
        .run(&[
            "plugin",
            "install",
            "--plugin-bin",
            plugin_bin().to_str().unwrap(),
        ])
        .expect(0);
    let r = as_root.run(&[
        "--format",
        "json",
        "wallet",
        "create",
        "authority",
        "--chain-id",
        "1",
        "--allowed-call",
        "0x1111111111111111111111111111111111111111:submitBlock(bytes32)",
        "--signer-token-out",
        dir.join("signer.wrap").to_str().unwrap(),
    ]);
    r.expect(0);
    let address = r.json()["wallet"]["address"].as_str().unwrap().to_owned();
    let ceremony_file = u.ceremony_token();
    let api = Api::new(blue, 0, root_text);
    api.ok("POST", "sys/mounts/kv", Some(json!({ "type": "kv" })));
    let writes = (0..300)
        .map(|i| {
            (
                "POST".to_owned(),
                format!("kv/entry-{i}"),
                Some(json!({ "value": format!("v{i}") })),
            )
        })
        .collect();
    assert!(api.concurrent(writes).iter().all(|(s, _)| *s == 204));

    (address, ceremony_file)
}

/// Save: the manifest names the Authority and every node, the file is 0600, never overwritten.
fn step_save(u: &Unsealed, as_root: &Custody, address: &str) -> PathBuf {
    let dir = u.dir();
    let snap = dir.join("blue.snap");
    let r = as_root.run(&[
        "--format",
        "json",
        "snapshot",
        "save",
        "--out",
        snap.to_str().unwrap(),
    ]);
    r.expect(0);
    let manifest = r.json()["manifest"].clone();
    assert_eq!(manifest["accounts"]["authority"], address);
    assert_eq!(manifest["nodes"].as_array().unwrap().len(), 3);
    assert!(manifest["raft_index"].as_u64().unwrap() > 300);
    // The audit device every custody cluster declares, relative: the restore test declares it
    // in the throwaway, where it resolves in the throwaway's own directory.
    assert_eq!(
        manifest["audit_devices"],
        json!([{ "path": "file/", "type": "file", "description": "", "local": false,
                 "options": { "file_path": "audit.log" } }])
    );
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&snap).unwrap().permissions())
            & 0o777,
        0o600
    );
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("blue.snap.manifest.json")).unwrap())
            .unwrap();
    assert_eq!(on_disk["sha256"], support::plugin::sha256_file(&snap));
    // The share set init put in force: the five holders in order, three to open.
    let set = &manifest["share_set"];
    assert_eq!(set["threshold"], 3);
    assert_eq!(set["origin"]["ceremony"], "init");
    let fprs: Vec<&str> = (set["holders"].as_array().unwrap().iter())
        .map(|h| h["fingerprint"].as_str().unwrap())
        .collect();
    assert_eq!(fprs, five_fprs());
    assert_eq!(on_disk["share_set"], *set);
    let (_, entries) = custody::transcript::read_verified(&dir.join("custody-transcript.jsonl"))
        .expect("the transcript verifies");
    let save = entries.last().unwrap();
    assert_eq!(
        (&save["ceremony"], &save["step"]),
        (&json!("snapshot"), &json!("save"))
    );
    assert_eq!(save["facts"]["share_set"]["id"], set["id"]);
    assert!(!r.stderr().contains("share set unknown"), "{}", r.stderr());
    as_root
        .run(&["snapshot", "save", "--out", snap.to_str().unwrap()])
        .expect(4)
        .stderr_has("never overwrites");

    snap
}

fn five_fprs() -> Vec<String> {
    ["holder1", "holder2", "holder3", "holder4", "holder5"]
        .map(fpr)
        .to_vec()
}

/// A save whose transcript records no init: the manifest names no share set, and the report
/// warns why (not a failure). The set id the real save recorded.
fn step_save_without_a_known_share_set(u: &Unsealed, as_root: &Custody) -> String {
    let dir = u.dir();
    let snap = dir.join("unknown-set.snap");
    let r = as_root.run(&[
        "--transcript",
        dir.join("no-init.jsonl").to_str().unwrap(),
        "snapshot",
        "save",
        "--out",
        snap.to_str().unwrap(),
    ]);
    r.expect(0)
        .stderr_has("share set unknown: no transcript at")
        .stdout_has("Share set: unknown");
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("unknown-set.snap.manifest.json")).unwrap())
            .unwrap();
    assert!(on_disk.get("share_set").is_none(), "{on_disk}");
    assert_eq!(on_disk["schema_version"], 1);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("blue.snap.manifest.json")).unwrap())
            .unwrap();
    m["share_set"]["id"].as_str().unwrap().to_owned()
}

/// Verify offline (no server: no --addr at all), then by a restore test that must generate a
/// root token on the throwaway server with the ceremony token and the quorum; both name the
/// share set the snapshot needs and its holders.
fn step_verify_offline_then_by_a_restore_test(
    u: &Unsealed,
    snap: &Path,
    ceremony_file: &Path,
    address: &str,
    set_id: &str,
) {
    let dir = u.dir();
    let offline = Custody::new(dir);
    let r = offline.run(&[
        "--format",
        "json",
        "snapshot",
        "verify",
        snap.to_str().unwrap(),
    ]);
    r.expect(0);
    assert_eq!(r.json()["verify"]["manifest"], true);
    assert_eq!(r.json()["verify"]["no_manifest"], false);
    assert!(
        r.json()["verify"]["recorded_save"]["seq"].is_u64(),
        "the transcript's save of blue.snap is found: {}",
        r.stdout()
    );
    assert!(r.json()["verify"]["recorded_save"]["sha256_matches"] == true);
    assert!(r.json()["archive"]["sealed_sums"].as_bool().unwrap());
    assert_eq!(r.json()["verify"]["share_set"], set_id);
    assert_eq!(r.json()["verify"]["holders"], json!([]));
    assert_eq!(r.json()["current_share_set"], set_id);
    let r = offline.run(&["snapshot", "verify", snap.to_str().unwrap()]);
    r.expect(0)
        .stdout_has(&format!("share set {set_id}: 3 of 5, from init "));
    for (i, f) in five_fprs().iter().enumerate() {
        r.stdout_has(&format!("  {}. {f} ", i + 1));
    }
    assert!(!r.stdout().contains("OLDER"), "{}", r.stdout());
    let mut by_ceremony = Custody::new(dir);
    by_ceremony
        .base
        .extend(["--token-file".into(), ceremony_file.display().to_string()]);
    // The drill: holders 1, 3 and 5 at one sitting, each opening their share with their own
    // key, so the record says who proved a share.
    let mut args: Vec<String> = [
        "--format",
        "json",
        "snapshot",
        "verify",
        snap.to_str().unwrap(),
        "--restore-test",
        "--plugin-bin",
        plugin_bin().to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    args.extend(share_file_args(&u.out, &["holder1", "holder3", "holder5"]));
    let r = by_ceremony.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    r.expect(0);
    assert_eq!(r.json()["verify"]["restore_test"]["address"], address);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(format!("{}.manifest.json", snap.display())).unwrap(),
    )
    .unwrap();
    assert!(manifest["restore_fence"]["id"].is_string(), "{manifest}");
    assert_eq!(
        r.json()["verify"]["restore_test"]["frozen_on_fence"],
        manifest["restore_fence"]["id"],
        "the restored copy came up frozen on the snapshot's fence: {}",
        r.stdout()
    );
    assert_eq!(r.json()["verify"]["share_set"], set_id);
    assert_eq!(
        r.json()["verify"]["holders"],
        json!([fpr("holder1"), fpr("holder3"), fpr("holder5")]),
        "each share file's key names its holder"
    );
    r.stderr_has(&format!(
        "This snapshot opens with the shares of set {set_id}: 3 of 5 of:"
    ));
    for f in five_fprs() {
        r.stderr_has(&f);
    }
}

/// After a rotation (a hand-made `rotate-shares`/`verified` line in a copy of the transcript),
/// verify says the snapshot needs the OLDER set; a restore test refuses a key outside the
/// snapshot's set (exit 4), and one holder's --share-file alone with no terminal for the others
/// (exit 2), before any throwaway server starts (its TMPDIR stays empty) and recording nothing.
fn step_an_older_set_and_keys_outside_it_refused(
    u: &Unsealed,
    snap: &Path,
    ceremony_file: &Path,
    old_id: &str,
) {
    let dir = u.dir();
    let rotated = dir.join("rotated.jsonl");
    std::fs::copy(dir.join("custody-transcript.jsonl"), &rotated).unwrap();
    let new_holders = ["holder2", "holder3", "holder4", "operator"];
    custody::transcript::Transcript::at(&rotated)
        .append(custody::transcript::Step::new(
            "rotate-shares",
            "verified",
            "operator",
            json!({
                "threshold": 3,
                "nonce": "test-rotation-nonce",
                "holders": new_holders.iter().enumerate().map(|(i, h)| json!({
                    "index": i + 1, "fingerprint": fpr(h), "user_id": format!("new {h}"),
                })).collect::<Vec<_>>(),
            }),
        ))
        .unwrap();
    let (_, entries) = custody::transcript::read_verified(&rotated).unwrap();
    let new_id = custody::transcript::share_sets::current(&entries)
        .unwrap()
        .id;
    assert_ne!(new_id, old_id);
    let older = custody::transcript::share_sets::saved_needing_other_than(&entries, &new_id);
    assert!(
        older.iter().any(|s| s.file == "blue.snap"
            && s.share_set.as_ref().map(|x| x.id.as_str()) == Some(old_id)),
        "blue.snap still needs the old set"
    );

    let mut offline = Custody::new(dir);
    offline
        .base
        .extend(["--transcript".into(), rotated.display().to_string()]);
    let r = offline.run(&["snapshot", "verify", snap.to_str().unwrap()]);
    r.expect(0)
        .stdout_has(&format!(
            "this snapshot needs the shares of the OLDER set {old_id} (from init "
        ))
        .stdout_has(&format!(
            "not the current set {new_id} (from rotate-shares "
        ))
        .stdout_has(&format!("  1. {} ", fpr("holder1")));
    let r = offline.run(&[
        "--format",
        "json",
        "snapshot",
        "verify",
        snap.to_str().unwrap(),
    ]);
    r.expect(0);
    assert_eq!(r.json()["verify"]["share_set"], old_id);
    assert_eq!(r.json()["current_share_set"], new_id);

    let tmp = tempfile::tempdir().unwrap();
    let mut restore = offline.with_token_file(ceremony_file);
    restore
        .env
        .push(("TMPDIR".into(), tmp.path().display().to_string()));
    let before = std::fs::read(&rotated).unwrap();
    let restore_test = |holder: &str| {
        let key = fixture(&format!("{holder}.sec.asc"));
        restore.run(&[
            "snapshot",
            "verify",
            snap.to_str().unwrap(),
            "--restore-test",
            "--plugin-bin",
            plugin_bin().to_str().unwrap(),
            "--share-file",
            share_file(&u.out, "holder1").to_str().unwrap(),
            "--secret-key",
            key.to_str().unwrap(),
        ])
    };
    // The operator holds a share of the current set, not of the one this snapshot needs.
    restore_test("operator")
        .expect(4)
        .stderr_has(&format!(
            "the key {} is not a holder of set {old_id} (3 of 5, from init ",
            fpr("operator")
        ))
        .stderr_has("nothing was sent");
    // Holder 1 is a holder, but one file is one share of the three, and no terminal asks for more.
    restore_test("holder1")
        .expect(2)
        .stderr_has("3 shares are needed and 1 given")
        .stderr_has("--share-stdin");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "no throwaway server was started"
    );
    assert_eq!(std::fs::read(&rotated).unwrap(), before, "nothing recorded");
}

/// Damage of every kind: exit 3 (or 1 for not a snapshot), naming it, writing nothing.
fn step_damage_of_every_kind_refused_and_unrecorded(u: &Unsealed, snap: &Path) {
    let dir = u.dir();
    let offline = Custody::new(dir);
    let transcript = dir.join("custody-transcript.jsonl");
    let before = std::fs::read(&transcript).unwrap();
    let bytes = std::fs::read(snap).unwrap();
    let damaged = |name: &str, data: &[u8], with_manifest: bool| {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        if with_manifest {
            std::fs::copy(
                dir.join("blue.snap.manifest.json"),
                dir.join(format!("{name}.manifest.json")),
            )
            .unwrap();
        }
        p
    };
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    let cases: Vec<(std::path::PathBuf, i32, &str)> = vec![
        (damaged("flipped.snap", &flipped, false), 3, "damaged"),
        (
            damaged("truncated.snap", &bytes[..bytes.len() * 2 / 3], false),
            3,
            "damaged",
        ),
        (damaged("copy.snap", &bytes, true), 0, ""),
        (damaged("empty.snap", b"", false), 1, "empty"),
        (
            damaged(
                "random.snap",
                &(0..5000u32)
                    .map(|i| (i * 7919 % 251) as u8)
                    .collect::<Vec<_>>(),
                false,
            ),
            1,
            "not a Raft snapshot",
        ),
    ];
    for (p, code, needle) in &cases {
        let r = offline.run(&["snapshot", "verify", p.to_str().unwrap()]);
        assert_eq!(r.code(), *code, "{}: {}", p.display(), r.stderr());
        assert!(
            r.stderr().contains(needle),
            "{}: {}",
            p.display(),
            r.stderr()
        );
    }
    // A manifest that names another sha256.
    let copy = dir.join("copy.snap");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("copy.snap.manifest.json")).unwrap())
            .unwrap();
    m["sha256"] = json!("00".repeat(32));
    std::fs::write(
        dir.join("copy.snap.manifest.json"),
        serde_json::to_vec(&m).unwrap(),
    )
    .unwrap();
    offline
        .run(&["snapshot", "verify", copy.to_str().unwrap()])
        .expect(3)
        .stderr_has("sha256");
    // A tar with a member missing (state.bin), its SHA256SUMS still listing it.
    let missing = dir.join("missing.snap");
    write_without_state_bin(&bytes, &missing);
    offline
        .run(&["snapshot", "verify", missing.to_str().unwrap()])
        .expect(3)
        .stderr_has("state.bin is missing");
    let after_damage = std::fs::read(&transcript).unwrap();
    let added: Vec<&str> = std::str::from_utf8(&after_damage[before.len()..])
        .unwrap()
        .lines()
        .collect();
    assert_eq!(
        added.len(),
        1,
        "only the good copy's verify is recorded: {added:?}"
    );
}

/// A snapshot is trusted only when its manifest says so, as OpenBao wrote it (one gzip member),
/// and as the transcript recorded its save: each refusal exits 3, says why, and records nothing.
fn step_trusted_only_by_its_manifest_and_its_recorded_save(u: &Unsealed, snap: &Path) {
    let dir = u.dir();
    let offline = Custody::new(dir);
    let transcript = dir.join("custody-transcript.jsonl");
    let bytes = std::fs::read(snap).unwrap();

    // A real snapshot from OpenBao is one gzip member: nothing follows it.
    let mut first = flate2::bufread::GzDecoder::new(&bytes[..]);
    let mut tar_bytes = Vec::new();
    std::io::Read::read_to_end(&mut first, &mut tar_bytes).unwrap();
    assert!(
        first.into_inner().is_empty(),
        "OpenBao's snapshot has more than one gzip member"
    );

    let before = std::fs::read(&transcript).unwrap();
    // Without its manifest: refused, unless --no-manifest, which says what was checked.
    let bare = dir.join("bare.snap");
    std::fs::write(&bare, &bytes).unwrap();
    offline
        .run(&["snapshot", "verify", bare.to_str().unwrap()])
        .expect(3)
        .stderr_has("no manifest")
        .stderr_has("--no-manifest");
    // Two gzip members: the real snapshot and a member appended (Go's reader would read on).
    let two = dir.join("two.snap");
    let mut appended = flate2::write::GzEncoder::new(bytes.clone(), flate2::Compression::fast());
    appended.write_all(&tar_bytes).unwrap();
    std::fs::write(&two, appended.finish().unwrap()).unwrap();
    offline
        .run(&["snapshot", "verify", "--no-manifest", two.to_str().unwrap()])
        .expect(3)
        .stderr_has("more bytes follow its gzip member")
        .stderr_has("one gzip member");
    // The same archive, gzip'd again (so another sha256) under the saved name in another
    // directory, with a manifest that agrees with it: the transcript's save of blue.snap says
    // otherwise.
    let other_dir = dir.join("elsewhere");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = other_dir.join("blue.snap");
    let mut regz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    regz.write_all(&tar_bytes).unwrap();
    let regz = regz.finish().unwrap();
    assert_ne!(regz, bytes);
    std::fs::write(&other, &regz).unwrap();
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("blue.snap.manifest.json")).unwrap())
            .unwrap();
    m["sha256"] = json!(support::plugin::sha256_file(&other));
    m["size"] = json!(regz.len());
    std::fs::write(
        other_dir.join("blue.snap.manifest.json"),
        serde_json::to_vec(&m).unwrap(),
    )
    .unwrap();
    for explicit in [false, true] {
        let mut args = vec![];
        if explicit {
            args.extend(["--transcript", transcript.to_str().unwrap()]);
        }
        args.extend(["snapshot", "verify", other.to_str().unwrap()]);
        offline
            .run(&args)
            .expect(3)
            .stderr_has(&format!("sha256 {}", support::plugin::sha256_file(snap)))
            .stderr_has("is not a snapshot the transcript")
            .stderr_has("it records no save of these bytes")
            .stderr_has("--allow-older");
    }
    assert_eq!(
        std::fs::read(&transcript).unwrap(),
        before,
        "no refusal is recorded"
    );

    // --no-manifest: the archive alone, said so; a file of a name never saved is still found
    // by its bytes' sha256 as blue.snap's save.
    let r = offline.run(&[
        "--format",
        "json",
        "snapshot",
        "verify",
        "--no-manifest",
        bare.to_str().unwrap(),
    ]);
    r.expect(0);
    assert_eq!(r.json()["verify"]["manifest"], false);
    assert_eq!(r.json()["verify"]["no_manifest"], true);
    assert_eq!(r.json()["verify"]["recorded_save"]["file"], "blue.snap");
    assert_eq!(r.json()["verify"]["age"], "newest");
    let r = offline.run(&[
        "snapshot",
        "verify",
        "--no-manifest",
        bare.to_str().unwrap(),
    ]);
    r.expect(0);
    assert!(
        r.stdout()
            .contains("only the archive's internal consistency was checked"),
        "{}",
        r.stdout()
    );
    assert!(
        r.stdout()
            .contains("these bytes are the newest recorded save of cluster ")
            && r.stdout().contains(": blue.snap: raft index "),
        "{}",
        r.stdout()
    );
    // --restore-test still needs the manifest.
    offline
        .run(&[
            "snapshot",
            "verify",
            "--no-manifest",
            "--restore-test",
            "--plugin-bin",
            plugin_bin().to_str().unwrap(),
            bare.to_str().unwrap(),
        ])
        .expect(2)
        .stderr_has("--restore-test");
}

/// `bytes` (a snapshot) rewritten to `missing` without its state.bin member, its SHA256SUMS
/// still listing it.
fn write_without_state_bin(bytes: &[u8], missing: &Path) {
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(missing).unwrap(),
        flate2::Compression::fast(),
    );
    let mut builder = tar::Builder::new(gz);
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("state.bin") {
            continue;
        }
        let mut header = entry.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        let path = entry.path().unwrap().into_owned();
        builder.append_data(&mut header, path, &data[..]).unwrap();
    }
    builder
        .into_inner()
        .unwrap()
        .finish()
        .unwrap()
        .flush()
        .unwrap();
}

/// Restore refused over the source cluster.
fn step_restore_refused_over_the_source_cluster(as_root: &Custody, snap: &Path) {
    as_root
        .run(&["snapshot", "restore", snap.to_str().unwrap()])
        .expect(4)
        .stderr_has("came from");
}

/// Restore refused while a Raft peer of the target is not a healthy voter (a follower that is
/// behind would keep the target's old keys); even --force does not skip it.
fn step_restore_refused_while_a_peer_is_not_a_healthy_voter(
    u: &mut Unsealed,
    as_root: &Custody,
    snap: &Path,
) {
    let root_text = u.root_token.clone();
    let blue = &mut u.cluster;
    let active = active_node(blue).expect("blue has an active node");
    let follower = (0..3).find(|i| *i != active).unwrap();
    blue.stop_node(follower);
    let blue_api = Api::new(blue, active, &root_text);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while blue_api.read("sys/storage/raft/autopilot/state").1["data"]["healthy"] != false {
        assert!(
            std::time::Instant::now() < deadline,
            "autopilot never marked the stopped follower unhealthy"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let r = as_root.run(&[
        "snapshot",
        "restore",
        "--force",
        "--peer-wait",
        "2",
        snap.to_str().unwrap(),
    ]);
    r.expect(4)
        .stderr_has("not every Raft peer of the target is a healthy voter")
        .stderr_has(&format!("node{} (", follower + 1))
        .stderr_has("Nothing was changed");
    assert_eq!(
        blue_api.read("sys/health").0,
        200,
        "blue is still active and unsealed"
    );
    assert_eq!(blue_api.ok("GET", "kv/entry-299", None)["value"], "v299");
}

fn transcript(dir: &Path) -> PathBuf {
    dir.join("custody-transcript.jsonl")
}

/// What a refused restore must leave alone: green's seal, and its mounts as its own root token
/// reads them.
fn green_state(green: &Green) -> (Vec<(bool, bool)>, u16, Vec<String>) {
    let seal = (seal_status(&green.cluster).iter())
        .map(|s| (s.initialized, s.sealed))
        .collect();
    let root = std::fs::read_to_string(&green.root_file).unwrap();
    let (status, mounts) = Api::new(&green.cluster, 0, root.trim()).read("sys/mounts");
    let mut names: Vec<String> = mounts["data"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    (seal, status, names)
}

/// A second save of blue makes blue.snap older. Its verify and restore, even of a renamed copy
/// with or without its manifest, are refused (exit 3) naming both saves by raft index, time and
/// sha256, recording nothing and leaving green as it was; so is `restore --verify`. The newer
/// blue2.snap, never verified, is refused by restore (exit 4). `verify --allow-older` passes
/// and records the newer save it passed over. The newer snapshot's path.
fn step_a_newer_save_makes_the_first_older(
    u: &Unsealed,
    as_root: &Custody,
    snap: &Path,
    green: &Green,
) -> PathBuf {
    let dir = u.dir();
    let newer = dir.join("blue2.snap");
    as_root
        .run(&["snapshot", "save", "--out", newer.to_str().unwrap()])
        .expect(0);
    let t = transcript(dir);
    let (_, entries) = custody::transcript::read_verified(&t).unwrap();
    let save_of = |file: &str| {
        entries
            .iter()
            .rev()
            .find(|e| e["step"] == "save" && e["facts"]["file"] == file)
            .unwrap()
            .clone()
    };
    let (old, new) = (save_of("blue.snap"), save_of("blue2.snap"));
    assert_eq!(old["facts"]["cluster_id"], new["facts"]["cluster_id"]);
    let described = |e: &serde_json::Value| {
        format!(
            "{}: raft index {}, saved {}, sha256 {} (transcript entry {})",
            e["facts"]["file"].as_str().unwrap(),
            e["facts"]["raft_index"],
            e["time"].as_str().unwrap(),
            e["facts"]["sha256"].as_str().unwrap(),
            e["seq"]
        )
    };
    let (old_save, new_save) = (described(&old), described(&new));
    assert!(new["facts"]["raft_index"].as_u64() > old["facts"]["raft_index"].as_u64());
    let before = std::fs::read(&t).unwrap();

    let renamed = dir.join("renamed.snap");
    std::fs::copy(snap, &renamed).unwrap();
    std::fs::copy(
        dir.join("blue.snap.manifest.json"),
        dir.join("renamed.snap.manifest.json"),
    )
    .unwrap();
    let bare = dir.join("renamed-bare.snap");
    std::fs::copy(snap, &bare).unwrap();
    let older = |r: &Run, unchanged: &str| {
        r.expect(3)
            .stderr_has("is an OLDER snapshot of cluster ")
            .stderr_has(&format!("these bytes are the save {old_save}"))
            .stderr_has("the newest save of that cluster the transcript ")
            .stderr_has(&new_save)
            .stderr_has("--allow-older")
            .stderr_has(unchanged);
    };
    let offline = Custody::new(dir);
    for file in [snap, renamed.as_path()] {
        older(
            &offline.run(&["snapshot", "verify", file.to_str().unwrap()]),
            "Nothing was recorded",
        );
    }
    older(
        &offline.run(&[
            "snapshot",
            "verify",
            "--no-manifest",
            bare.to_str().unwrap(),
        ]),
        "Nothing was recorded",
    );

    let as_green = green.custody(dir).with_token_file(&green.root_file);
    let green_before = green_state(green);
    assert_eq!(green_before.1, 200, "{green_before:?}");
    for args in [
        vec![snap.to_str().unwrap()],
        vec![snap.to_str().unwrap(), "--verify"],
        vec![renamed.to_str().unwrap()],
    ] {
        let mut all = vec!["snapshot", "restore"];
        all.extend(args);
        older(&as_green.run(&all), "Nothing was changed");
    }
    as_green
        .run(&["snapshot", "restore", newer.to_str().unwrap()])
        .expect(4)
        .stderr_has(&format!(
            "(sha256 {}) has no passed `snapshot verify` in the transcript",
            new["facts"]["sha256"].as_str().unwrap()
        ))
        .stderr_has("--verify")
        .stderr_has("Nothing was changed");
    assert_eq!(green_state(green), green_before, "green was left alone");
    assert_eq!(std::fs::read(&t).unwrap(), before, "nothing was recorded");

    let r = offline.run(&[
        "--format",
        "json",
        "snapshot",
        "verify",
        snap.to_str().unwrap(),
        "--allow-older",
    ]);
    r.expect(0);
    let v = &r.json()["verify"];
    assert_eq!(v["age"], "older");
    assert_eq!(v["allow_older"], true);
    assert_eq!(v["recorded_save"]["seq"], old["seq"]);
    assert_eq!(v["passed_over"][0]["seq"], new["seq"]);
    assert_eq!(v["passed_over"][0]["sha256"], new["facts"]["sha256"]);
    let (_, after) = custody::transcript::read_verified(&t).unwrap();
    assert_eq!(after.len(), entries.len() + 1);
    assert_eq!(
        after.last().unwrap()["facts"],
        *v,
        "the line records what it printed"
    );
    newer
}

/// `restore --verify`: blue2.snap, never verified, restored into a fresh green after the
/// offline verification it runs and records just before the upload; the original quorum
/// unseals it.
fn step_restore_with_its_own_verification(u: &Unsealed, newer: &Path) {
    let dir = u.dir();
    let green = green_cluster(dir);
    let r = green.custody(dir).with_token_file(&green.root_file).run(&[
        "--format",
        "json",
        "snapshot",
        "restore",
        newer.to_str().unwrap(),
        "--verify",
    ]);
    r.expect(0);
    let restore = &r.json()["restore"];
    assert_eq!(restore["verified"]["by"], "restore --verify");
    assert_eq!(restore["age"], "newest");
    assert_eq!(restore["allow_older"], false);
    let (_, entries) = custody::transcript::read_verified(&transcript(dir)).unwrap();
    let seq = restore["verified"]["seq"].as_u64().unwrap() as usize;
    assert_eq!(
        entries.len(),
        seq + 2,
        "the verify line, then the restore's"
    );
    let verify = &entries[seq];
    assert_eq!(
        (&verify["ceremony"], &verify["step"]),
        (&json!("snapshot"), &json!("verify"))
    );
    assert_eq!(verify["facts"]["sha256"], restore["sha256"]);
    assert_eq!(verify["facts"]["age"], "newest");
    assert_eq!(entries[seq + 1]["step"], "restore");
    green
        .custody(dir)
        .run_stdin(&["unseal", "--share-stdin"], Some(u.quorum.as_bytes()))
        .expect(0);
}

/// Green (a second cluster, initialized by its own throwaway key) restored from the older
/// snapshot with --allow-older, which its restore line records with the newer save passed over.
fn step_restore_into_green_opened_by_the_original_quorum(
    u: &Unsealed,
    snap: &Path,
    address: &str,
    green: &Green,
) {
    let dir = u.dir();
    let (quorum, root_file, root_text) = (&u.quorum, &u.root_file, &u.root_token);
    let green_keys = &green.keys;
    let g = green.custody(dir);
    let r = g.with_token_file(&green.root_file).run(&[
        "snapshot",
        "restore",
        snap.to_str().unwrap(),
        "--allow-older",
    ]);
    r.expect(0)
        .stdout_has("ORIGINAL quorum")
        .stdout_has("an OLDER snapshot of cluster ")
        .stdout_has(", accepted with --allow-older: these bytes are the save blue.snap: ")
        .stdout_has("the newer save passed over is blue2.snap: ")
        .stdout_has(
            "Verified before: `snapshot verify` of these bytes passed at transcript entry ",
        );
    let (_, entries) = custody::transcript::read_verified(&transcript(dir)).unwrap();
    let line = entries.last().unwrap();
    assert_eq!(line["step"], "restore");
    let restore = &line["facts"];
    assert_eq!(restore["age"], "older");
    assert_eq!(restore["allow_older"], true);
    assert_eq!(restore["passed_over"][0]["file"], "blue2.snap");
    assert_eq!(restore["verified"]["by"], "snapshot verify");
    // Green declares blue's audit device as blue did: checked before the upload, recorded.
    assert_eq!(restore["audit_devices"]["checked"], true, "{restore}");
    assert_eq!(restore["audit_devices"]["devices"][0]["path"], "file/");
    let by = &entries[restore["verified"]["seq"].as_u64().unwrap() as usize];
    assert_eq!(
        (
            &by["step"],
            &by["facts"]["sha256"],
            &by["facts"]["allow_older"]
        ),
        (&json!("verify"), &restore["sha256"], &json!(true)),
        "the passed verify it relied on is the one given --allow-older"
    );
    // The target's own share no longer opens it; the source's quorum does.
    let own = format!("{}\n{}\n{}\n", green_keys[0], green_keys[1], green_keys[2]);
    g.run_stdin(&["unseal", "--share-stdin"], Some(own.as_bytes()))
        .expect(3)
        .stderr_has("throwaway init");
    g.run_stdin(&["unseal", "--share-stdin"], Some(quorum.as_bytes()))
        .expect(0);
    let as_blue_root_on_green = g.with_token_file(root_file);
    let r = as_blue_root_on_green.run(&["--format", "json", "wallet", "show", "authority"]);
    r.expect(0);
    assert_eq!(r.json()["account"]["address"], address);
    let green_api = Api::new(&green.cluster, 0, root_text);
    assert_eq!(green_api.ok("GET", "kv/entry-299", None)["value"], "v299");
}
