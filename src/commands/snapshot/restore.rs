//! `custody snapshot restore`: a snapshot into a cluster that is not its source (unless
//! forced), sealed the same way, with every Raft peer a healthy voter.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{RESEAL_BOUND, check_against_manifest, upload_checked};
use crate::error::{Error, Result};
use crate::flows::nodes::NodeStatus;
use crate::flows::{Ctx, active_node};
use crate::poll::poll;
use crate::snapshot::Manifest;
use crate::snapshot::manifest::RestoreFence;
use crate::transcript::Step;
use crate::vault::{Addr, Vault};

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
    let outcome = wait_restored(&vault, &addr, manifest.as_ref(), RESEAL_BOUND).await?;
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
        "outcome": outcome.word(),
    });
    let head = ctx.transcript.append(Step::new(
        "blue-green",
        "restore",
        "operator",
        facts.clone(),
    ))?;
    let after = match outcome {
        Restored::Sealed => {
            "the node sealed itself.\nIt now holds the source cluster's data and keys: the \
             ORIGINAL quorum must unseal it (`custody unseal` with the source's shares; the \
             target's own init shares no longer work)."
        }
        Restored::InPlace => {
            "the node kept running on the restored data (its keys are the snapshot's: it is \
             the source, or was restored from it before).\nIts signer mounts came up FROZEN on \
             the snapshot's restore fence: their counters are the snapshot's, older than the \
             nonces signed since. Lift it with `custody wallet unfreeze \
             --nonce-floor-from-rpc URL` (or --nonce-floor N)."
        }
    };
    ctx.ui.result(
        &format!(
            "Restored {} into {addr} in {:.1} s; {after}\nTranscript head: {}",
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

/// What a restore left on the node it was sent to.
#[derive(Debug, Clone, Copy)]
enum Restored {
    /// Its own keys cannot open the restored data: the source's quorum must unseal it.
    Sealed,
    /// Its keys are the snapshot's (the source, or a cluster restored from it before): it kept
    /// running on the restored data, and its signer mounts came up frozen on the fence.
    InPlace,
}

impl Restored {
    fn word(self) -> &'static str {
        match self {
            Restored::Sealed => "sealed",
            Restored::InPlace => "in-place",
        }
    }
}

/// Waits until the node sealed itself, or shows the restored data: every mount the snapshot
/// fenced frozen on its fence.
async fn wait_restored(
    vault: &Vault,
    addr: &Addr,
    manifest: Option<&Manifest>,
    bound: Duration,
) -> Result<Restored> {
    let fence = manifest.and_then(|m| m.restore_fence.as_ref());
    poll(bound, Duration::from_millis(250), || async {
        match vault.seal_status(addr).await {
            Ok(s) if s.sealed => return Ok(Restored::Sealed),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
        match fence {
            Some(f) if frozen_on(vault, addr, f).await => Ok(Restored::InPlace),
            Some(_) => Err(
                "it is unsealed, and its signer mounts are not frozen on the \
                            snapshot's restore fence yet"
                    .to_owned(),
            ),
            None => Err(
                "it is unsealed (the snapshot carries no restore fence that would show \
                         the restored data)"
                    .to_owned(),
            ),
        }
    })
    .await
    .map_err(|why| {
        Error::failed(format!(
            "{addr} did not seal itself within {bound:?} after the restore, nor show the \
             restored data ({why})"
        ))
    })
}

/// Every mount `fence` was written into is frozen as restored on it.
async fn frozen_on(vault: &Vault, addr: &Addr, fence: &RestoreFence) -> bool {
    for mount in &fence.mounts {
        let on_it = match vault.signer(mount).config(addr).await {
            Ok(c) => c["restored"]["fences"]
                .as_array()
                .is_some_and(|fs| fs.iter().any(|f| f["id"] == fence.id.as_str())),
            Err(_) => false,
        };
        if !on_it {
            return false;
        }
    }
    true
}
