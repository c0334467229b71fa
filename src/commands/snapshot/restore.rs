//! `custody snapshot restore`: a snapshot into a cluster that is not its source (unless
//! forced), sealed the same way, with every Raft peer a healthy voter. Only the newest recorded
//! save of its cluster (unless --allow-older), and only bytes that passed a `snapshot verify`
//! the transcript records (or the one `--verify` runs first and records).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::verify::{Offline, offline};
use super::{Checked, RESEAL_BOUND, age, check_against_manifest, upload_checked};
use crate::error::{Error, Result};
use crate::flows::nodes::NodeStatus;
use crate::flows::{Ctx, active_node};
use crate::poll::poll;
use crate::snapshot::Manifest;
use crate::snapshot::manifest::RestoreFence;
use crate::transcript::Step;
use crate::transcript::snapshots::{self, Verified};
use crate::vault::{Addr, Vault};

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
    let audit_fact = target_declares_the_sources_devices(ctx, &vault, &addr, manifest).await?;
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
    let outcome = wait_restored(&vault, &addr, manifest.as_ref(), RESEAL_BOUND).await?;
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
        "outcome": outcome.word(),
        "verified": verified_fact,
        "audit_devices": audit_fact,
    });
    facts.as_object_mut().expect("an object").extend(age_facts);
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
            "{age_line}\n{verified_line}\nRestored {} into {addr} in {:.1} s; {after}\nTranscript head: {}",
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

/// The target's active node declares every audit device of the source as the source had it (the
/// manifest's `audit_devices` against the target's `sys/audit`): else, after the restore and the
/// quorum's unseal, its post-unseal setup fails and no node becomes active, or it disables the
/// source's device silently. Refused (exit 4) before anything is sent, naming the stanzas the
/// target must declare. What the restore line records of the check.
async fn target_declares_the_sources_devices(
    ctx: &Ctx,
    vault: &Vault,
    addr: &Addr,
    manifest: &Option<Manifest>,
) -> Result<Value> {
    use crate::flows::audit_devices::{self, compare, explain, listing};
    let Some(source) = manifest.as_ref().and_then(|m| m.audit_devices.as_ref()) else {
        ctx.ui.warn(
            "the snapshot's audit devices are unknown (no manifest, or one saved by an older \
             custody or a token that could not read sys/audit): custody cannot check that the \
             target declares them. If it does not, no node becomes active after the unseal \
             (its server log says \"post-unseal setup failed … audit device\"), or a device \
             of the source is disabled silently",
        );
        return Ok(json!({ "checked": false }));
    };
    let target = audit_devices::read(vault, addr, "the target")
        .await
        .map_err(|e| {
            e.doing(
                "checking the target declares the snapshot's audit devices; nothing was restored",
            )
        })?;
    let diffs = compare(source, "the source", &target, "the target");
    if !diffs.is_empty() {
        return Err(Error::precondition(format!(
            "the target does not declare the snapshot's audit devices as its source did \
             (source: {}; target: {}). After the restore its active node would check each \
             declared device against the restored one and fail its post-unseal setup \
             (\"modifications to audit devices are not allowed\": no node becomes active), and \
             disable a restored device it does not declare, silently ending the source's audit \
             trail. Nothing was restored:{}",
            listing(source),
            listing(&target),
            explain(&diffs, source, "the source", "the target")
        )));
    }
    Ok(json!({ "checked": true, "devices": source }))
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
