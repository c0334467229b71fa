//! Chaos: the workload of issue 25 §2 (the Authority's `sign-tx` through the balancer, one
//! client after another and 8 at once, each acknowledged transaction sent to anvil, reads of
//! the counter) on a 3-node cluster whose every node is a host of its own ([`crate::netns`]),
//! under a seeded schedule of faults of every kind ([`schedule`]); then the [`checker`] over
//! the whole [`history`].
//!
//! [`run`] is shared by `tests/chaos.rs` (one round of every kind, asserting the facts) and
//! `examples/chaos.rs` (run by `scripts/chaos`, which prints a line per fault).

pub mod checker;
pub mod history;
mod monitor;
pub mod prng;
pub mod report;
pub mod schedule;
pub mod workload;

use std::time::Duration;

use serde_json::json;

use crate::netns::{NetCluster, wait};
use crate::plugin::{Anvil, init_plain_n, install_authority, plugin_bin, unwrap_signer};
use crate::{ClusterSpec, Custody, bao_bin};
use checker::{Anomaly, Final, Tally};
use history::{History, Kind, Op};
use schedule::{Applied, Nemesis};

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    /// Faults go on until this much time passed (at least `rounds` rounds).
    pub seconds: u64,
    /// Rounds of every fault kind at least.
    pub rounds: usize,
}

/// One fault's line: what it was and what happened from its start to the next fault's.
#[derive(Clone, Debug)]
pub struct FaultLine {
    pub applied: Applied,
    pub tally: Tally,
    pub anomalies: Vec<Anomaly>,
}

pub struct Report {
    pub config: Config,
    /// Complete rounds of every fault kind.
    pub runs: usize,
    pub faults: Vec<FaultLine>,
    pub total: Tally,
    pub anomalies: Vec<Anomaly>,
    pub history: Vec<Op>,
    pub last: Final,
    /// What makes the history incomplete (empty: complete).
    pub incomplete: Vec<String>,
    /// How often the monitor asked every node's health.
    pub health_rounds: usize,
}

/// How long the workload runs before the first fault and after the last.
const QUIET: Duration = Duration::from_secs(3);
const SETTLE: Duration = Duration::from_secs(90);
const ACCOUNT: &str = "authority";

pub fn run(config: Config) -> Report {
    let mut c = NetCluster::start(ClusterSpec {
        plugins: vec![plugin_bin()],
        ..ClusterSpec::raft("chaos", 3, bao_bin())
    });
    c.net();
    let (root, keys) = init_plain_n(&c.cluster, 1, 1);
    for i in 1..c.cluster.nodes.len() {
        c.unseal_node(i, &keys, SETTLE);
    }
    c.wait_failure_tolerant(&root, SETTLE);
    let work = tempfile::tempdir().expect("a temporary directory");
    let root_file = work.path().join("root.token");
    std::fs::write(&root_file, &root).expect("writing the root token");
    let custody = Custody::for_cluster(work.path(), &c.cluster).with_token_file(&root_file);
    let wrap = work.path().join("signer.wrap");
    let address = install_authority(&custody, &wrap);
    let signer = unwrap_signer(&c.cluster, &wrap);
    let anvil = Anvil::start(1);
    anvil.rpc("anvil_setBalance", json!([address, "0x56BC75E2D63100000"]));

    let history = History::new();
    let bases = (0..c.cluster.nodes.len()).map(|i| c.base(i)).collect();
    let monitor = monitor::Monitor::start(&c.cluster.ca_cert, bases, history.clone());
    let target = workload::Target {
        lb: c.lb.url(),
        anvil: anvil.url.clone(),
        token: signer,
        read_token: root.clone(),
        account: ACCOUNT.to_owned(),
    };
    let load = workload::Workload::start(target, history.clone());
    std::thread::sleep(QUIET);

    let plan = schedule::plan(config.seed, config.rounds.max(1) + 10_000);
    let mut applied = Vec::new();
    let mut nemesis = Nemesis {
        c: &mut c,
        root: root.clone(),
        keys,
        history: history.clone(),
        deposed: Vec::new(),
    };
    for p in &plan {
        let done = applied.len() >= config.rounds * schedule::EVERY_KIND.len();
        if done && history.now() >= Duration::from_secs(config.seconds) {
            break;
        }
        let a = nemesis.apply(p);
        eprintln!(
            "chaos: {} on node {} held {:?}; back at {:?}",
            a.planned.kind.name(),
            a.node,
            a.planned.hold,
            a.recovered
        );
        applied.push(a);
    }
    let deposed = std::mem::take(&mut nemesis.deposed);
    std::thread::sleep(QUIET);
    load.stop();
    let health_rounds = monitor.stop();
    let end = history.now();

    let ops = history.ops();
    let last = final_facts(&c, &root, &anvil, &address, &ops);
    let anomalies = checker::check(&ops, &history.actives(), &deposed, &last);
    let faults = (applied.iter().enumerate())
        .map(|(k, a)| {
            let to = applied.get(k + 1).map_or(end, |n| n.start);
            let from = if k == 0 { Duration::ZERO } else { a.start };
            FaultLine {
                applied: a.clone(),
                tally: checker::tally(&ops, from, to),
                anomalies: (anomalies.iter())
                    .filter(|x| x.at.is_some_and(|t| t >= from && t < to))
                    .cloned()
                    .collect(),
            }
        })
        .collect();
    Report {
        runs: applied.len() / schedule::EVERY_KIND.len(),
        config,
        faults,
        total: checker::tally(&ops, Duration::ZERO, end + Duration::from_secs(1)),
        incomplete: checker::incomplete(&ops),
        anomalies,
        history: ops,
        last,
        health_rounds,
    }
}

/// After healing: the counter (from the single active node), the chain's count
/// of the account's transactions, and which acknowledged transactions below it have receipts.
fn final_facts(c: &NetCluster, root: &str, anvil: &Anvil, address: &str, ops: &[Op]) -> Final {
    let path = format!("ethereum/accounts/{ACCOUNT}/nonce");
    let mut counter = None;
    wait(SETTLE, || {
        // Asked of the one active node itself: a deposed leader behind the balancer may
        // answer with a stale counter (the checker's stale reads).
        let Some(a) = c.active_node() else {
            return false;
        };
        counter = match c.call(a, "GET", &path, Some(root), None) {
            Ok((200, v)) => v["data"]["next_nonce"].as_u64(),
            _ => None,
        };
        counter.is_some()
    })
    .unwrap_or_else(|_| panic!("the counter could not be read from a single active node"));
    let count = || {
        let n = anvil.rpc("eth_getTransactionCount", json!([address, "latest"]));
        u64::from_str_radix(n.as_str().unwrap_or("0x0").trim_start_matches("0x"), 16).unwrap_or(0)
    };
    // anvil mines each transaction as it comes; wait until the count stands still.
    let mut mined = count();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = count();
        if now == mined {
            break;
        }
        mined = now;
    }
    let with_receipt = (ops.iter())
        .filter(|o| o.kind == Kind::Sign && o.status == 200)
        .filter(|o| o.nonce.is_some_and(|n| n < mined))
        .filter(|o| {
            let hash = o.tx_hash.clone().unwrap_or_default();
            !anvil
                .rpc("eth_getTransactionReceipt", json!([hash]))
                .is_null()
        })
        .filter_map(|o| o.nonce)
        .collect();
    let stall = (ops.iter())
        .find(|o| o.kind == Kind::Sign && o.status == 200 && o.nonce == Some(mined))
        .map(|o| {
            let hash = o.tx_hash.clone().unwrap_or_default();
            let tx = anvil.rpc("eth_getTransactionByHash", json!([hash]));
            let pool = anvil.rpc("txpool_status", json!([]));
            let sent: Vec<String> = (ops.iter())
                .filter(|b| b.kind == Kind::Broadcast && b.tx_hash == o.tx_hash)
                .map(|b| {
                    format!(
                        "sent by op {} at {:?}: HTTP {} {:?}",
                        b.id, b.start, b.status, b.error
                    )
                })
                .collect();
            format!(
                "op {} ({}) tx {hash}: {}; anvil has it as {}; pool {pool}",
                o.id,
                o.client,
                sent.join("; "),
                if tx.is_null() {
                    "nothing".to_owned()
                } else {
                    format!("block {}", tx["blockNumber"])
                }
            )
        });
    Final {
        counter: counter.unwrap_or(0),
        mined,
        with_receipt,
        stall,
    }
}
