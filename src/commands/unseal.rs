//! `custody unseal`: ceremony 2. Shares are gathered and checked first, held in zeroizing
//! memory, and submitted to every node until each is unsealed, including followers of a fresh
//! Raft cluster that join only after the leader is unsealed.

use std::time::Duration;

use serde_json::json;

use crate::cli::UnsealArgs;
use crate::error::{Error, Kind, Result};
use crate::flows::shares::{Shares, gather, prompt_need};
use crate::flows::unseal::{NodeState, UnsealReport, record, unseal_with};
use crate::flows::{Ctx, raft_peers};
use crate::vault::{Addr, Vault};

pub async fn run(ctx: &Ctx, args: &UnsealArgs) -> Result<()> {
    let addrs = ctx.require_addrs()?.to_vec();
    let vault = ctx.vault()?;
    crate::flows::nodes::one_cluster(&crate::flows::nodes::all_status(&vault, &addrs).await)?;
    let need = if args.shares.uses_prompts() {
        prompt_need(ctx, &vault, &addrs).await?
    } else {
        0
    };
    let shares = gather(ctx, &args.shares, need)?;
    let report = unseal_with(
        ctx,
        &vault,
        &addrs,
        &shares,
        Duration::from_secs(args.join_timeout),
    )
    .await?;
    let tolerance =
        if report.nodes.len() > 1 && report.nodes.iter().all(|n| n.state == NodeState::Unsealed) {
            Some(failure_tolerance(ctx, &vault, &addrs, args.join_timeout).await)
        } else {
            None
        };
    finish(ctx, &report, &shares, tolerance)
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
    if let Some(t) = &tolerance {
        text.push_str(t);
        text.push('\n');
    }
    text.push_str(&format!("Transcript head: {}", head.head_hash));
    ctx.ui.result(
        &text,
        json!({ "unseal": report, "failure_tolerance": tolerance, "transcript_head": head.head_hash }),
    );

    if let Some(n) = report.nodes.iter().find(|n| n.state == NodeState::Refused) {
        return Err(Error::new(
            Kind::Verification,
            format!(
                "{} refused the shares: {}",
                n.addr,
                n.message.as_deref().unwrap_or("")
            ),
        ));
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
