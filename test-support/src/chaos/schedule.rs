//! The nemesis: a seeded schedule of faults of every kind, each bounded and healed, applied as
//! an operator meets them — the cluster failure tolerant (autopilot) before each fault, and
//! once healed, the faulted node back (unsealed after a kill, a standby again after losing its
//! leadership).

use std::time::Duration;

use super::checker::Anomaly;
use super::history::History;
use super::prng::Prng;
use crate::netns::{NetCluster, wait};

/// Every kind of fault issue 25 names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// A node cut from the other nodes (the client and the balancer still reach it).
    PartitionNode,
    /// The active node cut from everybody; it keeps running.
    IsolateActive,
    /// The balancer cut from the active node.
    PartitionBalancer,
    /// A node stopped (SIGSTOP) and continued (SIGCONT).
    Pause,
    /// A node killed (SIGKILL), restarted sealed, unsealed by its shares.
    KillRestart,
    /// `sys/step-down` on the active node.
    StepDown,
}

pub const EVERY_KIND: [FaultKind; 6] = [
    FaultKind::PartitionNode,
    FaultKind::IsolateActive,
    FaultKind::PartitionBalancer,
    FaultKind::Pause,
    FaultKind::KillRestart,
    FaultKind::StepDown,
];

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::PartitionNode => "partition-node",
            FaultKind::IsolateActive => "isolate-active",
            FaultKind::PartitionBalancer => "partition-balancer",
            FaultKind::Pause => "pause",
            FaultKind::KillRestart => "kill-restart",
            FaultKind::StepDown => "step-down",
        }
    }
}

/// One planned fault: its kind, whether it hits the active node (else a follower), how long
/// it is held.
#[derive(Clone, Debug)]
pub struct Planned {
    pub kind: FaultKind,
    pub active: bool,
    pub hold: Duration,
}

/// `rounds` rounds, each every kind once in a seeded order, each held 3 to 8 s.
pub fn plan(seed: u64, rounds: usize) -> Vec<Planned> {
    let mut rng = Prng::new(seed);
    let mut out = Vec::new();
    for _ in 0..rounds {
        let mut kinds = EVERY_KIND;
        rng.shuffle(&mut kinds);
        for kind in kinds {
            let active = match kind {
                FaultKind::IsolateActive | FaultKind::PartitionBalancer | FaultKind::StepDown => {
                    true
                }
                FaultKind::PartitionNode | FaultKind::Pause | FaultKind::KillRestart => rng.coin(),
            };
            let hold = Duration::from_millis(rng.range(3000, 8000));
            out.push(Planned { kind, active, hold });
        }
    }
    out
}

/// A fault as it happened.
#[derive(Clone, Debug)]
pub struct Applied {
    pub planned: Planned,
    /// The node it hit (none for a step-down's successor: the node that stepped down).
    pub node: usize,
    pub start: Duration,
    /// When it was healed.
    pub healed: Duration,
    /// When the cluster was back (failure tolerant, the balancer serving).
    pub recovered: Duration,
}

/// Each fault's bound: healed by then whatever happens.
const BOUND: Duration = Duration::from_secs(60);
/// How long the cluster gets to elect, catch up or become failure tolerant.
const SETTLE: Duration = Duration::from_secs(90);
/// How long a deposed leader gets to answer as a standby.
const DEPOSED: Duration = Duration::from_secs(20);

pub struct Nemesis<'a> {
    pub c: &'a mut NetCluster,
    pub root: String,
    pub keys: Vec<String>,
    pub history: History,
    /// Deposed leaders that went on answering as active (each restarted, so the run goes on).
    pub deposed: Vec<Anomaly>,
}

impl Nemesis<'_> {
    /// Applies `p` once the cluster is failure tolerant; returns once it is healed and the
    /// cluster back.
    pub fn apply(&mut self, p: &Planned) -> Applied {
        self.c.wait_failure_tolerant(&self.root, SETTLE);
        let a = self.c.wait_active(SETTLE, None);
        let follower = (0..self.c.cluster.nodes.len())
            .find(|j| *j != a)
            .expect("a follower");
        let node = if p.active { a } else { follower };
        let start = self.history.now();
        let mut lost_lead = p.active;
        match p.kind {
            FaultKind::PartitionNode => self.hold(self.c.partition_node(node, BOUND), p),
            FaultKind::IsolateActive => self.hold(self.c.isolate_node(node, BOUND), p),
            FaultKind::PartitionBalancer => {
                lost_lead = false;
                self.hold(self.c.partition_balancer(&[node], BOUND), p)
            }
            FaultKind::Pause => self.hold(self.c.pause_node(node, BOUND), p),
            FaultKind::KillRestart => {
                lost_lead = false;
                self.c.kill_and_restart(node);
                std::thread::sleep(p.hold);
                self.c.unseal_node(node, &self.keys, SETTLE);
            }
            FaultKind::StepDown => {
                self.c.step_down(&self.root);
            }
        }
        let healed = self.history.now();
        if lost_lead {
            self.back_to_standby(node, p.kind);
        }
        self.c.wait_failure_tolerant(&self.root, SETTLE);
        let lb = wait(SETTLE, || {
            matches!(self.c.through_balancer("sys/health", None), Ok((200, _)))
        });
        lb.unwrap_or_else(|_| panic!("the balancer serves no active node after {:?}", p.kind));
        Applied {
            planned: p.clone(),
            node,
            start,
            healed,
            recovered: self.history.now(),
        }
    }

    fn hold(&self, fault: crate::netns::Fault, p: &Planned) {
        std::thread::sleep(p.hold);
        fault.heal();
    }

    /// Waits until `i`, which lost its leadership, answers as a standby (or is the only active
    /// node, elected again); a deposed leader that goes on answering as active beside the new
    /// one is an anomaly, and is restarted and unsealed so the run goes on from one leader.
    fn back_to_standby(&mut self, i: usize, kind: FaultKind) {
        if wait(DEPOSED, || self.c.health()[i] == Ok(429)).is_ok() {
            return;
        }
        let health = self.c.health();
        let actives = health.iter().filter(|h| **h == Ok(200)).count();
        if health[i] != Ok(200) || actives < 2 {
            // Elected again (alone active), or neither: autopilot's wait says whether the
            // cluster comes back.
            return;
        }
        let leaders: Vec<String> = (0..self.c.cluster.nodes.len())
            .map(|n| match self.c.call(n, "GET", "sys/leader", None, None) {
                Ok((s, v)) => format!(
                    "node {n}: {s} is_self={} leader={}",
                    v["is_self"], v["leader_address"]
                ),
                Err(e) => format!("node {n}: {e}"),
            })
            .collect();
        self.deposed.push(Anomaly {
            kind: "deposed",
            at: Some(self.history.now()),
            text: format!(
                "node {i} still answers as active {DEPOSED:?} after {} healed (health {health:?}; {}); restarted",
                kind.name(),
                leaders.join("; ").escape_debug()
            ),
        });
        self.c.kill_and_restart(i);
        self.c.unseal_node(i, &self.keys, SETTLE);
    }
}
