//! `custody unseal`: ceremony 2. Every node must be one the transcript records for this
//! cluster (or be vouched for with `--new-node`); shares are gathered and checked first (a share
//! file against the one recorded for its holder), held in zeroizing memory, and submitted to
//! every node until each is unsealed, including followers of a fresh Raft cluster that join only
//! after the leader is unsealed. A node that refuses the quorum is reported with whose shares
//! it dropped.

use std::time::Duration;

use serde_json::json;

use crate::cli::UnsealArgs;
use crate::error::{Error, Kind, Result};
use crate::flows::recorded::{GiveAgain, earlier_unseal_givers};
use crate::flows::shares::{Shares, gather_recorded, prompt_need};
use crate::flows::unseal::{
    ACTIVE_BOUND, NodeReport, NodeState, UnsealReport, record, unseal_with, wait_for_active,
};
use crate::flows::{Ctx, cluster_nodes, raft_peers};
use crate::vault::{Addr, Vault};

pub async fn run(ctx: &Ctx, args: &UnsealArgs) -> Result<()> {
    let addrs = ctx.require_addrs()?.to_vec();
    let vault = ctx.vault()?;
    crate::flows::nodes::one_cluster(&crate::flows::nodes::all_status(&vault, &addrs).await)?;
    let checked = cluster_nodes::check(ctx, &addrs, &args.nodes.new_node, "unseal")?;
    let need = if args.shares.uses_prompts() {
        prompt_need(ctx, &vault, &addrs).await?
    } else {
        0
    };
    let shares = gather_recorded(ctx, &args.shares, need, &checked.record)?;
    checked.record_new_nodes(ctx, "unseal")?;
    let mut report = unseal_with(
        ctx,
        &vault,
        &addrs,
        &shares,
        Duration::from_secs(args.join_timeout),
    )
    .await?;
    // Unsealed nodes that never become active (a post-unseal setup that fails, such as after a
    // restore whose audit devices the configuration does not declare) serve nothing: once every
    // node is unsealed, the run succeeds only with an active node. While some are still sealed
    // a leader may need them, so one look only.
    let unsealed = report.nodes.iter().any(|n| n.state == NodeState::Unsealed);
    let all_unsealed = report.nodes.iter().all(|n| n.state == NodeState::Unsealed);
    if unsealed {
        let bound = if all_unsealed {
            ACTIVE_BOUND
        } else {
            Duration::ZERO
        };
        report.active = wait_for_active(&vault, &addrs, bound)
            .await
            .map(|a| a.to_string());
    }
    let none_active = all_unsealed && report.active.is_none();
    let tolerance = if !none_active
        && report.nodes.len() > 1
        && report.nodes.iter().all(|n| n.state == NodeState::Unsealed)
    {
        Some(failure_tolerance(ctx, &vault, &addrs, args.join_timeout).await)
    } else {
        None
    };
    let give_again = refused_quorums(&checked.lines, &report);
    finish(ctx, &report, &shares, tolerance, &give_again)?;
    if none_active {
        return Err(no_active_node(&report));
    }
    Ok(())
}

/// Unsealed nodes of which none became active: the unseal did not bring the cluster up, and
/// only the servers' own logs say why.
fn no_active_node(report: &UnsealReport) -> Error {
    let unsealed: Vec<&str> = report
        .nodes
        .iter()
        .filter(|n| n.state == NodeState::Unsealed)
        .map(|n| n.addr.as_str())
        .collect();
    Error::failed(format!(
        "the nodes are unsealed ({}), but none became active within {ACTIVE_BOUND:?}: the \
         cluster serves nothing. An unsealed node that fails its post-unseal setup stays a \
         standby and says why only in its server log (for example \"post-unseal setup failed: \
         failed to validate audit device config file/: modifications to audit devices are not \
         allowed\": its configuration does not declare an audit device its storage holds as it \
         was declared, as after a restore of a cluster with other audit stanzas; or, when \
         other nodes of the cluster were not given and are sealed, too few voters to elect a \
         leader)",
        unsealed.join(", ")
    ))
    .hint(
        "read each node's server log on its host (journalctl -u openbao, or the file its \
         service writes), fix what it names (for an audit device: declare the stanza the \
         restored cluster had, the same on every node, and restart the node), then run \
         custody unseal again",
    )
}

/// For each node that refused the quorum: whose shares it dropped, this run's and (as the
/// transcript records) earlier runs'.
fn refused_quorums(lines: &[serde_json::Value], report: &UnsealReport) -> Vec<(String, GiveAgain)> {
    report
        .nodes
        .iter()
        .filter(|n| n.state == NodeState::Refused)
        .map(|n| (n.addr.clone(), give_again(lines, n)))
        .collect()
}

fn give_again(lines: &[serde_json::Value], n: &NodeReport) -> GiveAgain {
    let before = n.progress_before.unwrap_or(0);
    let earlier = Addr::parse(&n.addr)
        .ok()
        .and_then(|a| earlier_unseal_givers(lines, &a, before));
    match earlier {
        Some(g) => GiveAgain::new(&n.given, &g.holders, g.unnamed),
        None => GiveAgain::new(&n.given, &[], u64::from(before)),
    }
}

/// Whether (and after how long) the unsealed cluster survives losing a node. Autopilot's state
/// needs a token; without one, the line says how to find out.
async fn failure_tolerance(ctx: &Ctx, vault: &Vault, addrs: &[Addr], bound: u64) -> String {
    if ctx.token.is_none() {
        return "Whether the cluster survives losing a node: autopilot makes joined nodes voters \
                some 10-20 s after their unseal; `custody status` with a token shows it."
            .to_owned();
    }
    match raft_peers::wait_failure_tolerant(vault, addrs, Duration::from_secs(bound)).await {
        Ok((Some(took), Ok(h))) => format!(
            "The cluster became failure tolerant {:.0} s after the unseal: it survives losing {} node{}.",
            took.as_secs_f64(),
            h.failure_tolerance,
            if h.failure_tolerance == 1 { "" } else { "s" }
        ),
        Ok((_, Ok(h))) => format!(
            "NOT yet failure tolerant after {bound} s:\n{}",
            h.describe()
        ),
        Ok((_, Err(why))) => format!("Failure tolerance unknown after {bound} s: {why}"),
        Err(e) => format!("Failure tolerance unknown: {e}"),
    }
}

fn finish(
    ctx: &Ctx,
    report: &UnsealReport,
    shares: &Shares,
    tolerance: Option<String>,
    give_again: &[(String, GiveAgain)],
) -> Result<()> {
    let head = record(ctx, report, shares)?;
    let mut text = String::new();
    for n in &report.nodes {
        let line = match n.state {
            NodeState::Unsealed => "unsealed".to_owned(),
            NodeState::Sealed => format!(
                "sealed, {}/{} — needs {} more holder{}",
                n.progress,
                n.threshold,
                n.needs,
                if n.needs == 1 { "" } else { "s" }
            ),
            NodeState::WaitingToJoin => format!(
                "not joined yet{}",
                n.message
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ),
            NodeState::Down => format!("DOWN: {}", n.message.as_deref().unwrap_or("no answer")),
            NodeState::Refused => format!("REFUSED: {}", n.message.as_deref().unwrap_or("")),
        };
        text.push_str(&format!("{}  {line}\n", n.addr));
    }
    match &report.active {
        Some(a) => text.push_str(&format!("Active node: {a}\n")),
        None if report.nodes.iter().all(|n| n.state == NodeState::Unsealed) => text.push_str(
            &format!("NO node became active within {ACTIVE_BOUND:?}: the cluster serves nothing\n"),
        ),
        None if report.nodes.iter().any(|n| n.state == NodeState::Unsealed) => text.push_str(
            "No node is active yet: a leader is elected once enough voters are unsealed\n",
        ),
        None => {}
    }
    if let Some(t) = &tolerance {
        text.push_str(t);
        text.push('\n');
    }
    for (addr, g) in give_again {
        text.push_str(&format!("{addr}: {}\n", g.describe()));
    }
    text.push_str(&format!("Transcript head: {}", head.head_hash));
    let give_again_json: Vec<_> = give_again
        .iter()
        .map(|(addr, g)| json!({ "addr": addr, "holders": g }))
        .collect();
    ctx.ui.result(
        &text,
        json!({ "unseal": report, "failure_tolerance": tolerance, "give_again": give_again_json, "transcript_head": head.head_hash }),
    );

    if let Some(n) = report.nodes.iter().find(|n| n.state == NodeState::Refused) {
        let mut err = Error::new(
            Kind::Verification,
            format!(
                "{} refused the shares: {}",
                n.addr,
                n.message.as_deref().unwrap_or("")
            ),
        );
        for (addr, g) in give_again {
            err = err.hint(format!("{addr}: {}", g.describe()));
        }
        return Err(err);
    }
    let down = report
        .nodes
        .iter()
        .filter(|n| n.state == NodeState::Down)
        .count();
    if down > 0 {
        return Err(Error::failed(format!(
            "{down} node(s) did not answer; the others were served"
        )));
    }
    if report
        .nodes
        .iter()
        .any(|n| n.state == NodeState::WaitingToJoin && n.message.is_some())
    {
        return Err(Error::failed(
            "some followers did not join in time; run custody unseal again",
        ));
    }
    Ok(())
}
