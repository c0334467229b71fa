//! Which unseal shares were in force when: the share sets a transcript records. A set comes
//! into force at `init` (`init`/`sys/init`), at the adoption of a cluster custody did not
//! initialize (`adopt`/`adopt`), or when a rotation's new shares are proven
//! (`rotate-shares`/`verified`); it stays in force until the next one. Everything here reads
//! lines already verified by [`super::read_verified`].

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The ceremony name every rotation line carries.
pub const ROTATION: &str = "rotate-shares";
/// The rotation step that puts a new share set in force.
pub const ROTATION_VERIFIED: &str = "verified";
/// The ceremony (and step) that records the holders of a cluster custody did not initialize.
pub const ADOPT: &str = "adopt";

/// Whether a line starts the record of a cluster's holders, as init does: init itself, or the
/// adoption of a cluster initialized without custody.
pub fn is_first_set(entry: &Value) -> bool {
    let (c, s) = (&entry["ceremony"], &entry["step"]);
    (c == "init" && s == "sys/init") || (c == ADOPT && s == ADOPT)
}

/// One holder of a share set, in the order the server made the shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetHolder {
    pub index: u32,
    pub fingerprint: String,
    #[serde(default)]
    pub user_id: String,
}

/// Where a share set came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetOrigin {
    /// `init`, `adopt` or `rotate-shares`.
    pub ceremony: String,
    /// The time of the line that put the set in force.
    pub time: String,
    /// That line's hash: which init or rotation, in which transcript.
    pub line_hash: String,
    /// The rotation's nonce (empty for init).
    #[serde(default)]
    pub rotation_nonce: String,
}

/// A set of unseal shares: who holds them, how many open the barrier, where they came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareSet {
    /// A stable identifier: `ss-` and 16 hex digits of the sha256 over the fingerprints in order,
    /// the threshold and the origin line's hash.
    pub id: String,
    pub threshold: u32,
    pub holders: Vec<SetHolder>,
    pub origin: SetOrigin,
}

impl ShareSet {
    pub fn new(threshold: u32, holders: Vec<SetHolder>, origin: SetOrigin) -> ShareSet {
        let id = set_id(threshold, &holders, &origin.line_hash);
        ShareSet {
            id,
            threshold,
            holders,
            origin,
        }
    }

    pub fn holds(&self, fingerprint: &str) -> bool {
        self.holders
            .iter()
            .any(|h| h.fingerprint.eq_ignore_ascii_case(fingerprint))
    }

    /// Whether this set can be the one a seal of `shares` shares, `threshold` to open, uses.
    pub fn fits_seal(&self, shares: u32, threshold: u32) -> bool {
        self.holders.len() == shares as usize && self.threshold == threshold
    }

    /// `ss-…: 3 of 5 (init 2026-…)`.
    pub fn describe(&self) -> String {
        format!(
            "{}: {} of {} ({} {})",
            self.id,
            self.threshold,
            self.holders.len(),
            self.origin.ceremony,
            self.origin.time
        )
    }
}

fn set_id(threshold: u32, holders: &[SetHolder], line_hash: &str) -> String {
    let canonical = json!({
        "fingerprints": holders.iter().map(|h| h.fingerprint.to_ascii_uppercase()).collect::<Vec<_>>(),
        "threshold": threshold,
        "origin": line_hash,
    });
    let digest =
        crate::digest::sha256_hex(&serde_json::to_vec(&canonical).expect("JSON values serialize"));
    format!("ss-{}", &digest[..16])
}

/// The share set a line puts in force, if it is an init, an adoption or a proven rotation. The facts hold
/// `threshold` and `holders` (`[{index, fingerprint, user_id}]`); a rotation's also `nonce`.
pub fn set_from_line(entry: &Value) -> Option<ShareSet> {
    let ceremony = entry["ceremony"].as_str()?;
    let step = entry["step"].as_str()?;
    let from_rotation = ceremony == ROTATION && step == ROTATION_VERIFIED;
    if !is_first_set(entry) && !from_rotation {
        return None;
    }
    let facts = &entry["facts"];
    let threshold = u32::try_from(facts["threshold"].as_u64()?).ok()?;
    let holders: Vec<SetHolder> = serde_json::from_value(facts["holders"].clone()).ok()?;
    if holders.is_empty() {
        return None;
    }
    Some(ShareSet::new(
        threshold,
        holders,
        SetOrigin {
            ceremony: ceremony.to_owned(),
            time: entry["time"].as_str().unwrap_or_default().to_owned(),
            line_hash: entry["hash"].as_str().unwrap_or_default().to_owned(),
            rotation_nonce: facts["nonce"].as_str().unwrap_or_default().to_owned(),
        },
    ))
}

/// Every share set the lines put in force, with the index of the line that did, in order.
pub fn sets(entries: &[Value]) -> Vec<(usize, ShareSet)> {
    entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| set_from_line(e).map(|s| (i, s)))
        .collect()
}

/// The share set in force after the last line.
pub fn current(entries: &[Value]) -> Option<ShareSet> {
    sets(entries).pop().map(|(_, s)| s)
}

/// The share set in force at line `index` (the last one put in force at or before it).
pub fn in_force_at(entries: &[Value], index: usize) -> Option<ShareSet> {
    sets(entries)
        .into_iter()
        .take_while(|(i, _)| *i <= index)
        .last()
        .map(|(_, s)| s)
}

/// A snapshot the transcript saw saved, and the share set its barrier opens with.
#[derive(Debug, Clone, Serialize)]
pub struct SavedSnapshot {
    pub file: String,
    pub sha256: String,
    pub time: String,
    /// The set recorded in its manifest, else the one in force when it was saved.
    pub share_set: Option<ShareSet>,
}

/// Every snapshot saved in these lines (`snapshot`/`save`), with its share set.
pub fn saved_snapshots(entries: &[Value]) -> Vec<SavedSnapshot> {
    entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e["ceremony"] == "snapshot" && e["step"] == "save")
        .map(|(i, e)| SavedSnapshot {
            file: e["facts"]["file"].as_str().unwrap_or_default().to_owned(),
            sha256: e["facts"]["sha256"].as_str().unwrap_or_default().to_owned(),
            time: e["time"].as_str().unwrap_or_default().to_owned(),
            share_set: serde_json::from_value(e["facts"]["share_set"].clone())
                .ok()
                .or_else(|| in_force_at(entries, i)),
        })
        .collect()
}

/// The saved snapshots (as [`saved_snapshots`]) that do not open with the share set `id`: those
/// that need another set, and those whose set is unknown (nothing says they open with `id`).
/// After a rotation, called with the new set's id: these still need the old shares.
pub fn saved_needing_other_than(entries: &[Value], id: &str) -> Vec<SavedSnapshot> {
    saved_snapshots(entries)
        .into_iter()
        .filter(|s| s.share_set.as_ref().is_none_or(|set| set.id != id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: u64, ceremony: &str, step: &str, facts: Value) -> Value {
        json!({
            "seq": seq, "time": format!("2026-01-0{}T00:00:00Z", seq + 1),
            "ceremony": ceremony, "step": step, "facts": facts, "hash": format!("h{seq}"),
        })
    }

    fn holders(fprs: &[&str]) -> Value {
        json!(
            fprs.iter()
                .enumerate()
                .map(|(i, f)| json!({"index": i + 1, "fingerprint": f, "user_id": format!("holder {f}")}))
                .collect::<Vec<_>>()
        )
    }

    #[test]
    fn init_then_rotation_then_snapshots() {
        let entries = vec![
            line(
                0,
                "init",
                "sys/init",
                json!({"threshold": 2, "holders": holders(&["A", "B", "C"])}),
            ),
            line(
                1,
                "snapshot",
                "save",
                json!({"file": "one.snap", "sha256": "s1"}),
            ),
            line(
                2,
                ROTATION,
                "start",
                json!({"threshold": 2, "holders": holders(&["A", "B", "D"])}),
            ),
            line(
                3,
                ROTATION,
                ROTATION_VERIFIED,
                json!({"threshold": 2, "nonce": "n1", "holders": holders(&["A", "B", "D"])}),
            ),
            line(
                4,
                "snapshot",
                "save",
                json!({"file": "two.snap", "sha256": "s2"}),
            ),
        ];
        let all = sets(&entries);
        assert_eq!(all.len(), 2, "a rotation's start puts nothing in force");
        let first = &all[0].1;
        let now = current(&entries).unwrap();
        assert_eq!(now.origin.rotation_nonce, "n1");
        assert!(now.holds("d") && !now.holds("C"));
        assert_ne!(first.id, now.id);
        assert!(first.id.starts_with("ss-") && first.id.len() == 19);
        assert_eq!(in_force_at(&entries, 2).unwrap().id, first.id);
        let snaps = saved_snapshots(&entries);
        assert_eq!(snaps[0].share_set.as_ref().unwrap().id, first.id);
        assert_eq!(snaps[1].share_set.as_ref().unwrap().id, now.id);
    }

    #[test]
    fn an_adoption_puts_a_set_in_force_as_init_does() {
        let adopt = line(
            0,
            ADOPT,
            ADOPT,
            json!({"threshold": 3, "holders": holders(&["A", "B", "C", "D", "E"])}),
        );
        let other_step = line(
            1,
            ADOPT,
            "check",
            json!({"threshold": 2, "holders": holders(&["A"])}),
        );
        let entries = vec![adopt.clone(), other_step];
        let set = current(&entries).unwrap();
        assert_eq!(set.origin.ceremony, ADOPT);
        assert!(set.fits_seal(5, 3));
        assert!(is_first_set(&adopt) && !is_first_set(&entries[1]));
        assert_eq!(sets(&entries).len(), 1);
    }

    #[test]
    fn snapshots_needing_another_set() {
        let init = line(
            0,
            "init",
            "sys/init",
            json!({"threshold": 2, "holders": holders(&["A", "B", "C"])}),
        );
        let old = set_from_line(&init).unwrap();
        let entries = vec![
            line(0, "snapshot", "save", json!({"file": "orphan.snap"})),
            init,
            line(2, "snapshot", "save", json!({"file": "one.snap"})),
            line(
                3,
                ROTATION,
                ROTATION_VERIFIED,
                json!({"threshold": 2, "nonce": "n1", "holders": holders(&["A", "B", "D"])}),
            ),
            line(4, "snapshot", "save", json!({"file": "two.snap"})),
            // A save whose manifest recorded the old set, though the new one was in force.
            line(
                5,
                "snapshot",
                "save",
                json!({"file": "three.snap", "share_set": serde_json::to_value(&old).unwrap()}),
            ),
        ];
        let new = current(&entries).unwrap();
        let names = |v: Vec<SavedSnapshot>| v.into_iter().map(|s| s.file).collect::<Vec<_>>();
        assert_eq!(
            names(saved_needing_other_than(&entries, &new.id)),
            ["orphan.snap", "one.snap", "three.snap"],
            "the unknown, the one saved before the rotation, and the one recorded with the old set"
        );
        assert_eq!(
            names(saved_needing_other_than(&entries, &old.id)),
            ["orphan.snap", "two.snap"]
        );
        let older = saved_needing_other_than(&entries, &new.id);
        assert_eq!(older[1].share_set.as_ref().unwrap().id, old.id);
        assert!(older[0].share_set.is_none());
        assert!(saved_needing_other_than(&entries[1..3], &old.id).is_empty());
        assert!(old.fits_seal(3, 2) && !old.fits_seal(5, 2) && !old.fits_seal(3, 3));
    }

    #[test]
    fn the_id_depends_on_holders_threshold_and_origin() {
        let h = |f: &[&str]| serde_json::from_value::<Vec<SetHolder>>(holders(f)).unwrap();
        let o = |hash: &str| SetOrigin {
            ceremony: "init".into(),
            time: String::new(),
            line_hash: hash.into(),
            rotation_nonce: String::new(),
        };
        let base = ShareSet::new(2, h(&["A", "B"]), o("x"));
        assert_eq!(base.id, ShareSet::new(2, h(&["a", "b"]), o("x")).id);
        assert_ne!(base.id, ShareSet::new(2, h(&["B", "A"]), o("x")).id);
        assert_ne!(base.id, ShareSet::new(1, h(&["A", "B"]), o("x")).id);
        assert_ne!(base.id, ShareSet::new(2, h(&["A", "B"]), o("y")).id);
    }
}
