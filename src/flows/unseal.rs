//! Unsealing every node with the holders' shares, including followers of a fresh Raft cluster
//! that join only after the leader is unsealed; and the run's record.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use super::context::Ctx;
use super::shares::Shares;
use crate::error::{Error, Result};
use crate::transcript::Step;
use crate::vault::{Addr, NodeError, SealStatus, Vault};

const POLL: Duration = Duration::from_millis(500);
/// How long a follower may stay sealed after taking the quorum's shares before custody offers
/// them again (its Raft join retries every 2 s).
const JOIN_SETTLE: Duration = Duration::from_secs(8);

/// One node's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub addr: String,
    pub state: NodeState,
    pub initialized: bool,
    pub sealed: bool,
    pub threshold: u32,
    pub progress: u32,
    /// Holders still needed to unseal this node.
    pub needs: u32,
    pub shares_accepted: u32,
    pub message: Option<String>,
    /// The node's progress when this run first saw it sealed: shares of earlier runs.
    pub progress_before: Option<u32>,
    /// The shares this run gave the node (their labels: `holder FPR`, `stdin line 2`).
    pub given: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeState {
    Unsealed,
    Sealed,
    WaitingToJoin,
    Down,
    Refused,
}

#[derive(Debug, Serialize)]
pub struct UnsealReport {
    pub nodes: Vec<NodeReport>,
    pub shares_given: usize,
    /// The cluster's active node after the unseal, when the caller waited for one
    /// ([`wait_for_active`]).
    pub active: Option<String>,
}

/// How long unsealed nodes may take to have an active one: a leader election and its
/// post-unseal setup (a few seconds on a healthy cluster).
pub const ACTIVE_BOUND: Duration = Duration::from_secs(30);

/// Waits up to `bound` for an active node: one of `addrs` whose `sys/health` says active, or
/// the leader an unsealed one names (`sys/leader`) when it is not among them. A node that is
/// unsealed but fails its post-unseal setup (a restored audit device its configuration does not
/// declare as it was) stays a standby, and so does every other: then `None`.
pub async fn wait_for_active(vault: &Vault, addrs: &[Addr], bound: Duration) -> Option<Addr> {
    crate::poll::poll(bound, POLL, || async {
        let mut named = Vec::new();
        for addr in addrs {
            match vault.health(addr).await {
                Ok((crate::vault::HaRole::Active, _)) => return Ok(addr.clone()),
                Ok((crate::vault::HaRole::Standby | crate::vault::HaRole::PerfStandby, _)) => {
                    if let Ok(l) = vault.leader(addr).await
                        && let Ok(leader) = Addr::parse(&l.leader_address)
                        && !addrs.contains(&leader)
                    {
                        named.push(leader);
                    }
                }
                _ => {}
            }
        }
        for leader in named {
            if let Ok((crate::vault::HaRole::Active, _)) = vault.health(&leader).await {
                return Ok(leader);
            }
        }
        Err(String::new())
    })
    .await
    .ok()
}

struct NodeRun {
    addr: Addr,
    submitted: BTreeSet<usize>,
    report: NodeReport,
    /// When this run's shares reached the threshold on a follower that then stayed sealed:
    /// it is finishing its Raft join with them and unseals shortly after.
    completed_at: Option<Instant>,
}

/// Submits `shares` to every node until each is unsealed, down, refuses, or runs out of shares;
/// waits up to `join_timeout` for followers to join.
pub async fn unseal_with(
    ctx: &Ctx,
    vault: &Vault,
    addrs: &[Addr],
    shares: &Shares,
    join_timeout: Duration,
) -> Result<UnsealReport> {
    let mut runs: Vec<NodeRun> = addrs.iter().map(NodeRun::new).collect();
    let bar = ctx.ui.progress(shares.shares.len() as u64, "quorum");
    let deadline = Instant::now() + join_timeout;
    let mut any_initialized = false;
    loop {
        for run in runs.iter_mut().filter(|r| !r.settled()) {
            any_initialized |= run.advance(ctx, vault, shares, &bar).await;
        }
        if !any_initialized {
            bar.finish();
            return Err(Error::precondition(
                "no node is initialized; run custody init first",
            ));
        }
        let some_unsealed = runs.iter().any(|r| r.report.state == NodeState::Unsealed);
        let mut waiting = runs
            .iter_mut()
            .filter(|r| r.report.state == NodeState::WaitingToJoin)
            .peekable();
        // Followers join only through an unsealed leader; without one there is nothing to wait for.
        if waiting.peek().is_none() || !some_unsealed {
            break;
        }
        if Instant::now() >= deadline {
            for r in waiting {
                r.report.message = Some(format!(
                    "did not join the cluster within --join-timeout {}s",
                    join_timeout.as_secs()
                ));
            }
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    bar.finish();
    for r in runs.iter_mut() {
        r.report.needs = match r.report.state {
            NodeState::Unsealed => 0,
            _ => r.report.threshold.saturating_sub(r.report.progress),
        };
    }
    Ok(UnsealReport {
        nodes: runs.into_iter().map(|r| r.report).collect(),
        shares_given: shares.shares.len(),
        active: None,
    })
}

impl NodeRun {
    fn new(addr: &Addr) -> NodeRun {
        NodeRun {
            addr: addr.clone(),
            submitted: BTreeSet::new(),
            completed_at: None,
            report: NodeReport {
                addr: addr.to_string(),
                state: NodeState::Sealed,
                initialized: false,
                sealed: true,
                threshold: 0,
                progress: 0,
                needs: 0,
                shares_accepted: 0,
                message: None,
                progress_before: None,
                given: Vec::new(),
            },
        }
    }

    fn gave(&mut self, label: &str) {
        if !self.report.given.iter().any(|g| g == label) {
            self.report.given.push(label.to_owned());
        }
    }

    /// Nothing more will change this node in this run.
    fn settled(&self) -> bool {
        matches!(
            self.report.state,
            NodeState::Unsealed | NodeState::Down | NodeState::Refused
        )
    }

    /// One look at the node, and the shares it has not seen if it needs them. Whether the node
    /// is initialized.
    async fn advance(
        &mut self,
        ctx: &Ctx,
        vault: &Vault,
        shares: &Shares,
        bar: &crate::ui::Progress,
    ) -> bool {
        let ss = match vault.seal_status(&self.addr).await {
            Ok(ss) => ss,
            Err(e) => {
                self.report.state = NodeState::Down;
                self.report.message = Some(e.to_string());
                if e.is_unreachable() {
                    ctx.ui.status(format!(
                        "{}: down ({e}); going on with the others",
                        self.addr
                    ));
                } else {
                    ctx.ui.status(format!("{}: {e}", self.addr));
                }
                return false;
            }
        };
        absorb(&mut self.report, &ss);
        if !ss.sealed {
            self.report.state = NodeState::Unsealed;
            return ss.initialized;
        }
        if ss.initialized && self.report.progress_before.is_none() {
            self.report.progress_before = Some(ss.progress);
        }
        if !ss.initialized {
            self.report.state = NodeState::WaitingToJoin;
            return false;
        }
        match self.completed_at {
            Some(at) if at.elapsed() < JOIN_SETTLE => {
                self.report.state = NodeState::WaitingToJoin;
                return true;
            }
            Some(_) => {
                // The join did not take the shares: offer them again.
                self.completed_at = None;
                self.submitted.clear();
            }
            None => {}
        }
        self.report.state = NodeState::Sealed;
        submit(ctx, vault, self, shares, bar).await;
        true
    }
}

fn absorb(report: &mut NodeReport, ss: &SealStatus) {
    report.initialized = ss.initialized;
    report.sealed = ss.sealed;
    report.threshold = ss.t;
    report.progress = ss.progress;
}

/// Submits the shares this node has not seen in this run, one at a time.
async fn submit(
    ctx: &Ctx,
    vault: &Vault,
    run: &mut NodeRun,
    shares: &Shares,
    bar: &crate::ui::Progress,
) {
    for (i, share) in shares.shares.iter().enumerate() {
        if run.submitted.contains(&i) {
            continue;
        }
        let before = run.report.progress;
        match vault.unseal(&run.addr, &share.text).await {
            Ok(ss) => {
                run.submitted.insert(i);
                run.gave(&share.label);
                absorb(&mut run.report, &ss);
                if !ss.sealed {
                    run.report.shares_accepted += 1;
                    run.report.state = NodeState::Unsealed;
                    ctx.ui
                        .status(format!("{}: {} accepted; unsealed", run.addr, share.label));
                    bar.set_len(ss.t as u64);
                    bar.set(ss.t as u64, "unsealed");
                    return;
                }
                if ss.progress == 0 && before + 1 >= ss.t {
                    // The threshold was reached without an error, yet the node is still sealed:
                    // a follower completing its join with these shares.
                    run.report.shares_accepted += 1;
                    run.report.state = NodeState::WaitingToJoin;
                    run.completed_at = Some(Instant::now());
                    ctx.ui.status(format!(
                        "{}: {} accepted; the node is joining the cluster",
                        run.addr, share.label
                    ));
                    return;
                }
                if ss.progress > before {
                    run.report.shares_accepted += 1;
                    ctx.ui.status(format!(
                        "{}: {} accepted ({}/{})",
                        run.addr, share.label, ss.progress, ss.t
                    ));
                } else if ss.progress == before && before > 0 {
                    ctx.ui.status(format!(
                        "{}: already had {}'s share from an earlier run ({}/{})",
                        run.addr, share.label, ss.progress, ss.t
                    ));
                } else {
                    ctx.ui.status(format!(
                        "{}: {} submitted ({}/{})",
                        run.addr, share.label, ss.progress, ss.t
                    ));
                }
                bar.set_len(ss.t as u64);
                bar.set(ss.progress as u64, run.addr.to_string());
            }
            Err(e) if joining(&e) => {
                // A follower whose join has not happened yet: keep the share for the next round.
                run.report.state = NodeState::WaitingToJoin;
                return;
            }
            Err(e) if e.is_unreachable() => {
                run.report.state = NodeState::Down;
                run.report.message = Some(e.to_string());
                ctx.ui.status(format!(
                    "{}: went down ({e}); going on with the others",
                    run.addr
                ));
                return;
            }
            Err(e) => {
                run.submitted.insert(i);
                run.gave(&share.label);
                run.report.state = NodeState::Refused;
                run.report.progress = 0;
                run.report.message = Some(explain_refusal(&e));
                ctx.ui
                    .status(format!("{}: refused the shares: {e}", run.addr));
                return;
            }
        }
    }
}

fn joining(e: &NodeError) -> bool {
    e.message_contains("not initialized")
        || e.message_contains("not yet joined")
        || e.message_contains("raft join")
}

fn explain_refusal(e: &NodeError) -> String {
    format!(
        "{e}. The server could not open its barrier with the shares it was given, and reset its \
         progress: at least one share is not from this cluster's init (for example a share of \
         another cluster, or of a throwaway init of this one). Check each holder's share file \
         name (their fingerprint) and run unseal again with the right shares"
    )
}

/// Appends the run to the transcript: the nodes' states and who gave shares, never a share.
pub fn record(
    ctx: &Ctx,
    report: &UnsealReport,
    shares: &Shares,
) -> Result<crate::transcript::Head> {
    let facts = json!({
        "nodes": report.nodes.iter().map(|n| json!({
            "addr": n.addr, "state": n.state, "progress": n.progress, "threshold": n.threshold,
        })).collect::<Vec<_>>(),
        "shares_given": report.shares_given,
        "holders": shares.holders,
        "active": report.active,
    });
    let actor = if shares.holders.is_empty() {
        "holders".to_owned()
    } else {
        format!("holder {}", shares.holders.join(", "))
    };
    ctx.transcript
        .append(Step::new("unseal", "sys/unseal", &actor, facts))
}
