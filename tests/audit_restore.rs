//! Audit devices across a restore, on real clusters: blue declares two file devices (`file/`,
//! relative, and `second/`, at an absolute path); its snapshot's manifest records them; a restore
//! test refuses the absolute one (it would append to a file of this machine); `snapshot restore`
//! refuses a green that declares `file/` otherwise, and one that lacks `second/`, naming the
//! stanzas; the same snapshot forced in by hand (`bao operator raft snapshot restore -force`)
//! leaves the first green with no active node, which `unseal` reports as a failure, and the second
//! with `second/` silently disabled, which the cutover's pre-flight refuses.

use custody_test_support as support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use support::plugin::{Api, init_plain_n, plugin_bin};
use support::*;

use custody::localcluster::ClusterSpec;

/// Blue's stanzas: `file/` as every custody cluster declares it, and `second/` at `abs`.
fn blue_stanzas(abs: &Path) -> String {
    format!(
        "{}audit \"file\" \"second\" {{\n  options {{\n    file_path = \"{}\"\n  }}\n}}\n",
        custody::localcluster::AUDIT_STANZA,
        abs.display()
    )
}

struct Green {
    cluster: TestCluster,
    root_file: PathBuf,
}

/// A green of `nodes` nodes split as blue is (3 of 5), declaring `audit` on each, every node
/// unsealed (the followers joined), its root token in a file.
fn green(dir: &Path, name: &str, nodes: usize, audit: String) -> Green {
    let cluster = cluster_with(ClusterSpec {
        audit: Some(audit),
        ..ClusterSpec::raft(name, nodes, bao_bin())
    });
    let (root, keys) = init_plain_n(&cluster, 5, 3);
    for i in 1..nodes {
        let api = Api::new(&cluster, i, "");
        let deadline = Instant::now() + Duration::from_secs(60);
        while seal_status(&cluster)[i].sealed {
            assert!(Instant::now() < deadline, "{name} node {i} never joined");
            for k in &keys[..3] {
                let _ = api.write("sys/unseal", json!({ "key": k }));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let root_file = dir.join(format!("{name}-root.token"));
    std::fs::write(&root_file, &root).unwrap();
    Green { cluster, root_file }
}

#[test]
fn audit_devices_are_carried_checked_and_refused_across_a_restore() {
    let logs = tempfile::tempdir().unwrap();
    let abs = logs.path().join("second").join("audit.log");
    let u = init_and_unseal(
        cluster_with(ClusterSpec {
            audit: Some(blue_stanzas(&abs)),
            ..ClusterSpec::raft("blue", 1, bao_bin())
        }),
        &["holder1", "holder3", "holder5", "operator"],
    );
    let as_root = u.custody.with_token_file(&u.root_file);
    let snap = step_save_records_the_devices(&u, &as_root, &abs);
    step_a_restore_test_refuses_an_absolute_file_path(&u, &as_root, &snap, &abs);

    let dir = u.dir();
    let other_path = green(
        dir,
        "green-a",
        3,
        format!(
            "audit \"file\" \"file\" {{\n  options {{\n    file_path = \"green.log\"\n  }}\n}}\n\
             audit \"file\" \"second\" {{\n  options {{\n    file_path = \"{}\"\n  }}\n}}\n",
            abs.display()
        ),
    );
    let missing = green(
        dir,
        "green-b",
        1,
        custody::localcluster::AUDIT_STANZA.to_owned(),
    );
    step_restore_refuses_a_target_with_other_options(&u, &snap, &other_path);
    step_restore_refuses_a_target_missing_a_device(&u, &snap, &missing, &abs);
    step_forced_in_by_hand_unseal_says_no_node_became_active(&u, &snap, &other_path);
    step_forced_in_by_hand_the_cutover_refuses_fewer_devices(&u, &snap, &missing);
}

/// The manifest (and the save's line) records both devices, as blue's `sys/audit` lists them.
fn step_save_records_the_devices(u: &Unsealed, as_root: &Custody, abs: &Path) -> PathBuf {
    let snap = u.dir().join("blue.snap");
    // The text report first; the JSON save is the newest, the one restored.
    let text = as_root.run(&[
        "snapshot",
        "save",
        "--out",
        u.dir().join("blue-text.snap").to_str().unwrap(),
    ]);
    text.expect(0).stdout_has(&format!(
        "Audit devices recorded: file/ (file, file_path audit.log), second/ (file, file_path {})",
        abs.display()
    ));
    let r = as_root.run(&[
        "--format",
        "json",
        "snapshot",
        "save",
        "--out",
        snap.to_str().unwrap(),
    ]);
    r.expect(0);
    let devices = &r.json()["manifest"]["audit_devices"];
    assert_eq!(devices[0]["path"], "file/", "{devices}");
    assert_eq!(devices[0]["type"], "file");
    assert_eq!(devices[0]["options"]["file_path"], "audit.log");
    assert_eq!(devices[1]["path"], "second/");
    assert_eq!(
        devices[1]["options"]["file_path"],
        abs.display().to_string()
    );
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(u.dir().join("blue.snap.manifest.json")).unwrap())
            .unwrap();
    assert_eq!(on_disk["audit_devices"], *devices);
    let save = transcript_lines(&u.dir().join("custody-transcript.jsonl"))
        .pop()
        .unwrap();
    assert_eq!(save["facts"]["audit_devices"], *devices);
    // A restore needs a passed verify of these bytes in the transcript.
    Custody::new(u.dir())
        .run(&["snapshot", "verify", snap.to_str().unwrap()])
        .expect(0);
    snap
}

/// The throwaway would open `second/` at its absolute path on this machine (blue's own log,
/// here): refused before any server starts, the file untouched, nothing recorded.
fn step_a_restore_test_refuses_an_absolute_file_path(
    u: &Unsealed,
    as_root: &Custody,
    snap: &Path,
    abs: &Path,
) {
    let before = std::fs::read(abs).unwrap();
    let lines = transcript_lines(&u.dir().join("custody-transcript.jsonl")).len();
    let mut args: Vec<String> = [
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
    let r = as_root.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    r.expect(4)
        .stderr_has(&format!(
            "second/ appends to {} on this machine",
            abs.display()
        ))
        .stderr_has("Nothing was started")
        .stderr_has("relative file_path");
    assert!(
        !r.stderr().contains("The throwaway server runs"),
        "{}",
        r.stderr()
    );
    assert_eq!(std::fs::read(abs).unwrap(), before, "the log was touched");
    assert_eq!(
        transcript_lines(&u.dir().join("custody-transcript.jsonl")).len(),
        lines
    );
}

/// What a refused restore must leave alone: the target still unsealed, its own root token
/// valid, its own devices, and no restore line.
fn unchanged(u: &Unsealed, g: &Green, file_path: &str) {
    let root = std::fs::read_to_string(&g.root_file).unwrap();
    let api = Api::new(&g.cluster, 0, root.trim());
    let devices = api.ok("GET", "sys/audit", None);
    assert_eq!(
        devices["file/"]["options"]["file_path"], file_path,
        "{devices}"
    );
    let lines = transcript_lines(&u.dir().join("custody-transcript.jsonl"));
    assert!(
        lines.iter().all(|l| l["step"] != "restore"),
        "a refused restore was recorded"
    );
}

fn restore(u: &Unsealed, snap: &Path, g: &Green) -> Run {
    Custody::for_cluster(u.dir(), &g.cluster)
        .with_token_file(&g.root_file)
        .run(&["snapshot", "restore", snap.to_str().unwrap()])
}

fn step_restore_refuses_a_target_with_other_options(u: &Unsealed, snap: &Path, g: &Green) {
    restore(u, snap, g)
        .expect(4)
        .stderr_has("the target does not declare the snapshot's audit devices")
        .stderr_has(
            r#"file/ differs on the target: option file_path is "green.log" on the target, "audit.log" on the source"#,
        )
        .stderr_has("modifications to audit devices are not allowed")
        .stderr_has("Nothing was restored")
        .stderr_has("audit \"file\" \"file\" {\n  options {\n    file_path = \"audit.log\"\n  }\n}");
    unchanged(u, g, "green.log");
}

fn step_restore_refuses_a_target_missing_a_device(
    u: &Unsealed,
    snap: &Path,
    g: &Green,
    abs: &Path,
) {
    restore(u, snap, g)
        .expect(4)
        .stderr_has(&format!(
            "second/ (file, file_path {}) is missing on the target",
            abs.display()
        ))
        .stderr_has("silently ending the source's audit")
        .stderr_has(&format!(
            "audit \"file\" \"second\" {{\n  options {{\n    file_path = \"{}\"\n  }}\n}}",
            abs.display()
        ));
    unchanged(u, g, "audit.log");
}

/// `bao operator raft snapshot restore -force`, as a hand-made restore would: the node seals
/// itself (its keys are not the snapshot's).
fn force_restore_by_hand(g: &Green, snap: &Path) {
    let root = std::fs::read_to_string(&g.root_file).unwrap();
    let out = Command::new(bao_bin())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", g.cluster.dir())
        .env("BAO_ADDR", g.cluster.nodes[0].addr().to_string())
        .env("BAO_CACERT", &g.cluster.ca_cert)
        .env("BAO_TOKEN", root.trim())
        .args(["operator", "raft", "snapshot", "restore", "-force"])
        .arg(snap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bao operator raft snapshot restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seal_status(&g.cluster).iter().all(|s| s.sealed) {
        assert!(Instant::now() < deadline, "the restored node did not seal");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn unseal(u: &Unsealed, g: &Green) -> Run {
    let mut args = vec!["unseal".to_owned(), "--share-stdin".to_owned()];
    for n in &g.cluster.nodes {
        args.extend(["--new-node".to_owned(), n.addr().to_string()]);
    }
    Custody::for_cluster(u.dir(), &g.cluster).run_stdin(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        Some(u.quorum.as_bytes()),
    )
}

/// Green (three nodes) declares `file/` with another file_path: after the forced restore the
/// quorum unseals all three, their post-unseal setup fails, no node becomes active; unseal fails (exit 1) saying so and
/// where to look, and the server's log says why.
fn step_forced_in_by_hand_unseal_says_no_node_became_active(u: &Unsealed, snap: &Path, g: &Green) {
    force_restore_by_hand(g, snap);
    let r = unseal(u, g);
    r.expect(1)
        .stdout_has("unsealed")
        .stdout_has("NO node became active within")
        .stderr_has("the nodes are unsealed (")
        .stderr_has("but none became active within")
        .stderr_has("post-unseal setup failed")
        .stderr_has("each node's server log on its host");
    for n in &g.cluster.nodes {
        r.stdout_has(&format!("{}  unsealed\n", n.addr()));
    }
    let logs = g.cluster.logs();
    assert!(
        logs.contains("modifications to audit devices are not allowed"),
        "the servers' logs do not say why: {logs}"
    );
    for i in 0..3 {
        assert_eq!(
            Api::new(&g.cluster, i, "").read("sys/health").0,
            429,
            "node {i} is an unsealed standby"
        );
    }
    let line = transcript_lines(&u.dir().join("custody-transcript.jsonl"))
        .pop()
        .unwrap();
    assert_eq!(line["step"], "sys/unseal");
    assert_eq!(line["facts"]["active"], json!(null));
}

/// Green declares only `file/`: after the forced restore its active node disabled blue's
/// `second/` silently. unseal succeeds (an active node); the cutover's pre-flight refuses green
/// (fewer devices than blue), naming `second/` and its stanza, before anything changes.
fn step_forced_in_by_hand_the_cutover_refuses_fewer_devices(u: &Unsealed, snap: &Path, g: &Green) {
    force_restore_by_hand(g, snap);
    let green_addr = g.cluster.nodes[0].addr().to_string();
    unseal(u, g)
        .expect(0)
        .stdout_has(&format!("Active node: {green_addr}"));
    let line = transcript_lines(&u.dir().join("custody-transcript.jsonl"))
        .pop()
        .unwrap();
    assert_eq!(line["facts"]["active"], green_addr.as_str());
    let api = Api::new(&g.cluster, 0, &u.root_token);
    let devices = api.ok("GET", "sys/audit", None);
    assert!(devices.get("second/").is_none(), "{devices}");

    let dir = u.dir();
    let both_ca = ca_bundle(
        &dir.join("both-ca.pem"),
        &[&u.cluster.ca_cert, &g.cluster.ca_cert],
    );
    let blue_addr = u.cluster.nodes[0].addr().to_string();
    let operator = Custody::with_ca_and_token(dir, &both_ca, &u.root_file);
    let touched = dir.join("lb-was-run");
    let lb = format!("exec:touch {}", touched.display());
    operator
        .run(&[
            "cutover",
            "--from",
            &blue_addr,
            "--to",
            &green_addr,
            "--lb",
            &lb,
            "--lb-url",
            &green_addr,
        ])
        .expect(4)
        .stderr_has("green's audit devices are not blue's: blue has 2")
        .stderr_has("green 1 (file/ (file, file_path audit.log))")
        .stderr_has("second/ (file, file_path ")
        .stderr_has("is missing on green")
        .stderr_has("nothing was switched")
        .stderr_has("audit \"file\" \"second\" {");
    assert!(!touched.exists(), "the balancer was asked to switch");
}
