//! Ceremony 5 and blue-green phase 1 on real clusters: save from a 3-node cluster holding the
//! Authority and a few hundred KV entries, verify (offline and by a restore test), every kind of
//! damage refused, and a restore into a second cluster that only the original quorum unseals.

use custody_test_support as support;

use std::io::Write;

use serde_json::json;

use std::path::{Path, PathBuf};

use support::plugin::{Api, active_node, green_cluster, plugin_bin, plugin_cluster};
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
    step_verify_offline_then_by_a_restore_test(&u, &snap, &ceremony_file, &address);
    step_damage_of_every_kind_refused_and_unrecorded(&u, &snap);
    step_trusted_only_by_its_manifest_and_its_recorded_save(&u, &snap);
    step_restore_refused_over_the_source_cluster(&as_root, &snap);
    step_restore_refused_while_a_peer_is_not_a_healthy_voter(&mut u, &as_root, &snap);
    step_restore_into_green_opened_by_the_original_quorum(&u, &snap, &address);
}

/// The Authority, a ceremony token (kept valid in the snapshot), and 300 KV entries.
/// The Authority's address and the ceremony token's file.
fn step_authority_ceremony_token_and_kv_entries(
    u: &Unsealed,
    as_root: &Custody,
) -> (String, PathBuf) {
    let dir = u.dir();
    let (blue, gpg, root_text) = (&u.cluster, &u.gpg, &u.root_token);
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
    let ceremony_asc = dir.join("ceremony.asc");
    as_root
        .run(&[
            "root",
            "ceremony-token",
            "--pgp-key",
            fixture("operator.pub.asc").to_str().unwrap(),
            "--out",
            ceremony_asc.to_str().unwrap(),
        ])
        .expect(0);
    let ceremony_file = dir.join("ceremony.token");
    std::fs::write(&ceremony_file, gpg.decrypt(&ceremony_asc, None).trim()).unwrap();
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
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&snap).unwrap().permissions())
            & 0o777,
        0o600
    );
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("blue.snap.manifest.json")).unwrap())
            .unwrap();
    assert_eq!(on_disk["sha256"], support::plugin::sha256_file(&snap));
    as_root
        .run(&["snapshot", "save", "--out", snap.to_str().unwrap()])
        .expect(4)
        .stderr_has("never overwrites");

    snap
}

/// Verify offline (no server: no --addr at all), then by a restore test that must generate a
/// root token on the throwaway server with the ceremony token and the quorum.
fn step_verify_offline_then_by_a_restore_test(
    u: &Unsealed,
    snap: &Path,
    ceremony_file: &Path,
    address: &str,
) {
    let dir = u.dir();
    let quorum = &u.quorum;
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
    let mut by_ceremony = Custody::new(dir);
    by_ceremony
        .base
        .extend(["--token-file".into(), ceremony_file.display().to_string()]);
    let r = by_ceremony.run_stdin(
        &[
            "--format",
            "json",
            "snapshot",
            "verify",
            snap.to_str().unwrap(),
            "--restore-test",
            "--plugin-bin",
            plugin_bin().to_str().unwrap(),
            "--share-stdin",
        ],
        Some(quorum.as_bytes()),
    );
    r.expect(0);
    assert_eq!(r.json()["verify"]["restore_test"]["address"], address);
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
            .stderr_has("not the snapshot that was saved");
    }
    assert_eq!(
        std::fs::read(&transcript).unwrap(),
        before,
        "no refusal is recorded"
    );

    // --no-manifest: the archive alone, said so; a file of a name never saved is said so too.
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
    assert_eq!(r.json()["verify"]["recorded_save"], "none recorded");
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
        r.stdout().contains("no save of bare.snap recorded"),
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

/// Green: a second cluster, initialized by its own throwaway key.
fn step_restore_into_green_opened_by_the_original_quorum(u: &Unsealed, snap: &Path, address: &str) {
    let dir = u.dir();
    let (quorum, root_file, root_text) = (&u.quorum, &u.root_file, &u.root_token);
    let green = green_cluster(dir);
    let green_keys = &green.keys;
    let g = green.custody(dir);
    let r = green.restore(dir, snap);
    r.expect(0);
    assert!(r.stdout().contains("ORIGINAL quorum"), "{}", r.stdout());
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
