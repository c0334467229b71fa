//! The network-fault harness (`support::netns`) on a real 3-node OpenBao Raft cluster with TLS:
//! each node in its own network namespace, HAProxy in another, the test process the client.
//! Each fault does what it says (who can no longer reach whom, what the cluster does about it)
//! and is healed (the cluster is failure tolerant again; a deposed leader that goes on answering
//! as active is printed as an ANOMALY, see `wait_standby`); and everything the harness named on
//! the machine is gone once it drops.

use custody_test_support as support;

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use serde_json::json;

use support::netns::{NetCluster, Side, harness_names, names, subnet, sweep, wait};
use support::plugin::init_plain_n;
use support::{ClusterSpec, bao_bin};

/// Each fault's bound: healed by then even if the test forgets.
const BOUND: Duration = Duration::from_secs(90);
/// How long the cluster gets to elect, catch up or become failure tolerant.
const SETTLE: Duration = Duration::from_secs(60);
/// How long a deposed leader gets to answer as a standby (an election takes a few seconds).
const DEPOSED: Duration = Duration::from_secs(20);

#[test]
fn each_fault_on_a_real_network_does_what_it_says_and_heals() {
    let mut c = NetCluster::start(ClusterSpec::raft("netns", 3, bao_bin()));
    c.net();
    let made = c.names();
    let (root, keys) = init_plain_n(&c.cluster, 1, 1);
    c.unseal_node(1, &keys, SETTLE);
    c.unseal_node(2, &keys, SETTLE);
    c.wait_failure_tolerant(&root, SETTLE);
    let a = c.wait_active(SETTLE, None);
    let (status, v) = c
        .call(
            a,
            "POST",
            "sys/mounts/kv",
            Some(&root),
            Some(json!({ "type": "kv" })),
        )
        .unwrap();
    assert_eq!(status, 204, "mounting kv: {v}");

    a_partitioned_node_falls_behind_and_catches_up(&c, &root);
    a_step_down_hands_over(&c, &root);
    a_killed_node_comes_back_sealed(&mut c, &root, &keys);
    a_balancer_cut_from_the_active_node_has_no_server(&c);
    an_isolated_active_node_is_replaced_and_rejoins(&mut c, &root, &keys);
    a_paused_active_node_is_replaced_and_wakes(&mut c, &root, &keys);

    let pids: Vec<u32> = c.cluster.nodes.iter().filter_map(|n| n.pid()).collect();
    drop(c);
    let left: Vec<String> = harness_names()
        .into_iter()
        .filter(|n| n.starts_with(&made[0][..9]))
        .collect();
    assert!(left.is_empty(), "left on the machine: {left:?}");
    for p in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{p}")).exists(),
            "server {p} still runs"
        );
    }
}

/// Waits until node `i`, which lost its leadership to a fault, answers `sys/health` as a
/// standby (429). OpenBao 2.7.2 has been seen to go on answering as active (`sys/leader`
/// `is_self`) beside the new active node, its Raft a follower, when it had become active by a
/// takeover (after a step-down or another node's fault): a deposed leader still answering. That
/// is printed as an ANOMALY with what each node says of the leader, and the node is restarted
/// and unsealed, so the next step starts from one leader.
fn wait_standby(c: &mut NetCluster, i: usize, keys: &[String], root: &str, who: &str) {
    if wait(DEPOSED, || c.health()[i] == Ok(429)).is_ok() {
        return;
    }
    if c.active_nodes().len() > 1 {
        custody_refuses_two_actives(c, root);
    }
    let leaders: Vec<_> = (0..c.cluster.nodes.len())
        .map(|n| c.call(n, "GET", "sys/leader", None, None))
        .collect();
    eprintln!(
        "ANOMALY: {who} (node {i}) still answers as active {DEPOSED:?} after its fault healed \
         (health {:?}); sys/leader of each node: {leaders:?}",
        c.health()
    );
    c.kill_and_restart(i);
    c.unseal_node(i, keys, SETTLE);
}

/// While two nodes answer as active, custody says so in `status` and sends a ceremony to
/// neither: `snapshot save` is refused (exit 4) and writes nothing.
fn custody_refuses_two_actives(c: &NetCluster, root: &str) {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("root.token");
    std::fs::write(&token, root).unwrap();
    let custody = support::Custody::for_cluster(dir.path(), &c.cluster).with_token_file(&token);
    let status = custody.run(&["--format", "json", "status"]);
    let claiming = status.json()["claiming_active"]
        .as_array()
        .map_or(0, Vec::len);
    if claiming < 2 {
        // The deposed node stepped down between the harness's look and custody's.
        eprintln!(
            "one node was active again before custody looked: {}",
            status.stdout()
        );
        return;
    }
    let out = dir.path().join("snap");
    let save = custody.run(&["snapshot", "save", "--out", out.to_str().unwrap()]);
    if save.code() == 0 {
        // Likewise, between custody's status and its save (each looks at every node anew).
        eprintln!("one node was active again before the snapshot save");
        return;
    }
    save.expect(4).stderr_has("all answer as the active node");
    assert!(!out.exists(), "nothing written");
    eprintln!("custody refused the two active nodes ({claiming} claim it)");
}

fn others(c: &NetCluster, i: usize) -> Vec<usize> {
    (0..c.cluster.nodes.len()).filter(|j| *j != i).collect()
}

/// Whether nobody on either side of the cut between `i` and `j` reaches the other's ports.
#[track_caller]
fn assert_cut(c: &NetCluster, i: usize, j: usize) {
    for to in c.node_ports(j) {
        assert!(!c.reaches(Side::Node(i), to), "node {i} reaches {to}");
    }
    for to in c.node_ports(i) {
        assert!(!c.reaches(Side::Node(j), to), "node {j} reaches {to}");
    }
}

/// A follower cut from the other nodes: it reaches neither of them, they reach it not, the
/// client and the balancer still do; writes go on without it and its Raft index stays
/// behind; healed, it catches up.
fn a_partitioned_node_falls_behind_and_catches_up(c: &NetCluster, root: &str) {
    let a = c.wait_active(SETTLE, None);
    let f = others(c, a)[0];
    let fault = c.partition_node(f, BOUND);
    for j in others(c, f) {
        assert_cut(c, f, j);
    }
    assert!(c.reaches(Side::Client, c.node_ports(f)[0]));
    assert!(c.reaches(Side::Balancer, c.node_ports(f)[0]));
    for k in 0..20 {
        let (status, v) = c
            .call(
                a,
                "POST",
                &format!("kv/k{k}"),
                Some(root),
                Some(json!({ "v": k })),
            )
            .unwrap();
        assert_eq!(status, 204, "writing kv/k{k}: {v}");
    }
    let leader = c.applied_index(a).unwrap();
    let behind = c.applied_index(f).unwrap();
    assert!(
        behind < leader,
        "the partitioned node is at {behind}, the leader at {leader}"
    );
    fault.heal();
    wait(SETTLE, || c.applied_index(f).is_ok_and(|i| i >= leader))
        .unwrap_or_else(|_| panic!("node {f} did not catch up with index {leader}"));
    c.wait_failure_tolerant(root, SETTLE);
}

/// The active node cut from everybody: it keeps running, nobody reaches it nor it anybody, a
/// request to it gets no answer; another node becomes active and the balancer serves it;
/// healed, the old one answers as a standby and the cluster is failure tolerant again.
fn an_isolated_active_node_is_replaced_and_rejoins(
    c: &mut NetCluster,
    root: &str,
    keys: &[String],
) {
    c.wait_active(SETTLE, None);
    let (a, fault) = c.isolate_active(BOUND);
    let b = c.wait_active(SETTLE, Some(a));
    eprintln!("node {a} isolated; node {b} became active");
    for j in others(c, a) {
        assert_cut(c, a, j);
    }
    assert!(!c.reaches(Side::Client, c.node_ports(a)[0]));
    assert!(!c.reaches(Side::Balancer, c.node_ports(a)[0]));
    let answer = c.call(a, "GET", "sys/health", None, None);
    assert!(answer.is_err(), "the isolated node answered: {answer:?}");
    assert!(c.cluster.nodes[a].pid().is_some(), "the isolated node runs");
    wait(SETTLE, || {
        matches!(c.through_balancer("sys/health", None), Ok((200, _)))
    })
    .expect("the balancer serves the new active node");
    fault.heal();
    wait_standby(c, a, keys, root, "the isolated active node");
    c.wait_failure_tolerant(root, SETTLE);
}

/// The balancer cut from the active node: the nodes still reach each other and the client
/// reaches the active node, but the balancer has no server up (HAProxy's own 503); healed, it
/// serves the active node again.
fn a_balancer_cut_from_the_active_node_has_no_server(c: &NetCluster) {
    let a = c.wait_active(SETTLE, None);
    wait(SETTLE, || {
        matches!(c.through_balancer("sys/health", None), Ok((200, _)))
    })
    .expect("the balancer serves the active node");
    let fault = c.partition_balancer(&[a], BOUND);
    assert!(!c.reaches(Side::Balancer, c.node_ports(a)[0]));
    assert!(c.reaches(Side::Client, c.node_ports(a)[0]));
    for j in others(c, a) {
        assert!(c.reaches(Side::Balancer, c.node_ports(j)[0]));
        assert!(c.reaches(Side::Node(j), c.node_ports(a)[1]));
    }
    wait(
        SETTLE,
        || matches!(c.through_balancer("sys/health", None), Ok((503, v)) if v.is_null()),
    )
    .expect("HAProxy says no server is available");
    assert_eq!(c.active_node(), Some(a), "the active node stayed active");
    fault.heal();
    wait(SETTLE, || {
        matches!(c.through_balancer("sys/health", None), Ok((200, _)))
    })
    .expect("the balancer serves the active node again");
}

/// The active node stopped (SIGSTOP): it answers nothing, another node becomes active;
/// continued (SIGCONT), it answers again, as a standby.
fn a_paused_active_node_is_replaced_and_wakes(c: &mut NetCluster, root: &str, keys: &[String]) {
    let a = c.wait_active(SETTLE, None);
    let fault = c.pause_node(a, BOUND);
    let answer = c.call(a, "GET", "sys/health", None, None);
    assert!(answer.is_err(), "the paused node answered: {answer:?}");
    let b = c.wait_active(SETTLE, Some(a));
    eprintln!("node {a} paused; node {b} became active");
    fault.heal();
    wait(SETTLE, || c.health()[a].is_ok()).expect("the woken node answers again");
    wait_standby(c, a, keys, root, "the woken active node");
    c.wait_failure_tolerant(root, SETTLE);
}

/// `sys/step-down` on the active node: another node becomes active.
fn a_step_down_hands_over(c: &NetCluster, root: &str) {
    c.wait_active(SETTLE, None);
    let a = c.step_down(root);
    let b = c.wait_active(SETTLE, Some(a));
    eprintln!("node {a} stepped down; node {b} became active");
    c.wait_failure_tolerant(root, SETTLE);
}

/// A standby killed (SIGKILL) and restarted: it comes back sealed; unsealed, it rejoins.
fn a_killed_node_comes_back_sealed(c: &mut NetCluster, root: &str, keys: &[String]) {
    let a = c.wait_active(SETTLE, None);
    let f = others(c, a)[0];
    let before = c.cluster.nodes[f].pid();
    c.kill_and_restart(f);
    assert_ne!(c.cluster.nodes[f].pid(), before, "a new process");
    let (status, v) = c.call(f, "GET", "sys/seal-status", None, None).unwrap();
    assert_eq!((status, &v["sealed"]), (200, &json!(true)), "{v}");
    assert_eq!(c.health()[f], Ok(503), "a sealed node's health");
    c.unseal_node(f, keys, SETTLE);
    c.wait_failure_tolerant(root, SETTLE);
}

/// On the loopback fallback every partition fault fails, saying why there are no namespaces.
#[test]
fn without_namespaces_a_partition_fault_fails_with_the_reason() {
    let reason = "ip netns add: Operation not permitted (the reason this test gives)";
    let c = NetCluster::loopback(ClusterSpec::raft("netns-fallback", 1, bao_bin()), reason);
    assert_eq!(c.fallback_reason(), Some(reason));
    assert!(c.names().is_empty());
    let faults: [&dyn Fn(); 4] = [
        &|| drop(c.partition_node(0, BOUND)),
        &|| drop(c.isolate_node(0, BOUND)),
        &|| drop(c.isolate_active(BOUND)),
        &|| drop(c.partition_balancer(&[0], BOUND)),
    ];
    for fault in faults {
        let err = std::panic::catch_unwind(AssertUnwindSafe(fault)).unwrap_err();
        let text = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            text.contains("could not be made here") && text.contains(reason),
            "{text}"
        );
    }
}

/// What a harness of a dead process left (a namespace, a bridge) goes at the next sweep; a
/// live process's names stay.
#[test]
fn a_sweep_removes_the_leftovers_of_dead_processes_only() {
    let dead = (100_000u32..)
        .find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
        .unwrap();
    let dead_prefix = format!("{}{:0>5}z", names::TAG, radix36(dead));
    let live = names::Prefix::next();
    let ip = |args: &[&str]| {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (dead_ns, dead_br, live_br) = (
        format!("{dead_prefix}n1"),
        format!("{dead_prefix}br"),
        live.name("br"),
    );
    // Held throughout, so no harness starting meanwhile sweeps first.
    let lock = subnet::Lock::take().unwrap();
    ip(&["netns", "add", &dead_ns]);
    ip(&["link", "add", &dead_br, "type", "bridge"]);
    ip(&["link", "add", &live_br, "type", "bridge"]);
    let removed = sweep(&lock);
    let now = harness_names();
    drop(lock);
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &live_br])
        .status();
    assert!(removed.contains(&format!("netns {dead_ns}")), "{removed:?}");
    assert!(removed.contains(&format!("link {dead_br}")), "{removed:?}");
    assert!(
        !now.contains(&dead_ns) && !now.contains(&dead_br),
        "{now:?}"
    );
    assert!(
        now.contains(&live_br),
        "a live harness's bridge was swept: {now:?}"
    );
}

fn radix36(mut n: u32) -> String {
    let mut out = Vec::new();
    while n > 0 {
        out.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap()
}
