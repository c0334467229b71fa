//! Tests that pull the plug on real OpenBao nodes in the middle of a ceremony: the ceremony
//! fails clearly, leaves nothing half-done under a final name, and a rerun completes it.

use custody_test_support as support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::*;

/// Sends `sig` to node `i`'s server process.
fn signal(cluster: &TestCluster, i: usize, sig: i32) {
    let pid = cluster.nodes[i].pid().expect("the node runs");
    // SAFETY: kill(2) on a server this test started.
    unsafe { libc::kill(pid as i32, sig) };
}

/// Polls `what` every 100 ms until it holds, up to `bound`.
#[track_caller]
fn wait_until(bound: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {bound:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_node_killed_during_unseal_or_snapshot_save() {
    let mut u = init_and_unseal(
        cluster("faults", 3),
        &["holder1", "holder3", "holder5", "operator"],
    );
    step_node_killed_during_unseal(&mut u);
    step_active_node_killed_during_snapshot_save(&mut u);
}

/// The cluster restarted (every node sealed); node 3 frozen, so custody's unseal waits on it
/// after serving nodes 1 and 2; node 3 killed then. The others are unsealed, the report names
/// the dead node, exit 1; node 3 restarted, a rerun unseals it.
fn step_node_killed_during_unseal(u: &mut Unsealed) {
    u.cluster.restart().unwrap();
    signal(&u.cluster, 2, libc::SIGSTOP);
    let mut child = u
        .custody
        .command(&["--format", "json", "unseal", "--share-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), u.quorum.as_bytes()).unwrap();
    wait_until(Duration::from_secs(60), "nodes 1 and 2 unsealed", || {
        let s = seal_status_of(&u.cluster, &[0, 1]);
        s.iter().all(|sealed| !sealed)
    });
    signal(&u.cluster, 2, libc::SIGKILL);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not answer"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let states: Vec<&str> = report["unseal"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["unsealed", "unsealed", "down"], "{report}");
    u.cluster.stop_node(2);
    u.cluster.start_node(2).unwrap();
    // With a token, unseal ends by saying when the cluster became failure tolerant.
    u.custody
        .with_token_file(&u.root_file)
        .run_stdin(&["unseal", "--share-stdin"], Some(u.quorum.as_bytes()))
        .expect(0)
        .stdout_has("became failure tolerant");
    assert!(seal_status(&u.cluster).iter().all(|s| !s.sealed));
}

/// Whether each of `nodes` is sealed; a node that does not answer counts as sealed.
fn seal_status_of(cluster: &TestCluster, nodes: &[usize]) -> Vec<bool> {
    let all = seal_status(cluster);
    nodes
        .iter()
        .map(|&i| all.get(i).map(|s| s.sealed).unwrap_or(true))
        .collect()
}

/// The active node frozen while custody (pointed at it alone, as an operator behind a balancer
/// is) asks it for the snapshot, then killed: custody fails clearly and leaves no file under the
/// snapshot's name (nor a partial one, nor a manifest); once a standby has taken over, the same
/// save succeeds.
fn step_active_node_killed_during_snapshot_save(u: &mut Unsealed) {
    let as_root = u.custody.with_token_file(&u.root_file);
    // As an operator would: no failover test before the cluster survives losing a node.
    wait_until(
        Duration::from_secs(90),
        "the cluster became failure tolerant",
        || {
            let r = as_root.run(&["--format", "json", "status"]);
            r.json()["raft"]["failure_tolerance"].as_u64() >= Some(1)
        },
    );
    let active = active_index(u);
    let only_active = Custody::with_ca_and_token(u.dir(), &u.cluster.ca_cert, &u.root_file);
    let active_addr = u.cluster.nodes[active].addr().to_string();
    let snap = u.dir().join("faults.snap");
    signal(&u.cluster, active, libc::SIGSTOP);
    let child = only_active
        .command(&[
            "--addr",
            &active_addr,
            "snapshot",
            "save",
            "--out",
            snap.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    signal(&u.cluster, active, libc::SIGKILL);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the save went on: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!snap.exists(), "a snapshot file was left: {stderr}");
    assert!(!u.dir().join("faults.snap.partial").exists());
    assert!(!u.dir().join("faults.snap.manifest.json").exists());
    u.cluster.stop_node(active);
    wait_until(Duration::from_secs(60), "a standby took over", || {
        (0..3).any(|i| i != active && is_active(u, i))
    });
    as_root
        .run(&["snapshot", "save", "--out", snap.to_str().unwrap()])
        .expect(0);
    assert!(snap.is_file());
    u.cluster.start_node(active).unwrap();
}

/// The index of the active node.
fn active_index(u: &Unsealed) -> usize {
    (0..u.cluster.nodes.len())
        .find(|&i| is_active(u, i))
        .expect("an active node")
}

fn is_active(u: &Unsealed, i: usize) -> bool {
    support::plugin::is_active(&u.cluster, i)
}
