//! `custody snapshot restore`: a snapshot into a cluster that is not its source (unless
//! forced), sealed the same way, with every Raft peer a healthy voter. Only the newest recorded
//! save of its cluster (unless --allow-older), and only bytes that passed a `snapshot verify`
//! the transcript records (or the one `--verify` runs first and records).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::verify::{Offline, offline};
use super::{Checked, RESEAL_BOUND, age, check_against_manifest, upload_checked, wait_sealed};
use crate::error::{Error, Result};
use crate::flows::nodes::NodeStatus;
use crate::flows::{Ctx, active_node};
use crate::snapshot::Manifest;
use crate::transcript::Step;
use crate::transcript::snapshots::{self, Verified};
use crate::vault::Addr;

/// What `snapshot restore` was asked.
pub struct RestorePlan<'a> {
    pub file: &'a Path,
    /// Over the snapshot's source, or without a manifest.
    pub force: bool,
    /// A snapshot older than the newest recorded save of its cluster (or one never recorded).
    pub allow_older: bool,
    /// Run the offline verification first and record it.
    pub verify: bool,
    pub peer_wait: Duration,
}

/// The facts of the age check a restore records (`snapshot verify`'s, see `age.rs`).
const AGE_FACTS: [&str; 5] = [
    "age",
    "allow_older",
    "recorded_save",
    "newest_save",
    "passed_over",
];

/// How these bytes were verified before the restore.
enum Verification {
    /// A passed `snapshot verify` the transcript records, and the age checked now.
    Recorded(Verified, age::Age),
    /// `--verify`: the offline verification run now, recorded just before the upload.
    Run(Offline),
}

pub async fn restore(ctx: &Ctx, plan: &RestorePlan<'_>) -> Result<()> {
    let file = plan.file;
    ctx.require_token("snapshot restore (the target cluster's own token)")?;
    let checked = check_against_manifest(file, true)?;
    let entries = ctx.recorded_lines()?;
    let verification = verified(ctx, plan, &checked, &entries)?;
    let (report, manifest) = (&checked.report, &checked.manifest);
    let vault = ctx.vault()?;
    let addrs = ctx.require_addrs()?;
    let nodes = crate::flows::nodes::all_status(&vault, addrs).await;
    match manifest {
        None if !plan.force => {
            return Err(Error::precondition(format!(
                "{} has no manifest: custody cannot tell whether this cluster is the one it came from; \
                 give --force to restore anyway",
                file.display()
            )));
        }
        Some(m) if !plan.force => not_the_source(m, &nodes, addrs)?,
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
        plan.peer_wait,
        "A restore now could leave that follower running with the target's old keys, never to \
         rejoin. Nothing was changed: bring the peer back (or remove it with `bao operator raft \
         remove-peer`), wait for autopilot to promote it, and restore again",
    )
    .await?;
    let (verified_line, verified_fact, age_line, age_facts) =
        record_verification(ctx, file, &checked, &verification)?;
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
    let mut facts = json!({
        "file": file.display().to_string(),
        "sha256": report.sha256,
        "raft_index": report.meta.index,
        "target": addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "restored_into": addr.to_string(),
        "source_cluster": manifest.as_ref().map(|m| m.cluster_name.clone()),
        "forced": plan.force,
        "sent_sha256": sent.sha256,
        "sent_bytes": sent.size,
        "verified": verified_fact,
    });
    facts.as_object_mut().expect("an object").extend(age_facts);
    let head = ctx.transcript.append(Step::new(
        "blue-green",
        "restore",
        "operator",
        facts.clone(),
    ))?;
    ctx.ui.result(
        &format!(
            "{age_line}\n{verified_line}\n\
             Restored {} into {addr} in {:.1} s; the node sealed itself.\n\
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

/// What the restore line says of the verification: the line for the operator, the `verified`
/// fact, what the age check found (lines and facts). With --verify, its verify line is
/// recorded now, just before the upload (a refused restore records nothing).
fn record_verification(
    ctx: &Ctx,
    file: &Path,
    checked: &Checked,
    verification: &Verification,
) -> Result<(String, Value, String, serde_json::Map<String, Value>)> {
    Ok(match verification {
        Verification::Recorded(v, age) => (
            format!(
                "Verified before: `snapshot verify` of these bytes passed at transcript entry {} ({}{})",
                v.seq,
                crate::ui::escape(&v.time),
                if v.restore_test {
                    ", with a restore test"
                } else {
                    ", offline"
                }
            ),
            json!({ "seq": v.seq, "by": "snapshot verify", "restore_test": v.restore_test }),
            age.line(),
            age.facts(),
        ),
        Verification::Run(found) => {
            let facts = found.facts(file, checked, Value::Null, &[]);
            let age_facts = AGE_FACTS
                .iter()
                .map(|k| ((*k).to_owned(), facts[k].clone()))
                .collect();
            let head = ctx
                .transcript
                .append(Step::new("snapshot", "verify", "operator", facts))?;
            let seq = head.entries - 1;
            (
                format!("Verified now (--verify, offline), recorded at transcript entry {seq}"),
                json!({ "seq": seq, "by": "restore --verify", "restore_test": false }),
                found.lines.join("\n"),
                age_facts,
            )
        }
    })
}

/// Before anything is asked of the target: the age (exit 3 for an older snapshot unless
/// --allow-older), then a passed verify of these bytes in the transcript (exit 4 without one),
/// or, with --verify, the offline verification itself.
fn verified(
    ctx: &Ctx,
    plan: &RestorePlan<'_>,
    checked: &Checked,
    entries: &[Value],
) -> Result<Verification> {
    let file = plan.file;
    let unchanged = "Nothing was changed";
    if plan.verify {
        if checked.manifest.is_none() {
            return Err(Error::precondition(format!(
                "{}: --verify checks the snapshot against its manifest, and there is none ({}). \
                 Nothing was changed; put the manifest beside it, or check the archive alone \
                 with `custody snapshot verify --no-manifest` and restore with --force",
                file.display(),
                crate::snapshot::manifest_path(file).display()
            )));
        }
        let found = offline(
            ctx,
            file,
            checked,
            entries,
            false,
            plan.allow_older,
            unchanged,
        )?;
        return Ok(Verification::Run(found));
    }
    let age = age::check(
        ctx.transcript.path(),
        entries,
        file,
        checked,
        plan.allow_older,
        unchanged,
    )?;
    let sha256 = &checked.report.sha256;
    let Some(v) = snapshots::last_verified(entries, sha256) else {
        return Err(Error::precondition(format!(
            "{} (sha256 {sha256}) has no passed `snapshot verify` in the transcript {}: nothing \
             records that these bytes were checked before they go into a cluster. {unchanged}: \
             run `custody snapshot verify {}` (with --restore-test the quorum proves it opens) \
             and restore again, or give --verify to run the offline verification first",
            file.display(),
            ctx.transcript.path().display(),
            file.display()
        )));
    };
    if !age.checked() {
        ctx.ui.warn(age.line());
    }
    Ok(Verification::Recorded(v, age))
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
