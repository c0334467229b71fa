//! The snapshots a transcript saw saved and verified, matched by their bytes' sha256 and their
//! cluster, never by file name: which save is the newest of its cluster, how a snapshot stands
//! against it, and whether its bytes passed a `snapshot verify`. Everything here reads lines
//! already verified by [`super::read_verified`].
//!
//! "Newest" is the last save of a cluster in transcript order: raft indices of different
//! clusters are not comparable, and a cluster restored from a snapshot carries its source's
//! cluster id, so a green restored from blue and blue itself are one cluster here (after a
//! cutover, green's newer save makes blue's older one older).

use serde::Serialize;
use serde_json::Value;

use crate::ui::escape;

/// One `snapshot`/`save` line: what the transcript recorded of a saved snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Save {
    /// The line's sequence number (its index among the lines).
    pub seq: u64,
    /// The line's time.
    pub time: String,
    /// The file name it was saved under (shown, never matched).
    pub file: String,
    pub sha256: String,
    pub cluster_id: String,
    pub raft_index: u64,
}

impl Save {
    /// `blue.snap: raft index 412, saved 2026-…, sha256 … (transcript entry 7)`, the text from
    /// the transcript escaped.
    pub fn describe(&self) -> String {
        format!(
            "{}: raft index {}, saved {}, sha256 {} (transcript entry {})",
            escape(&self.file),
            self.raft_index,
            escape(&self.time),
            escape(&self.sha256),
            self.seq
        )
    }
}

/// Every save in these lines, in order.
pub fn saves(entries: &[Value]) -> Vec<Save> {
    entries
        .iter()
        .filter(|e| e["ceremony"] == "snapshot" && e["step"] == "save")
        .map(|e| {
            let f = &e["facts"];
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            Save {
                seq: e["seq"].as_u64().unwrap_or_default(),
                time: text(&e["time"]),
                file: text(&f["file"]),
                sha256: text(&f["sha256"]),
                cluster_id: text(&f["cluster_id"]),
                raft_index: f["raft_index"].as_u64().unwrap_or_default(),
            }
        })
        .collect()
}

/// How a snapshot's bytes stand against the saves the transcript records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// The transcript records no save at all: nothing to compare with.
    NoSaves,
    /// The save of these bytes is the last save of its cluster.
    Newest(Save),
    /// The save of these bytes was followed by a later save of its cluster, `newest` the last.
    Older { save: Save, newest: Save },
    /// No save of these bytes, though the transcript records saves: `newest` is the last save of
    /// the cluster its manifest claims, or, when the transcript records none of that cluster
    /// (or nothing claims one), the last save of each cluster it records. Whether it is older
    /// cannot be told.
    Unrecorded { newest: Vec<Save> },
}

/// Where the snapshot with these bytes stands. The cluster is the one its save recorded; only a
/// snapshot the transcript never saw saved is placed by `claimed_cluster` (its manifest's,
/// which nobody signed).
pub fn standing(entries: &[Value], sha256: &str, claimed_cluster: Option<&str>) -> Standing {
    let all = saves(entries);
    if all.is_empty() {
        return Standing::NoSaves;
    }
    let last_of = |cluster: &str| all.iter().rev().find(|s| s.cluster_id == cluster).cloned();
    if let Some(save) = all.iter().rev().find(|s| s.sha256 == sha256) {
        let newest = last_of(&save.cluster_id).expect("the save is one of its cluster's");
        return if newest.seq == save.seq {
            Standing::Newest(newest)
        } else {
            Standing::Older {
                save: save.clone(),
                newest,
            }
        };
    }
    if let Some(newest) = claimed_cluster.and_then(last_of) {
        return Standing::Unrecorded {
            newest: vec![newest],
        };
    }
    let mut clusters: Vec<&str> = Vec::new();
    for s in &all {
        if !clusters.contains(&s.cluster_id.as_str()) {
            clusters.push(&s.cluster_id);
        }
    }
    Standing::Unrecorded {
        newest: clusters.into_iter().filter_map(last_of).collect(),
    }
}

/// A `snapshot`/`verify` line of these bytes: every such line records a verification that
/// passed (a failed one records nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    pub seq: u64,
    pub time: String,
    /// It restored the snapshot into a throwaway server the quorum unsealed.
    pub restore_test: bool,
    /// It passed with `--allow-older`.
    pub allow_older: bool,
}

/// The last passed `snapshot verify` of the snapshot with these bytes, if any.
pub fn last_verified(entries: &[Value], sha256: &str) -> Option<Verified> {
    entries
        .iter()
        .rev()
        .filter(|e| e["ceremony"] == "snapshot" && e["step"] == "verify")
        .find(|e| e["facts"]["sha256"].as_str() == Some(sha256))
        .map(|e| Verified {
            seq: e["seq"].as_u64().unwrap_or_default(),
            time: e["time"].as_str().unwrap_or_default().to_owned(),
            restore_test: e["facts"]["restore_test"].is_object(),
            allow_older: e["facts"]["allow_older"] == true,
        })
}

/// The fields of `manifest` (a manifest as JSON) whose value differs from what the save line
/// `entry` recorded. A field the line does not hold (a save by an older custody) is not
/// compared.
pub fn manifest_differs(entry: &Value, manifest: &Value) -> Vec<String> {
    let Some(fields) = manifest.as_object() else {
        return Vec::new();
    };
    fields
        .iter()
        .filter(|(k, v)| entry["facts"].get(k.as_str()).is_some_and(|r| r != *v))
        .map(|(k, _)| k.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn save(seq: u64, sha: &str, cluster: &str, index: u64) -> Value {
        json!({
            "seq": seq, "time": format!("2026-01-0{}T00:00:00Z", seq + 1),
            "ceremony": "snapshot", "step": "save",
            "facts": {"file": format!("s{seq}.snap"), "sha256": sha, "cluster_id": cluster, "raft_index": index},
        })
    }

    fn verify(seq: u64, sha: &str, facts: Value) -> Value {
        let mut f = facts;
        f["sha256"] = json!(sha);
        json!({"seq": seq, "time": "t", "ceremony": "snapshot", "step": "verify", "facts": f})
    }

    #[test]
    fn the_last_save_of_the_cluster_is_the_newest_whatever_the_name() {
        assert_eq!(standing(&[], "aa", None), Standing::NoSaves);
        let entries = vec![
            save(0, "aa", "blue", 100),
            save(1, "xx", "other", 900),
            save(2, "bb", "blue", 50),
        ];
        let all = saves(&entries);
        // Another cluster's later save, with a higher raft index, does not make "bb" older.
        assert_eq!(
            standing(&entries, "bb", None),
            Standing::Newest(all[2].clone())
        );
        assert_eq!(
            standing(&entries, "xx", Some("blue")),
            Standing::Newest(all[1].clone())
        );
        // The save of "aa" is followed by blue's "bb": older, whatever the manifest claims.
        assert_eq!(
            standing(&entries, "aa", Some("other")),
            Standing::Older {
                save: all[0].clone(),
                newest: all[2].clone()
            }
        );
        // Bytes never saved: the claimed cluster's newest, else each cluster's.
        assert_eq!(
            standing(&entries, "cc", Some("blue")),
            Standing::Unrecorded {
                newest: vec![all[2].clone()]
            }
        );
        assert_eq!(
            standing(&entries, "cc", Some("nobody")),
            Standing::Unrecorded {
                newest: vec![all[2].clone(), all[1].clone()]
            }
        );
        assert_eq!(
            standing(&entries, "cc", None),
            standing(&entries, "cc", Some("nobody"))
        );
        assert!(all[0].describe().starts_with(
            "s0.snap: raft index 100, saved 2026-01-01T00:00:00Z, sha256 aa (transcript entry 0)"
        ));
    }

    #[test]
    fn a_passed_verify_is_found_by_sha256() {
        let entries = vec![
            save(0, "aa", "blue", 1),
            verify(1, "aa", json!({"file": "renamed.snap"})),
            verify(2, "bb", json!({"restore_test": {"address": "0x"}})),
            verify(3, "aa", json!({"allow_older": true})),
        ];
        assert_eq!(
            last_verified(&entries, "aa"),
            Some(Verified {
                seq: 3,
                time: "t".into(),
                restore_test: false,
                allow_older: true
            })
        );
        assert!(last_verified(&entries, "bb").unwrap().restore_test);
        assert_eq!(last_verified(&entries, "cc"), None);
        assert_eq!(
            last_verified(&entries[..1], "aa"),
            None,
            "a save is no verify"
        );
    }

    #[test]
    fn a_manifest_is_compared_with_its_recorded_save() {
        let line = json!({"facts": {"sha256": "aa", "cluster_name": "blue", "nodes": ["a", "b"]}});
        let same =
            json!({"sha256": "aa", "cluster_name": "blue", "nodes": ["a", "b"], "new_field": 1});
        assert!(manifest_differs(&line, &same).is_empty());
        let changed = json!({"sha256": "aa", "cluster_name": "green", "nodes": ["a"]});
        assert_eq!(manifest_differs(&line, &changed), ["cluster_name", "nodes"]);
    }
}
