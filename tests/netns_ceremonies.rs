//! Ceremonies on a real network with a fault (`support::netns`: each OpenBao node in its own
//! network namespace, the test process the client): what custody does when a node is cut off
//! in the middle of one, and that nothing is lost once the fault heals.

use custody_test_support as support;

use std::time::Duration;

use support::netns::{NetCluster, wait};
use support::*;

/// Each fault's bound: healed by then even if the test forgets.
const BOUND: Duration = Duration::from_secs(120);
const SETTLE: Duration = Duration::from_secs(60);

/// Holders 1, 3 and 5's shares, decrypted by their own gpg, one a line (`--share-stdin`).
fn quorum(out: &std::path::Path) -> String {
    let gpg = Gpg::with_secret_keys(&["holder1", "holder3", "holder5"]);
    ["holder1", "holder3", "holder5"]
        .iter()
        .map(|h| plain_share(&gpg, out, h))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[test]
fn unseal_with_a_node_cut_off_unseals_the_others_and_names_it_then_the_same_shares_unseal_it() {
    let c = NetCluster::start(ClusterSpec::raft("nsunseal", 3, bao_bin()));
    c.net();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("shares");
    let custody = Custody::for_cluster(work.path(), &c.cluster);
    let init = init_five_holders(&out);
    custody
        .run(&init.iter().map(String::as_str).collect::<Vec<_>>())
        .expect(0);
    let shares = quorum(&out);

    let cut = c.isolate_node(2, BOUND);
    let r = custody.run_stdin(
        &["--format", "json", "unseal", "--share-stdin"],
        Some(shares.as_bytes()),
    );
    eprintln!(
        "unseal with node 2 cut off: exit {}\n{}\n{}",
        r.code(),
        r.stdout(),
        r.stderr()
    );
    r.expect(1)
        .stderr_has("1 node(s) did not answer; the others were served");
    let nodes = r.json()["unseal"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let states: Vec<&str> = nodes
        .iter()
        .map(|n| n["state"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(states, ["unsealed", "unsealed", "down"], "{}", r.stdout());
    assert_eq!(
        nodes[2]["given"],
        serde_json::json!([]),
        "no share sent to the cut-off node"
    );
    let seal = |i: usize| c.call(i, "GET", "sys/seal-status", None, None);
    for i in [0, 1] {
        let (_, v) = seal(i).expect("a node that is not cut off answers");
        assert_eq!(v["sealed"], false, "node {i} unsealed: {v}");
    }
    assert!(seal(2).is_err(), "node 2 is cut off");
    cut.heal();

    wait(SETTLE, || seal(2).is_ok()).expect("node 2 answers once healed");
    let again = custody.run_stdin(&["unseal", "--share-stdin"], Some(shares.as_bytes()));
    eprintln!(
        "unseal after healing: exit {}\n{}\n{}",
        again.code(),
        again.stdout(),
        again.stderr()
    );
    again.expect(0).stdout_has("unsealed");
    let (_, v) = seal(2).unwrap();
    assert_eq!(
        v["sealed"], false,
        "node 2 unsealed by the same shares: {v}"
    );
}

/// Some megabytes of data no compression shrinks, in the kv mount, so that the snapshot
/// streams for a while over a slow link.
fn fill(c: &NetCluster, a: usize, root: &str, entries: usize) {
    let (status, v) = c
        .call(
            a,
            "POST",
            "sys/mounts/kv",
            Some(root),
            Some(serde_json::json!({ "type": "kv" })),
        )
        .unwrap();
    assert_eq!(status, 204, "mounting kv: {v}");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for e in 0..entries {
        let bytes: Vec<u8> = (0..64 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let (status, v) = c
            .call(
                a,
                "POST",
                &format!("kv/blob-{e}"),
                Some(root),
                Some(serde_json::json!({ "v": hex::encode(bytes) })),
            )
            .unwrap();
        assert_eq!(status, 204, "writing kv/blob-{e}: {v}");
    }
}

#[test]
fn snapshot_save_through_an_active_node_isolated_mid_stream_is_refused_and_leaves_nothing() {
    let c = NetCluster::start(ClusterSpec::raft("nssnap", 3, bao_bin()));
    c.net();
    let (root, keys) = support::plugin::init_plain_n(&c.cluster, 1, 1);
    for i in [1, 2] {
        c.unseal_node(i, &keys, SETTLE);
    }
    c.wait_failure_tolerant(&root, SETTLE);
    let a = c.wait_active(SETTLE, None);
    fill(&c, a, &root, 48);

    let work = tempfile::tempdir().unwrap();
    let token = work.path().join("root.token");
    std::fs::write(&token, &root).unwrap();
    let custody = Custody::for_cluster(work.path(), &c.cluster).with_token_file(&token);
    let out = work.path().join("blue.snap");
    let partial = work.path().join("blue.snap.partial");
    let slow = c.throttle_to_client(a, 150, BOUND);
    let save = {
        let mut cmd = custody.command(&["snapshot", "save", "--out", out.to_str().unwrap()]);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    };
    wait(SETTLE, || {
        std::fs::metadata(&partial).is_ok_and(|m| m.len() > 256 * 1024)
    })
    .expect("the snapshot streams into its partial file");
    let cut = c.isolate_node(a, BOUND);
    let started = std::time::Instant::now();
    let done = save.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    eprintln!(
        "snapshot save, node {a} isolated mid-stream: exit {:?} after {:?}\n{stderr}",
        done.status.code(),
        started.elapsed()
    );
    assert_eq!(done.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stalled"), "{stderr}");
    assert!(!out.exists(), "no snapshot under its final name");
    assert!(!partial.exists(), "no partial file left");
    let left: Vec<_> = files_under(work.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("blue.snap"))
        .collect();
    assert!(left.is_empty(), "left: {left:?}");
    drop(cut);
    drop(slow);
}
