//! `custody snapshot restore`: a snapshot into a cluster that is not its source (unless
//! forced), sealed the same way, with every Raft peer a healthy voter.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{RESEAL_BOUND, check_against_manifest, upload_checked, wait_sealed};
use crate::error::{Error, Result};
use crate::flows::nodes::NodeStatus;
use crate::flows::{Ctx, active_node};
use crate::snapshot::Manifest;
use crate::transcript::Step;
use crate::vault::Addr;

pub async fn restore(ctx: &Ctx, file: &Path, force: bool, peer_wait: Duration) -> Result<()> {
    ctx.require_token("snapshot restore (the target cluster's own token)")?;
    let checked = check_against_manifest(file, true)?;
    let (report, manifest) = (&checked.report, &checked.manifest);
    let vault = ctx.vault()?;
    let addrs = ctx.require_addrs()?;
    let nodes = crate::flows::nodes::all_status(&vault, addrs).await;
    match manifest {
        None if !force => {
            return Err(Error::precondition(format!(
                "{} has no manifest: custody cannot tell whether this cluster is the one it came from; \
                 give --force to restore anyway",
                file.display()
            )));
        }
        Some(m) if !force => not_the_source(m, &nodes, addrs)?,
        _ => {}
    }
    if let Some(m) = manifest {
        sealed_as_the_source(m, &nodes)?;
    }
    let addr = active_node(&vault, addrs).await?;
    crate::flows::raft_peers::wait_stable_voters(
        &ctx.ui,
        &vault,
        &addr,
        peer_wait,
        "A restore now could leave that follower running with the target's old keys, never to \
         rejoin. Nothing was changed: bring the peer back (or remove it with `bao operator raft \
         remove-peer`), wait for autopilot to promote it, and restore again",
    )
    .await?;
    let started = Instant::now();
    let sent = upload_checked(
        &vault,
        &addr,
        &checked,
        file,
        &format!("restoring {} into {addr}", file.display()),
    )
    .await?;
    wait_sealed(&vault, &addr, RESEAL_BOUND).await?;
    let facts = json!({
        "file": file.display().to_string(),
        "sha256": report.sha256,
        "raft_index": report.meta.index,
        "target": addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "restored_into": addr.to_string(),
        "source_cluster": manifest.as_ref().map(|m| m.cluster_name.clone()),
        "forced": force,
        "sent_sha256": sent.sha256,
        "sent_bytes": sent.size,
    });
    let head = ctx.transcript.append(Step::new(
        "blue-green",
        "restore",
        "operator",
        facts.clone(),
    ))?;
    ctx.ui.result(
        &format!(
            "Restored {} into {addr} in {:.1} s; the node sealed itself.\n\
             It now holds the source cluster's data and keys: the ORIGINAL quorum must unseal it \
             (`custody unseal` with the source's shares; the target's own init shares no longer work).\n\
             Transcript head: {}",
            file.display(),
            started.elapsed().as_secs_f64(),
            head.head_hash
        ),
        json!({ "restore": facts, "transcript_head": head.head_hash }),
    );
    Ok(())
}

/// The target is not the cluster the snapshot came from (by name or by node): a restore there
/// would roll it back.
fn not_the_source(m: &Manifest, nodes: &[NodeStatus], addrs: &[Addr]) -> Result<()> {
    let same_name = nodes
        .iter()
        .any(|n| !n.cluster_name.is_empty() && n.cluster_name == m.cluster_name);
    let same_node = addrs.iter().any(|a| m.nodes.contains(&a.to_string()));
    if !same_name && !same_node {
        return Ok(());
    }
    let mut seen = Vec::new();
    if same_name {
        seen.push(format!("cluster name {}", m.cluster_name));
    }
    if same_node {
        seen.push(format!("node {}", m.nodes.join(", ")));
    }
    Err(Error::precondition(format!(
        "the target looks like the cluster this snapshot came from ({}); a restore would roll it back. \
         Nothing was changed; give --force if that is what you want",
        seen.join(", ")
    )))
}

/// A restored server keeps its own seal configuration: the target must be split as the source
/// was, or the source's quorum could not unseal it.
fn sealed_as_the_source(m: &Manifest, nodes: &[NodeStatus]) -> Result<()> {
    let Some(n) = nodes.iter().find(|n| {
        n.reachable && n.initialized && (n.threshold, n.shares) != (m.seal_threshold, m.seal_shares)
    }) else {
        return Ok(());
    };
    Err(Error::precondition(format!(
        "{} is sealed {} of {}, the source was {} of {}: a restored server keeps its own seal \
         configuration, so the source's quorum could not unseal it. Initialize the target with \
         --threshold {} and {} keys; nothing was changed",
        n.addr,
        n.threshold,
        n.shares,
        m.seal_threshold,
        m.seal_shares,
        m.seal_threshold,
        m.seal_shares
    )))
}
