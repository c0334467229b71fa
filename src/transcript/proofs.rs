//! Who has proven a share of which share set, and when: the lines of one or more verified
//! transcripts in which custody identified holders by their secret key while the server (or a
//! throwaway restore) accepted their shares. Pure: the caller reads and verifies the files and
//! says what time it is.
//!
//! A proof counts only for the set it is a proof of: the set in force at its line (an unseal, a
//! root generation, a rotation's old shares), the set named by id (a restore test of a saved
//! snapshot), or the set a rotation's nonce puts in force (its verify and verified lines). A
//! proof of an older set never counts for a later one: a rotation makes new shares for everyone.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::share_sets::{ADOPT, ROTATION, ROTATION_VERIFIED, SetHolder, ShareSet, set_from_line};

/// The lines of one verified transcript, the name it is shown by, and how many of its lines
/// (from the first) a holder's signature that checks out covers.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub name: &'a str,
    pub entries: &'a [Value],
    /// Lines 1 to this are signed; a proof from a later line is unsigned.
    pub signed_lines: usize,
}

impl<'a> Source<'a> {
    /// A transcript whose signatures were not checked: every line unsigned.
    pub fn unsigned(name: &'a str, entries: &'a [Value]) -> Source<'a> {
        Source {
            name,
            entries,
            signed_lines: 0,
        }
    }
}

/// What a line proves a share by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ProofKind {
    #[serde(rename = "unseal")]
    Unseal,
    #[serde(rename = "root generation")]
    RootGeneration,
    #[serde(rename = "restore test")]
    RestoreTest,
    #[serde(rename = "rotation (old shares)")]
    RotationOld,
    #[serde(rename = "rotation verify")]
    RotationVerify,
}

impl ProofKind {
    pub fn label(self) -> &'static str {
        match self {
            ProofKind::Unseal => "unseal",
            ProofKind::RootGeneration => "root generation",
            ProofKind::RestoreTest => "restore test",
            ProofKind::RotationOld => "rotation (old shares)",
            ProofKind::RotationVerify => "rotation verify",
        }
    }
}

/// Which share set a line's proof is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// The set in force at the line.
    InForce,
    /// The set with this id.
    Id(String),
    /// The set a rotation with this nonce puts in force.
    Nonce(String),
}

/// One line that proves holders' shares of one share set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub kind: ProofKind,
    pub ceremony: String,
    pub step: String,
    pub transcript: String,
    pub seq: u64,
    pub time: String,
    pub at: OffsetDateTime,
    /// The holders' fingerprints, as the line gives them.
    pub fingerprints: Vec<String>,
    /// The id of the set it proves shares of.
    pub set_id: String,
    /// A holder's signature that checks out covers the line.
    pub signed: bool,
}

/// A set put in force, and where.
struct Placed {
    set: ShareSet,
    source: usize,
    line: usize,
    at: Option<OffsetDateTime>,
}

fn parse_time(v: &Value) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(v.as_str()?, &Rfc3339).ok()
}

fn placed(sources: &[Source]) -> Vec<Placed> {
    sources
        .iter()
        .enumerate()
        .flat_map(|(s, src)| {
            src.entries.iter().enumerate().filter_map(move |(i, e)| {
                set_from_line(e).map(|set| Placed {
                    set,
                    source: s,
                    line: i,
                    at: parse_time(&e["time"]),
                })
            })
        })
        .collect()
}

/// The share set in force now: the one put in force last (across several transcripts, the one
/// whose origin line has the latest time; within one, the last).
pub fn current_set(sources: &[Source]) -> Option<ShareSet> {
    placed(sources)
        .into_iter()
        .enumerate()
        .max_by_key(|(order, p)| (p.at, *order))
        .map(|(_, p)| p.set)
}

/// The set in force at line `line` of source `source` (dated `at`): the last put in force
/// before it in its own transcript, or in another transcript at or before its time, whichever
/// is later.
fn in_force(
    sets: &[Placed],
    source: usize,
    line: usize,
    at: Option<OffsetDateTime>,
) -> Option<&ShareSet> {
    let own = sets.iter().rfind(|p| p.source == source && p.line <= line);
    let other = at.and_then(|at| {
        sets.iter()
            .filter(|p| p.source != source && p.at.is_some_and(|t| t <= at))
            .max_by_key(|p| p.at)
    });
    match (own, other) {
        (Some(o), Some(x)) if x.at > o.at => Some(&x.set),
        (Some(o), _) => Some(&o.set),
        (None, x) => x.map(|p| &p.set),
    }
}

/// Fingerprints in a facts array: plain strings, or objects with a `fingerprint`.
fn fingerprints(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|h| h.as_str().or_else(|| h["fingerprint"].as_str()))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// What a line proves, if anything: its kind, for which set, by whom.
fn classify(e: &Value) -> Option<(ProofKind, Target, Vec<String>)> {
    let facts = &e["facts"];
    let holders = || fingerprints(&facts["holders"]);
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let (kind, target, who) = match (e["ceremony"].as_str()?, e["step"].as_str()?) {
        ("unseal", "sys/unseal") => {
            // A node that refused the shares says at least one was not of this set.
            let refused = facts["nodes"]
                .as_array()
                .is_some_and(|n| n.iter().any(|n| n["state"] == "refused"));
            if refused {
                return None;
            }
            (ProofKind::Unseal, Target::InForce, holders())
        }
        ("configure", "root-generate") if facts["refused"] != Value::Bool(true) => {
            (ProofKind::RootGeneration, Target::InForce, holders())
        }
        ("snapshot", "verify") if !facts["restore_test"].is_null() => {
            let target = match facts["share_set"].as_str() {
                Some(id) => Target::Id(id.to_owned()),
                None => match facts["share_set"]["id"].as_str() {
                    Some(id) => Target::Id(id.to_owned()),
                    None => Target::InForce,
                },
            };
            (ProofKind::RestoreTest, target, holders())
        }
        // An adoption that unsealed the cluster with the holders' shares.
        (ADOPT, ADOPT) => (
            ProofKind::Unseal,
            Target::InForce,
            fingerprints(&facts["proven_by"]),
        ),
        (ROTATION, "share") => (ProofKind::RotationOld, Target::InForce, holders()),
        (ROTATION, "verify") => (
            ProofKind::RotationVerify,
            Target::Nonce(text(&facts["nonce"])),
            holders(),
        ),
        (ROTATION, ROTATION_VERIFIED) => (
            ProofKind::RotationVerify,
            Target::Nonce(text(&facts["nonce"])),
            fingerprints(&facts["proven_by"]),
        ),
        _ => return None,
    };
    if who.is_empty() || target == Target::Nonce(String::new()) {
        return None;
    }
    Some((kind, target, who))
}

/// Every proof in these transcripts whose set is known, in the order of the sources and lines.
pub fn proofs(sources: &[Source]) -> Vec<Proof> {
    let sets = placed(sources);
    let mut out = Vec::new();
    for (s, src) in sources.iter().enumerate() {
        for (i, e) in src.entries.iter().enumerate() {
            let Some((kind, target, fingerprints)) = classify(e) else {
                continue;
            };
            // A line custody cannot date proves nothing it could report the age of.
            let Some(at) = parse_time(&e["time"]) else {
                continue;
            };
            let set_id = match &target {
                Target::InForce => in_force(&sets, s, i, Some(at)).map(|set| set.id.clone()),
                Target::Id(id) => Some(id.clone()),
                Target::Nonce(n) => sets
                    .iter()
                    .find(|p| p.set.origin.rotation_nonce == *n)
                    .map(|p| p.set.id.clone()),
            };
            let Some(set_id) = set_id else { continue };
            out.push(Proof {
                kind,
                ceremony: e["ceremony"].as_str().unwrap_or_default().to_owned(),
                step: e["step"].as_str().unwrap_or_default().to_owned(),
                transcript: src.name.to_owned(),
                seq: e["seq"].as_u64().unwrap_or(i as u64),
                time: e["time"].as_str().unwrap_or_default().to_owned(),
                at,
                fingerprints,
                set_id,
                signed: i < src.signed_lines,
            });
        }
    }
    out
}

/// A holder's last proof, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastProof {
    pub kind: ProofKind,
    pub ceremony: String,
    pub step: String,
    pub transcript: String,
    pub seq: u64,
    pub time: String,
    /// Seconds between the line and now (0 for a line dated in the future).
    pub age_seconds: u64,
    /// A holder's signature that checks out covers the line; false: the proof is unsigned.
    pub signed: bool,
}

/// One holder of the set, and their last proof of a share of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HolderProof {
    pub index: u32,
    pub fingerprint: String,
    pub user_id: String,
    pub last_proof: Option<LastProof>,
    /// No proof, or (with a limit) the last one older than the limit.
    pub stale: bool,
}

/// Each holder of `set` with their latest proof of a share of it among `proofs`, aged at
/// `now`; `stale_after` (seconds) marks older proofs stale, and a holder without one is always
/// stale.
pub fn last_proofs(
    set: &ShareSet,
    proofs: &[Proof],
    now: OffsetDateTime,
    stale_after: Option<u64>,
) -> Vec<HolderProof> {
    set.holders
        .iter()
        .map(|h: &SetHolder| {
            let last = proofs
                .iter()
                .enumerate()
                .filter(|(_, p)| p.set_id == set.id)
                .filter(|(_, p)| {
                    p.fingerprints
                        .iter()
                        .any(|f| f.eq_ignore_ascii_case(&h.fingerprint))
                })
                .max_by_key(|(order, p)| (p.at, *order))
                .map(|(_, p)| LastProof {
                    kind: p.kind,
                    ceremony: p.ceremony.clone(),
                    step: p.step.clone(),
                    transcript: p.transcript.clone(),
                    seq: p.seq,
                    time: p.time.clone(),
                    age_seconds: u64::try_from((now - p.at).whole_seconds()).unwrap_or(0),
                    signed: p.signed,
                });
            let stale = match (&last, stale_after) {
                (None, _) => true,
                (Some(p), Some(limit)) => p.age_seconds > limit,
                (Some(_), None) => false,
            };
            HolderProof {
                index: h.index,
                fingerprint: h.fingerprint.clone(),
                user_id: h.user_id.clone(),
                last_proof: last,
                stale,
            }
        })
        .collect()
}

/// `40 days 2 hours`, `5 hours`, `12 minutes`.
pub fn age(seconds: u64) -> String {
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    let (days, hours) = (seconds / 86_400, seconds % 86_400 / 3_600);
    match (days, hours) {
        (0, 0) => plural(seconds / 60, "minute"),
        (0, h) => plural(h, "hour"),
        (d, 0) => plural(d, "day"),
        (d, h) => format!("{} {}", plural(d, "day"), plural(h, "hour")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::Duration;

    const NOW: &str = "2026-03-01T00:00:00Z";

    fn now() -> OffsetDateTime {
        OffsetDateTime::parse(NOW, &Rfc3339).unwrap()
    }

    /// A line `days` days before NOW.
    fn line(seq: u64, days: i64, ceremony: &str, step: &str, facts: Value) -> Value {
        let t = (now() - Duration::days(days)).format(&Rfc3339).unwrap();
        json!({
            "seq": seq, "time": t, "ceremony": ceremony, "step": step, "facts": facts,
            "hash": format!("h{seq}-{ceremony}-{step}"),
        })
    }

    fn set_holders(fprs: &[&str]) -> Value {
        json!(
            fprs.iter()
                .enumerate()
                .map(|(i, f)| json!({"index": i + 1, "fingerprint": f, "user_id": format!("holder {f}")}))
                .collect::<Vec<_>>()
        )
    }

    fn init(seq: u64, days: i64, fprs: &[&str]) -> Value {
        line(
            seq,
            days,
            "init",
            "sys/init",
            json!({"threshold": 2, "holders": set_holders(fprs)}),
        )
    }

    fn review(sources: &[Source], limit_days: Option<u64>) -> (ShareSet, Vec<HolderProof>) {
        let set = current_set(sources).unwrap();
        let p = proofs(sources);
        let holders = last_proofs(&set, &p, now(), limit_days.map(|d| d * 86_400));
        (set, holders)
    }

    fn kind_of(h: &HolderProof) -> Option<ProofKind> {
        h.last_proof.as_ref().map(|p| p.kind)
    }

    #[test]
    fn an_adoption_proves_only_the_holders_whose_shares_unsealed() {
        let entries = vec![line(
            0,
            4,
            ADOPT,
            ADOPT,
            json!({"threshold": 2, "holders": set_holders(&["A", "B", "C"]),
                   "proven_by": ["A", "C"], "opened_by": ["B"]}),
        )];
        let (set, h) = review(&[Source::unsigned("t", &entries)], None);
        assert_eq!(set.origin.ceremony, ADOPT);
        assert_eq!(kind_of(&h[0]), Some(ProofKind::Unseal));
        assert!(
            h[1].last_proof.is_none(),
            "opening a share file is no proof"
        );
        assert_eq!(kind_of(&h[2]), Some(ProofKind::Unseal));
    }

    #[test]
    fn unseal_and_root_generation_prove_the_set_in_force() {
        let entries = vec![
            init(0, 50, &["A", "B", "C"]),
            line(1, 45, "unseal", "sys/unseal", json!({"holders": ["a"]})),
            line(2, 10, "unseal", "sys/unseal", json!({"holders": []})),
            line(
                3,
                5,
                "configure",
                "root-generate",
                json!({"holders": ["B"], "refused": true}),
            ),
            line(
                4,
                3,
                "unseal",
                "sys/unseal",
                json!({"holders": ["C"], "nodes": [{"state": "refused"}]}),
            ),
            line(
                5,
                2,
                "configure",
                "root-generate",
                json!({"holders": ["A"], "complete": false}),
            ),
        ];
        let (_, h) = review(&[Source::unsigned("t", &entries)], Some(30));
        assert_eq!(kind_of(&h[0]), Some(ProofKind::RootGeneration));
        assert_eq!(h[0].last_proof.as_ref().unwrap().seq, 5);
        assert_eq!(h[0].last_proof.as_ref().unwrap().age_seconds, 2 * 86_400);
        assert!(!h[0].stale);
        assert!(
            h[1].last_proof.is_none(),
            "a refused root generation proves nothing"
        );
        assert!(h[2].last_proof.is_none(), "a refused unseal proves nothing");
        assert!(h[1].stale && h[2].stale);
    }

    #[test]
    fn a_rotation_makes_old_proofs_count_for_nothing() {
        let entries = vec![
            init(0, 60, &["A", "B", "C"]),
            line(1, 59, "snapshot", "save", json!({"file": "old.snap"})),
            line(
                2,
                58,
                "unseal",
                "sys/unseal",
                json!({"holders": ["A", "B", "C"]}),
            ),
            line(
                3,
                45,
                ROTATION,
                "start",
                json!({"threshold": 2, "nonce": "n1", "holders": set_holders(&["A", "B", "D"])}),
            ),
            line(
                4,
                45,
                ROTATION,
                "share",
                json!({"holders": ["A"], "nonce": "n1"}),
            ),
            line(
                5,
                45,
                ROTATION,
                "share",
                json!({"holders": ["B"], "nonce": "n1"}),
            ),
            line(
                6,
                44,
                ROTATION,
                "verify",
                json!({"holders": ["D"], "nonce": "n1"}),
            ),
            line(
                7,
                44,
                ROTATION,
                "verify",
                json!({"holders": ["A"], "nonce": "n1"}),
            ),
            line(
                8,
                44,
                ROTATION,
                ROTATION_VERIFIED,
                json!({"threshold": 2, "nonce": "n1", "holders": set_holders(&["A", "B", "D"]), "proven_by": ["D", "A"]}),
            ),
            line(9, 43, "unseal", "sys/unseal", json!({"holders": ["d"]})),
        ];
        let old = super::super::share_sets::sets(&entries)[0].1.clone();
        let src = [Source::unsigned("t", &entries)];
        let (set, h) = review(&src, Some(30));
        assert_eq!(set.origin.rotation_nonce, "n1");
        // A proved by the verify (and the verified line's proven_by), not by the old unseal
        assert_eq!(kind_of(&h[0]), Some(ProofKind::RotationVerify));
        assert_eq!(h[0].last_proof.as_ref().unwrap().seq, 8);
        // B gave an old share only: nothing for the new set
        assert!(h[1].last_proof.is_none());
        assert_eq!(kind_of(&h[2]), Some(ProofKind::Unseal));
        assert!(
            h.iter().all(|h| h.stale),
            "every proof is older than 30 days"
        );
        let (_, h) = review(&src, Some(60));
        assert_eq!(h.iter().filter(|h| h.stale).count(), 1);

        // The old shares count for the old set.
        let p = proofs(&src);
        let old_view = last_proofs(&old, &p, now(), None);
        assert_eq!(kind_of(&old_view[0]), Some(ProofKind::RotationOld));
        assert_eq!(kind_of(&old_view[2]), Some(ProofKind::Unseal));

        // A restore test of the old snapshot, after the rotation, proves the old set only.
        let mut more = entries.clone();
        more.push(line(
            10,
            1,
            "snapshot",
            "verify",
            json!({"restore_test": {"raft_index": 9}, "holders": ["B", "C"], "share_set": old.id}),
        ));
        let src = [Source::unsigned("t", &more)];
        let (_, h) = review(&src, Some(30));
        assert!(h[1].last_proof.is_none());
        let old_view = last_proofs(&old, &proofs(&src), now(), None);
        assert_eq!(kind_of(&old_view[1]), Some(ProofKind::RestoreTest));
        assert_eq!(kind_of(&old_view[2]), Some(ProofKind::RestoreTest));

        // Without a share_set, a restore test proves the set in force; without a restore test,
        // a verify proves nothing.
        more.push(line(
            11,
            1,
            "snapshot",
            "verify",
            json!({"restore_test": {"raft_index": 9}, "holders": ["B"]}),
        ));
        more.push(line(
            12,
            0,
            "snapshot",
            "verify",
            json!({"restore_test": null, "holders": ["D"]}),
        ));
        let (_, h) = review(&[Source::unsigned("t", &more)], Some(30));
        assert_eq!(kind_of(&h[1]), Some(ProofKind::RestoreTest));
        assert!(!h[1].stale);
        assert_eq!(h[2].last_proof.as_ref().unwrap().seq, 9);
    }

    #[test]
    fn an_unproven_rotation_changes_nothing() {
        let entries = vec![
            init(0, 20, &["A", "B"]),
            line(1, 10, "unseal", "sys/unseal", json!({"holders": ["B"]})),
            line(
                2,
                5,
                ROTATION,
                "share",
                json!({"holders": ["A"], "nonce": "n2"}),
            ),
            line(
                3,
                4,
                ROTATION,
                "verify",
                json!({"holders": ["C"], "nonce": "n2"}),
            ),
        ];
        let (set, h) = review(&[Source::unsigned("t", &entries)], None);
        assert_eq!(set.origin.ceremony, "init");
        assert_eq!(kind_of(&h[0]), Some(ProofKind::RotationOld));
        assert_eq!(kind_of(&h[1]), Some(ProofKind::Unseal));
        assert!(h.iter().all(|h| !h.stale));
    }

    #[test]
    fn several_transcripts_share_one_timeline() {
        // a: the init and an unseal; b (another laptop): a later unseal, a rotation, another.
        let a = vec![
            init(0, 90, &["A", "B", "C"]),
            line(1, 80, "unseal", "sys/unseal", json!({"holders": ["A"]})),
        ];
        let b = vec![
            line(0, 70, "unseal", "sys/unseal", json!({"holders": ["B"]})),
            line(
                1,
                60,
                ROTATION,
                "share",
                json!({"holders": ["C"], "nonce": "n"}),
            ),
            line(
                2,
                59,
                ROTATION,
                "verify",
                json!({"holders": ["X"], "nonce": "n"}),
            ),
            line(
                3,
                59,
                ROTATION,
                ROTATION_VERIFIED,
                json!({"threshold": 1, "nonce": "n", "holders": set_holders(&["X", "A"]), "proven_by": ["X"]}),
            ),
            line(4, 2, "unseal", "sys/unseal", json!({"holders": ["A"]})),
        ];
        let both = [Source::unsigned("a", &a), Source::unsigned("b", &b)];
        let first = current_set(&both[..1]).unwrap();
        let p = proofs(&both);
        let old = last_proofs(&first, &p, now(), None);
        assert_eq!(old[0].last_proof.as_ref().unwrap().transcript, "a");
        assert_eq!(old[1].last_proof.as_ref().unwrap().transcript, "b");
        assert_eq!(kind_of(&old[2]), Some(ProofKind::RotationOld));
        // the set in force is b's rotation, whichever order the files come in
        for order in [[0, 1], [1, 0]] {
            let srcs = [both[order[0]], both[order[1]]];
            let (set, h) = review(&srcs, Some(30));
            assert_eq!(set.origin.rotation_nonce, "n");
            assert_eq!(kind_of(&h[0]), Some(ProofKind::RotationVerify));
            assert!(h[0].stale);
            assert_eq!(h[1].last_proof.as_ref().unwrap().seq, 4);
            assert!(!h[1].stale);
        }
    }

    #[test]
    fn a_proof_is_signed_only_when_a_signature_covers_its_line() {
        let entries = vec![
            init(0, 20, &["A", "B"]),
            line(1, 10, "unseal", "sys/unseal", json!({"holders": ["A"]})),
            line(2, 5, "unseal", "sys/unseal", json!({"holders": ["B"]})),
        ];
        let signed = |signed_lines| {
            let src = [Source {
                name: "t",
                entries: &entries,
                signed_lines,
            }];
            let (_, h) = review(&src, None);
            h.iter()
                .map(|h| h.last_proof.as_ref().unwrap().signed)
                .collect::<Vec<_>>()
        };
        assert_eq!(signed(0), [false, false]);
        assert_eq!(signed(2), [true, false]);
        assert_eq!(signed(3), [true, true]);
    }

    #[test]
    fn ages_read_as_days_and_hours() {
        assert_eq!(age(40 * 86_400 + 2 * 3_600 + 5), "40 days 2 hours");
        assert_eq!(age(86_400), "1 day");
        assert_eq!(age(3_600 * 5), "5 hours");
        assert_eq!(age(61), "1 minute");
        assert_eq!(age(0), "0 minutes");
    }
}
