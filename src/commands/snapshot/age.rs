//! How old a snapshot is: the check `snapshot verify` and `snapshot restore` share. The
//! transcript's saves decide, matched by sha256 and cluster, never by file name
//! ([`crate::transcript::snapshots`]): a snapshot older than the newest recorded save of its
//! cluster, or one the transcript never saw saved while it records saves, is refused (exit 3)
//! unless `--allow-older`. A manifest beside the file must say what the transcript recorded
//! when those bytes were saved.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::Checked;
use crate::error::{Error, Result};
use crate::transcript::snapshots::{self, Save, Standing};
use crate::ui::escape;

/// What the age check found; it passed (an older or unrecorded snapshot only with
/// `--allow-older`).
pub(super) struct Age {
    /// None: no transcript, or an empty one.
    standing: Option<Standing>,
    allow_older: bool,
    transcript: PathBuf,
}

/// The age check of the snapshot `checked` (read from `file`) against the transcript's lines
/// `entries` (read once, verified). `unchanged` ends a refusal: what was left alone.
pub(super) fn check(
    transcript: &Path,
    entries: &[Value],
    file: &Path,
    checked: &Checked,
    allow_older: bool,
    unchanged: &str,
) -> Result<Age> {
    let age = |standing| Age {
        standing,
        allow_older,
        transcript: transcript.to_owned(),
    };
    if entries.is_empty() {
        return Ok(age(None));
    }
    let sha256 = &checked.report.sha256;
    let claimed = (checked.manifest.as_ref())
        .map(|m| m.cluster_id.as_str())
        .filter(|c| !c.is_empty());
    let standing = snapshots::standing(entries, sha256, claimed);
    if let (Some(m), Standing::Newest(save) | Standing::Older { save, .. }) =
        (&checked.manifest, &standing)
    {
        let manifest = serde_json::to_value(m).unwrap_or_default();
        let recorded = entries.get(save.seq as usize).unwrap_or(&Value::Null);
        let differs = snapshots::manifest_differs(recorded, &manifest);
        if !differs.is_empty() {
            return Err(Error::verification(format!(
                "{}: its manifest ({}) differs from what the transcript {} recorded when these \
                 bytes were saved (entry {}) in {}: the manifest was changed. {unchanged}; put \
                 the manifest from the offline copy beside it",
                file.display(),
                crate::snapshot::manifest_path(file).display(),
                transcript.display(),
                save.seq,
                differs.join(", ")
            )));
        }
    }
    let named = |file: &Path| {
        format!(
            "{} (sha256 {}, raft index {})",
            file.display(),
            sha256,
            checked.report.meta.index
        )
    };
    match &standing {
        Standing::Older { save, newest } if !allow_older => Err(Error::verification(format!(
            "{} is an OLDER snapshot of cluster {}: these bytes are the save {}, and the newest \
             save of that cluster the transcript {} records is {}. An older snapshot brings back \
             what changed since it was saved: tokens revoked since, older policies, an older \
             share set. {unchanged}. Use the newest snapshot, or give --allow-older if this older \
             one is the one you mean (the transcript records it, and the newer save passed over)",
            file.display(),
            escape(&save.cluster_id),
            save.describe(),
            transcript.display(),
            newest.describe()
        ))),
        Standing::Unrecorded { newest } if !allow_older => Err(Error::verification(format!(
            "{} is not a snapshot the transcript {} saw saved: it records no save of these \
             bytes, but it records saves {}, so custody cannot tell whether this one is older. \
             {unchanged}. Give the transcript its save was recorded in (--transcript), use the \
             newest snapshot, or give --allow-older to accept one that may be older (the \
             transcript records it, and the newer save passed over)",
            named(file),
            transcript.display(),
            newest_list(claimed, newest)
        ))),
        _ => Ok(age(Some(standing))),
    }
}

/// "of cluster C, the newest …" or "of other clusters, the newest of each …".
fn newest_list(claimed: Option<&str>, newest: &[Save]) -> String {
    let list = newest
        .iter()
        .map(|s| format!("{} of cluster {}", s.describe(), escape(&s.cluster_id)))
        .collect::<Vec<_>>()
        .join("; ");
    match (claimed, newest) {
        (Some(c), [one]) if one.cluster_id == c => format!(
            "of cluster {} (its manifest's), the newest {}",
            escape(c),
            one.describe()
        ),
        (Some(c), _) => format!(
            "of no cluster {} (its manifest's) but of others, the newest of each: {list}",
            escape(c)
        ),
        (None, _) => {
            format!("(and nothing says of which cluster it is), the newest of each: {list}")
        }
    }
}

impl Age {
    /// Whether anything was there to check the age against.
    pub(super) fn checked(&self) -> bool {
        !matches!(self.standing, None | Some(Standing::NoSaves))
    }

    /// What the check found, for the operator.
    pub(super) fn line(&self) -> String {
        let t = self.transcript.display();
        let not_checked = "the age of this snapshot could NOT be checked (nothing says whether a \
                           newer one of its cluster was saved), nor its sha256 compared with one \
                           recorded at a save";
        match &self.standing {
            None => format!("no transcript at {t} (or it is empty): {not_checked}"),
            Some(Standing::NoSaves) => {
                format!("transcript {t} records no snapshot save: {not_checked}")
            }
            Some(Standing::Newest(save)) => format!(
                "transcript {t}: these bytes are the newest recorded save of cluster {}: {}{}",
                escape(&save.cluster_id),
                save.describe(),
                if self.allow_older {
                    " (--allow-older was not needed)"
                } else {
                    ""
                }
            ),
            Some(Standing::Older { save, newest }) => format!(
                "transcript {t}: an OLDER snapshot of cluster {}, accepted with --allow-older: \
                 these bytes are the save {}; the newer save passed over is {}",
                escape(&save.cluster_id),
                save.describe(),
                newest.describe()
            ),
            Some(Standing::Unrecorded { newest }) => format!(
                "transcript {t}: no save of these bytes is recorded, accepted with --allow-older \
                 (it may be older); passed over: {}",
                newest
                    .iter()
                    .map(|s| format!("{} of cluster {}", s.describe(), escape(&s.cluster_id)))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        }
    }

    /// What the check found, for the record: `age` (newest, older, unrecorded, not checked),
    /// `allow_older`, `recorded_save` (the save of these bytes: its entry and what it recorded,
    /// or why there is none), `newest_save` and `passed_over` (the newer saves an older or
    /// unrecorded snapshot was accepted over).
    pub(super) fn facts(&self) -> serde_json::Map<String, Value> {
        let recorded = |s: &Save| {
            json!({
                "seq": s.seq,
                "sha256_matches": true,
                "file": s.file,
                "time": s.time,
                "raft_index": s.raft_index,
                "cluster_id": s.cluster_id,
            })
        };
        let (age, recorded_save, newest, passed_over) = match &self.standing {
            None => ("not checked", json!("no transcript"), json!(null), vec![]),
            Some(Standing::NoSaves) => ("not checked", json!("none recorded"), json!(null), vec![]),
            Some(Standing::Newest(s)) => ("newest", recorded(s), json!(s), vec![]),
            Some(Standing::Older { save, newest }) => {
                ("older", recorded(save), json!(newest), vec![newest.clone()])
            }
            Some(Standing::Unrecorded { newest }) => (
                "unrecorded",
                json!("none recorded"),
                json!(null),
                newest.clone(),
            ),
        };
        let mut facts = serde_json::Map::new();
        facts.insert("age".into(), json!(age));
        facts.insert("allow_older".into(), json!(self.allow_older));
        facts.insert("recorded_save".into(), recorded_save);
        facts.insert("newest_save".into(), newest);
        facts.insert("passed_over".into(), json!(passed_over));
        facts
    }
}
