//! `custody snapshot verify [--restore-test]`: the archive's checks offline, the manifest's
//! (required unless --no-manifest), the age against the transcript's saves of its cluster (an
//! older snapshot refused unless --allow-older), the share set it needs, then (asked) a restore
//! into a throwaway server that the quorum unseals. The transcript is read once, verified.

use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};

use super::age::{self, Age};
use super::check_against_manifest;
use super::restore_test::{RestoreTest, restore_test};
use crate::cli::SnapshotVerifyArgs;
use crate::error::{Error, Result};
use crate::flows::Ctx;
use crate::snapshot::{Manifest, manifest_path};
use crate::transcript::Step;
use crate::transcript::share_sets::{self, ShareSet};
use crate::ui::escape;

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
    let checked = check_against_manifest(&args.file, args.restore_test)?;
    let entries = ctx.recorded_lines()?;
    let found = offline(
        ctx,
        &args.file,
        &checked,
        &entries,
        args.no_manifest,
        args.allow_older,
        "Nothing was recorded",
    )?;
    let offline_secs = started.elapsed().as_secs_f64();
    let (report, manifest) = (&checked.report, &checked.manifest);
    let mut lines = found.lines.clone();
    let needed = found.share_set();
    let mut restore = None;
    let mut holders = Vec::new();
    if args.restore_test {
        let m = manifest.as_ref().ok_or_else(|| {
            Error::precondition(
                "--restore-test compares with the manifest written by snapshot save; there is none",
            )
        })?;
        let (r, identified) = restore_test(ctx, args, m, &checked, given, needed).await?;
        holders = identified;
        lines.push(format!(
            "restore test: restored into a throwaway OpenBao, unsealed with the quorum, {} is {} as recorded, raft index {} ≥ {}",
            args.account, r.address, r.raft_index, m.raft_index
        ));
        lines.push(r.server.line());
        if let Some(f) = &m.restore_fence {
            lines.push(format!(
                "restore test: the restored copy came up frozen on restore fence {} in {}: it \
                 signs nothing until its counters are raised",
                f.id,
                f.mounts
                    .iter()
                    .map(|m| format!("{}/", crate::ui::escape(m)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        restore = Some(r);
    }
    let facts = found.facts(&args.file, &checked, json!(restore), &holders);
    let head = ctx
        .transcript
        .append(Step::new("snapshot", "verify", "operator", facts.clone()))?;
    lines.push(format!("Transcript head: {}", head.head_hash));
    ctx.ui.result(
        &lines.join("\n"),
        json!({
            "verify": facts,
            "archive": report,
            "share_set": needed,
            "current_share_set": share_sets::current(&entries).map(|s| s.id),
            "offline_seconds": offline_secs,
            "transcript_head": head.head_hash,
        }),
    );
    Ok(restore.unwrap_or(RestoreTest {
        address: String::new(),
        raft_index: 0,
        seconds: 0.0,
        token: "",
        server: Default::default(),
        frozen_on_fence: None,
    }))
}

/// What the offline verification found: it passed (the archive, the manifest, the age), and
/// the share set the snapshot needs.
pub(super) struct Offline {
    /// What was checked, for the operator.
    pub(super) lines: Vec<String>,
    age: Age,
    needs: Option<(ShareSet, SetSource)>,
    no_manifest: bool,
}

/// `snapshot verify`'s checks that need no server, of the snapshot `checked` (read from `file`)
/// against the transcript's lines `entries`: the manifest (required unless `no_manifest`), the
/// age (an older snapshot refused unless `allow_older`), the share set it needs. `restore
/// --verify` runs the same. `unchanged` ends a refusal: what was left alone.
pub(super) fn offline(
    ctx: &Ctx,
    file: &Path,
    checked: &super::Checked,
    entries: &[Value],
    no_manifest: bool,
    allow_older: bool,
    unchanged: &str,
) -> Result<Offline> {
    let (report, manifest) = (&checked.report, &checked.manifest);
    if manifest.is_none() && !no_manifest {
        return Err(Error::verification(format!(
            "{}: no manifest ({}): nothing says this is the snapshot `snapshot save` wrote, only \
             that the archive is consistent with itself. Put the manifest beside it, or give \
             --no-manifest to check the archive alone",
            file.display(),
            manifest_path(file).display()
        )));
    }
    let age = age::check(
        ctx.transcript.path(),
        entries,
        file,
        checked,
        allow_older,
        unchanged,
    )?;
    if !age.checked() {
        ctx.ui.warn(age.line());
    }
    let needs = snapshot_share_set(manifest.as_ref(), entries, &report.sha256)?;
    let mut lines = archive_lines(file, checked);
    lines.push(age.line());
    lines.extend(share_set_lines(&needs, entries));
    Ok(Offline {
        lines,
        age,
        needs,
        no_manifest,
    })
}

impl Offline {
    pub(super) fn share_set(&self) -> Option<&ShareSet> {
        self.needs.as_ref().map(|(set, _)| set)
    }

    /// The verify line's facts; `restore_test` what the restore test found (or null), `holders`
    /// the fingerprints it identified.
    pub(super) fn facts(
        &self,
        file: &Path,
        checked: &super::Checked,
        restore_test: Value,
        holders: &[String],
    ) -> Value {
        let (report, manifest) = (&checked.report, &checked.manifest);
        let mut facts = json!({
            "file": file.display().to_string(),
            "sha256": report.sha256,
            "size": report.size,
            "raft_index": report.meta.index,
            "raft_term": report.meta.term,
            "cluster_id": manifest.as_ref().map(|m| m.cluster_id.clone()),
            "manifest": manifest.is_some(),
            "no_manifest": self.no_manifest,
            "restore_test": restore_test,
            "share_set": self.share_set().map(|s| s.id.clone()),
            "holders": holders,
        });
        facts
            .as_object_mut()
            .expect("an object")
            .extend(self.age.facts());
        facts
    }
}

/// What the offline checks found: the archive, its members, meta.json, the sealed sums, and the
/// manifest (or why there is none).
fn archive_lines(file: &Path, checked: &super::Checked) -> Vec<String> {
    let (report, manifest) = (&checked.report, &checked.manifest);
    let manifest_file = manifest_path(file);
    let mut lines = vec![
        format!(
            "{}: a Raft snapshot, {} bytes, sha256 {}, one gzip member unpacking to {} bytes",
            file.display(),
            report.size,
            report.sha256,
            report.unpacked_size
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
    match manifest {
        Some(m) => {
            lines.push(format!(
                "{}: sha256, size, raft index and term match",
                manifest_file.display()
            ));
            lines.push(match &m.restore_fence {
                Some(f) => format!(
                    "restore fence {}: in state.bin for each of its {} mount(s), so a cluster \
                     restored from this snapshot comes up frozen",
                    f.id,
                    f.mounts.len()
                ),
                None => "restore fence: none (saved from a cluster without a signer mount, or by \
                         a custody that did not fence its snapshots): a cluster restored from it \
                         signs at once"
                    .to_owned(),
            });
        }
        None => lines.push(format!(
            "no manifest ({}); --no-manifest: only the archive's internal consistency was checked \
             (gzip, tar, every member against SHA256SUMS, meta.json), not that this is the \
             snapshot that was saved",
            manifest_file.display()
        )),
    }
    lines
}

/// Where custody learned which share set a snapshot needs.
enum SetSource {
    Manifest,
    /// The transcript's save of a file with this sha256 (the set it recorded, or the one in
    /// force then).
    Transcript,
}

/// The share set this snapshot's barrier opens with: the manifest's, else the one the
/// transcript's save of these bytes implies (when its shape is the manifest's seal). A
/// manifest and a save line of the same bytes that name different sets are refused.
fn snapshot_share_set(
    manifest: Option<&Manifest>,
    entries: &[Value],
    sha256: &str,
) -> Result<Option<(ShareSet, SetSource)>> {
    let saves: Vec<&Value> = entries
        .iter()
        .filter(|e| e["ceremony"] == "snapshot" && e["step"] == "save")
        .filter(|e| e["facts"]["sha256"].as_str() == Some(sha256))
        .collect();
    if let Some(set) = manifest.and_then(|m| m.share_set.as_ref()) {
        for e in &saves {
            if let Some(recorded) = e["facts"]["share_set"]["id"].as_str()
                && recorded != set.id
            {
                return Err(Error::verification(format!(
                    "the manifest says this snapshot needs share set {}, the transcript's save of \
                     it (entry {}) recorded set {}: one of them was changed",
                    escape(&set.id),
                    e["seq"],
                    escape(recorded)
                )));
            }
        }
        return Ok(Some((set.clone(), SetSource::Manifest)));
    }
    let from_transcript = share_sets::saved_snapshots(entries)
        .into_iter()
        .filter(|s| s.sha256 == sha256)
        .filter_map(|s| s.share_set)
        .next_back()
        .filter(|set| manifest.is_none_or(|m| set.fits_seal(m.seal_shares, m.seal_threshold)));
    Ok(from_transcript.map(|set| (set, SetSource::Transcript)))
}

/// The share set the snapshot needs, its holders, and (when the transcript's current set is
/// another) that it needs the older set's shares.
fn share_set_lines(needs: &Option<(ShareSet, SetSource)>, entries: &[Value]) -> Vec<String> {
    let Some((set, source)) = needs else {
        return vec![
            "share set: unknown — neither the manifest nor the transcript says whose shares open \
             this snapshot; it opens with the shares in force when it was saved"
                .into(),
        ];
    };
    let mut lines = vec![format!(
        "share set {}: {} of {}, from {} {}{}; its holders:",
        escape(&set.id),
        set.threshold,
        set.holders.len(),
        escape(&set.origin.ceremony),
        escape(&set.origin.time),
        match source {
            SetSource::Manifest => " (recorded in the manifest)",
            SetSource::Transcript =>
                " (the manifest names none: the set the transcript had in force at its save)",
        }
    )];
    for h in &set.holders {
        lines.push(format!(
            "  {}. {} {}",
            h.index,
            escape(&h.fingerprint),
            escape(&h.user_id)
        ));
    }
    if let Some(current) = share_sets::current(entries).filter(|c| c.id != set.id) {
        let older = share_sets::sets(entries)
            .iter()
            .any(|(_, s)| s.id == set.id);
        let describe = |s: &ShareSet| {
            format!(
                "{} (from {} {})",
                escape(&s.id),
                escape(&s.origin.ceremony),
                escape(&s.origin.time)
            )
        };
        lines.push(if older {
            format!(
                "this snapshot needs the shares of the OLDER set {}, not the current set {}: \
                 the holders above, with the shares they held then",
                describe(set),
                describe(&current)
            )
        } else {
            format!(
                "this snapshot needs the shares of set {}, which this transcript never had in \
                 force, not the current set {}",
                describe(set),
                describe(&current)
            )
        });
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::Transcript;

    fn holders(fprs: &[&str]) -> Value {
        json!(
            fprs.iter()
                .enumerate()
                .map(|(i, f)| json!({"index": i + 1, "fingerprint": f, "user_id": format!("h\u{1b}[2J{f}")}))
                .collect::<Vec<_>>()
        )
    }

    #[test]
    fn the_set_a_snapshot_needs_and_an_older_one_said() {
        let dir = tempfile::tempdir().unwrap();
        let t = Transcript::at(dir.path().join("t.jsonl"));
        let step = |c: &str, s: &str, facts: Value| {
            t.append(Step::new(c, s, "operator", facts)).unwrap();
        };
        step(
            "init",
            "sys/init",
            json!({"threshold": 2, "holders": holders(&["A", "B", "C"])}),
        );
        step(
            "snapshot",
            "save",
            json!({"file": "a.snap", "sha256": "aa"}),
        );
        let entries = crate::transcript::read_verified(t.path()).unwrap().1;
        let old = share_sets::current(&entries).unwrap();
        // No manifest: the transcript's save of these bytes says which set.
        let (set, _) = snapshot_share_set(None, &entries, "aa").unwrap().unwrap();
        assert_eq!(set.id, old.id);
        assert!(snapshot_share_set(None, &entries, "bb").unwrap().is_none());
        let lines = share_set_lines(&Some((set.clone(), SetSource::Transcript)), &entries);
        assert!(lines[0].starts_with(&format!("share set {}: 2 of 3, from init ", old.id)));
        assert_eq!(lines[1], "  1. A h\\u{1b}[2JA", "user ids are escaped");
        assert!(!lines.join("\n").contains("OLDER"));

        step(
            share_sets::ROTATION,
            "verified",
            json!({"threshold": 2, "nonce": "n", "holders": holders(&["A", "B", "D"])}),
        );
        let entries = crate::transcript::read_verified(t.path()).unwrap().1;
        let new = share_sets::current(&entries).unwrap();
        let lines = share_set_lines(&Some((set.clone(), SetSource::Manifest)), &entries);
        assert!(
            lines.last().unwrap().starts_with(&format!(
                "this snapshot needs the shares of the OLDER set {} (from init ",
                old.id
            )) && lines
                .last()
                .unwrap()
                .contains(&format!("not the current set {}", new.id)),
            "{lines:?}"
        );

        // A manifest naming another set than the save line of the same bytes: refused.
        step(
            "snapshot",
            "save",
            json!({"file": "b.snap", "sha256": "cc", "share_set": serde_json::to_value(&new).unwrap()}),
        );
        let entries = crate::transcript::read_verified(t.path()).unwrap().1;
        let manifest = |share_set: Option<ShareSet>| Manifest {
            schema_version: 1,
            file: "b.snap".into(),
            sha256: "cc".into(),
            size: 1,
            raft_index: 1,
            raft_term: 1,
            cluster_id: String::new(),
            cluster_name: String::new(),
            nodes: vec![],
            server_version: String::new(),
            seal_shares: 3,
            seal_threshold: 2,
            time: String::new(),
            mount: String::new(),
            accounts: Default::default(),
            plugin_sha256: None,
            custody_version: String::new(),
            share_set,
            restore_fence: None,
            audit_devices: None,
        };
        let err = snapshot_share_set(Some(&manifest(Some(old.clone()))), &entries, "cc")
            .err()
            .expect("a changed manifest passed");
        assert_eq!(err.kind, crate::error::Kind::Verification);
        let (set, _) = snapshot_share_set(Some(&manifest(Some(new.clone()))), &entries, "cc")
            .unwrap()
            .unwrap();
        assert_eq!(set.id, new.id);
        // A manifest without a set, whose seal is not the transcript's set's shape: unknown.
        let mut other_shape = manifest(None);
        other_shape.seal_shares = 5;
        assert!(
            snapshot_share_set(Some(&other_shape), &entries, "aa")
                .unwrap()
                .is_none()
        );
        assert_eq!(
            snapshot_share_set(Some(&manifest(None)), &entries, "aa")
                .unwrap()
                .unwrap()
                .0
                .id,
            old.id
        );
    }
}
