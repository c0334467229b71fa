//! `custody snapshot verify [--restore-test]`: the archive's checks offline, then (asked) a
//! restore into a throwaway server that the quorum unseals.

use std::time::Instant;

use serde_json::json;

use super::check_against_manifest;
use super::restore_test::{RestoreTest, restore_test};
use crate::cli::SnapshotVerifyArgs;
use crate::error::{Error, Result};
use crate::flows::Ctx;
use crate::snapshot::manifest_path;
use crate::transcript::Step;

pub async fn verify(ctx: &Ctx, args: &SnapshotVerifyArgs) -> Result<()> {
    verify_with_shares(ctx, args, None).await.map(|_| ())
}

/// `verify`, with the quorum's shares already in hand (the rehearsal) or read from the inputs.
pub async fn verify_with_shares(
    ctx: &Ctx,
    args: &SnapshotVerifyArgs,
    given: Option<&crate::flows::shares::Shares>,
) -> Result<RestoreTest> {
    let started = Instant::now();
    let (report, manifest) = check_against_manifest(&args.file)?;
    let offline_secs = started.elapsed().as_secs_f64();
    let mut lines = vec![
        format!(
            "{}: a Raft snapshot, {} bytes, sha256 {}",
            args.file.display(),
            report.size,
            report.sha256
        ),
        format!(
            "members {} — each matches SHA256SUMS",
            report
                .members
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!(
            "meta.json: raft index {} term {}, state.bin {} bytes",
            report.meta.index, report.meta.term, report.meta.state_size
        ),
    ];
    if report.sealed_sums {
        lines.push(
            "SHA256SUMS.sealed is SHA256SUMS encrypted with the source cluster's keys: only a server \
             unsealed with that cluster's quorum can check it, which a restore does"
                .into(),
        );
    }
    match &manifest {
        Some(_) => lines.push(format!(
            "{}: sha256, size, raft index and term match",
            manifest_path(&args.file).display()
        )),
        None => lines.push(format!(
            "no manifest ({}): only the archive's own checksums were checked",
            manifest_path(&args.file).display()
        )),
    }
    let mut restore = None;
    if args.restore_test {
        let m = manifest.as_ref().ok_or_else(|| {
            Error::precondition(
                "--restore-test compares with the manifest written by snapshot save; there is none",
            )
        })?;
        let r = restore_test(ctx, args, m, given).await?;
        lines.push(format!(
            "restore test: restored into a throwaway OpenBao, unsealed with the quorum, {} is {} as recorded, raft index {} ≥ {}",
            args.account, r.address, r.raft_index, m.raft_index
        ));
        restore = Some(r);
    }
    let facts = json!({
        "file": args.file.display().to_string(),
        "sha256": report.sha256,
        "size": report.size,
        "raft_index": report.meta.index,
        "raft_term": report.meta.term,
        "manifest": manifest.is_some(),
        "restore_test": restore,
    });
    let head = ctx
        .transcript
        .append(Step::new("snapshot", "verify", "operator", facts.clone()))?;
    lines.push(format!("Transcript head: {}", head.head_hash));
    ctx.ui.result(
        &lines.join("\n"),
        json!({ "verify": facts, "archive": report, "offline_seconds": offline_secs, "transcript_head": head.head_hash }),
    );
    Ok(restore.unwrap_or(RestoreTest {
        address: String::new(),
        raft_index: 0,
        seconds: 0.0,
        token: "",
    }))
}
