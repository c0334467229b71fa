//! `custody holders`: who of the current share set has proven their share, and when. Against a
//! real OpenBao (init, then unseals by holders who give their share file and secret key), and
//! offline against transcripts built here as a ceremony would have written them, dated weeks
//! ago: a rotation, restore tests of snapshots taken before and after it, several files at once.

use custody_test_support as support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use custody::transcript::share_sets::{ShareSet, set_from_line};
use custody::transcript::{GENESIS, entry_hash};
use support::*;

const HOLDERS: [&str; 5] = ["holder1", "holder2", "holder3", "holder4", "holder5"];

fn fprs(which: &[usize]) -> Value {
    json!(
        which
            .iter()
            .map(|i| fpr(HOLDERS[i - 1]))
            .collect::<Vec<_>>()
    )
}

fn holders_json(r: &Run) -> Vec<Value> {
    r.json()["holders"].as_array().unwrap().clone()
}

/// Holder `i`'s entry in `holders --format json`.
fn holder(r: &Run, i: usize) -> Value {
    holders_json(r)
        .into_iter()
        .find(|h| h["index"] == i)
        .unwrap()
}

/// The table's rows of holders who never proved a share.
fn never_rows(r: &Run) -> usize {
    r.stdout()
        .lines()
        .filter(|l| l.ends_with("  never"))
        .count()
}

fn kind(r: &Run, i: usize) -> Option<String> {
    holder(r, i)["last_proof"]["kind"]
        .as_str()
        .map(String::from)
}

#[test]
fn holders_who_unsealed_a_real_cluster_have_proven_their_share() {
    let cluster = cluster("holders", 1);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let out = dir.join("shares");
    let c = Custody::for_cluster(dir, &cluster);
    let init = init_five_holders(&out);
    c.run(&init.iter().map(String::as_str).collect::<Vec<_>>())
        .expect(0);
    // Before any unseal: everyone is "never".
    let r = c.run(&["holders"]);
    r.expect(0);
    assert_eq!(never_rows(&r), 5, "{}", r.stdout());

    // Holders 1, 3 and 5 unseal, each with their share file and secret key.
    for h in ["holder1", "holder3", "holder5"] {
        let mut args = vec!["unseal".to_owned()];
        args.extend(share_file_args(&out, &[h]));
        c.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .expect(0);
    }
    assert!(seal_status(&cluster).iter().all(|s| !s.sealed));

    let r = c.run(&["holders"]);
    r.expect(0)
        .stdout_has(&fpr("holder1"))
        .stdout_has("Holder One")
        .stdout_has("unseal: custody-transcript.jsonl seq")
        .stdout_has(" ago")
        .stdout_has("Drill: 2 holders have never proven a share of this set");
    assert_eq!(never_rows(&r), 2, "{}", r.stdout());

    let r = c.run(&["holders", "--stale-after", "30"]);
    r.expect(3)
        .stdout_has("Drill: 2 holders have not proven a share in 30 days")
        .stderr_has("--stale-after 30")
        .stderr_has(&fpr("holder2"))
        .stderr_has(&fpr("holder4"));
    assert!(!r.stderr().contains(&fpr("holder1")), "{}", r.stderr());

    let r = c.run(&["--format", "json", "holders", "--stale-after", "30"]);
    r.expect(3);
    let j = r.json();
    assert_eq!(j["stale_after_days"], 30);
    assert_eq!(j["share_set"]["threshold"], 3);
    assert_eq!(j["share_set"]["origin"]["ceremony"], "init");
    assert!(j["share_set"]["id"].as_str().unwrap().starts_with("ss-"));
    let hs = holders_json(&r);
    assert_eq!(hs.len(), 5);
    for (i, h) in hs.iter().enumerate() {
        assert_eq!(h["index"], i + 1);
        assert!(
            h["fingerprint"]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case(&fpr(HOLDERS[i]))
        );
        assert!(h["user_id"].is_string());
        let proven = [0, 2, 4].contains(&i);
        assert_eq!(h["stale"], !proven, "{h}");
        if proven {
            let p = &h["last_proof"];
            assert_eq!(p["kind"], "unseal");
            assert_eq!(p["ceremony"], "unseal");
            assert_eq!(p["step"], "sys/unseal");
            assert_eq!(p["transcript"], "custody-transcript.jsonl");
            assert!(p["seq"].as_u64().unwrap() >= 1);
            assert!(p["time"].is_string());
            assert!(p["age_seconds"].as_u64().unwrap() < 600);
        } else {
            assert!(h["last_proof"].is_null(), "{h}");
        }
    }
    // The three unseals are three lines, in the order the holders came.
    assert!(
        holder(&r, 1)["last_proof"]["seq"].as_u64() < holder(&r, 5)["last_proof"]["seq"].as_u64()
    );
}

/// A transcript as custody writes it: a valid hash chain, each line `days` days ago.
fn write_transcript(path: &Path, lines: &[(i64, &str, &str, Value)]) -> Vec<Value> {
    // one "now" for every transcript a test writes, so the same lines hash the same
    static NOW: std::sync::OnceLock<OffsetDateTime> = std::sync::OnceLock::new();
    let now = *NOW.get_or_init(OffsetDateTime::now_utc);
    let mut prev = GENESIS.to_owned();
    let mut text = String::new();
    let mut entries = Vec::new();
    for (seq, (days, ceremony, step, facts)) in lines.iter().enumerate() {
        let time = (now - Duration::days(*days)).format(&Rfc3339).unwrap();
        let mut e = json!({
            "v": 1, "seq": seq, "time": time, "ceremony": ceremony, "step": step,
            "actor": "holders", "facts": facts, "files": {}, "prev": prev,
        });
        let hash = entry_hash(&e);
        e["hash"] = json!(hash);
        prev = hash;
        text.push_str(&serde_json::to_string(&e).unwrap());
        text.push('\n');
        entries.push(e);
    }
    std::fs::write(path, text).unwrap();
    entries
}

fn set_holders() -> Value {
    json!(
        HOLDERS
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let user_id = if i == 4 {
                    "Holder Five \u{1b}[2J".to_owned()
                } else {
                    format!("Holder {}", i + 1)
                };
                json!({"index": i + 1, "fingerprint": fpr(h), "user_id": user_id})
            })
            .collect::<Vec<_>>()
    )
}

/// The lines before the rotation: init 100 days ago (the old set), a snapshot, an unseal.
fn before_rotation() -> Vec<(i64, &'static str, &'static str, Value)> {
    vec![
        (
            100,
            "init",
            "sys/init",
            json!({"threshold": 3, "holders": set_holders()}),
        ),
        (99, "snapshot", "save", json!({"file": "old.snap"})),
        (
            98,
            "unseal",
            "sys/unseal",
            json!({"holders": fprs(&[1, 2, 3])}),
        ),
    ]
}

/// The rotation 45–44 days ago: 1, 2 and 4 give old shares, 1, 2 and 3 verify the new ones
/// (the same five keys hold the new set).
fn rotation() -> Vec<(i64, &'static str, &'static str, Value)> {
    let nonce = "rotation-nonce-1";
    let mut lines = vec![(
        45,
        "rotate-shares",
        "start",
        json!({"threshold": 3, "nonce": nonce, "holders": set_holders()}),
    )];
    for i in [1, 2, 4] {
        lines.push((
            45,
            "rotate-shares",
            "share",
            json!({"nonce": nonce, "holders": fprs(&[i])}),
        ));
    }
    for i in [1, 2, 3] {
        lines.push((
            44,
            "rotate-shares",
            "verify",
            json!({"nonce": nonce, "holders": fprs(&[i])}),
        ));
    }
    lines.push((
        44,
        "rotate-shares",
        "verified",
        json!({"threshold": 3, "nonce": nonce, "holders": set_holders(), "proven_by": fprs(&[1, 2, 3])}),
    ));
    lines
}

fn restore_test(
    days: i64,
    who: &[usize],
    set: Option<&ShareSet>,
) -> (i64, &'static str, &'static str, Value) {
    let mut facts = json!({
        "file": "old.snap", "restore_test": {"raft_index": 12, "seconds": "3.5"},
        "holders": fprs(who),
    });
    if let Some(s) = set {
        facts["share_set"] = json!(s.id);
    }
    (days, "snapshot", "verify", facts)
}

fn old_set() -> ShareSet {
    let dir = tempfile::tempdir().unwrap();
    let e = write_transcript(&dir.path().join("t"), &before_rotation());
    set_from_line(&e[0]).unwrap()
}

fn holders_of(c: &Custody, files: &[&Path], extra: &[&str]) -> Run {
    let mut args: Vec<String> = vec!["--format".into(), "json".into(), "holders".into()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    c.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn a_rotation_leaves_proofs_of_the_old_set_behind() {
    let dir = tempfile::tempdir().unwrap();
    let c = Custody::new(dir.path());
    let old = old_set();

    // Up to the rotation, and a restore-test drill of the old snapshot 10 days ago by 1, 4, 5:
    // their shares of the old set, which prove nothing about the new one.
    let t1 = dir.path().join("rotated.jsonl");
    let mut lines = before_rotation();
    lines.extend(rotation());
    lines.push(restore_test(10, &[1, 4, 5], Some(&old)));
    let entries = write_transcript(&t1, &lines);
    let new = set_from_line(&entries[entries.len() - 2]).unwrap();
    assert_ne!(new.id, old.id);

    let r = holders_of(&c, &[&t1], &[]);
    r.expect(0);
    assert_eq!(r.json()["share_set"]["id"], new.id.as_str());
    assert_eq!(r.json()["stale_after_days"], Value::Null);
    assert_eq!(kind(&r, 1).as_deref(), Some("rotation verify"));
    assert_eq!(kind(&r, 2).as_deref(), Some("rotation verify"));
    assert_eq!(kind(&r, 3).as_deref(), Some("rotation verify"));
    assert_eq!(holder(&r, 1)["last_proof"]["step"], "verified");
    let age = holder(&r, 1)["last_proof"]["age_seconds"].as_u64().unwrap();
    assert!((44 * 86_400..44 * 86_400 + 600).contains(&age), "{age}");
    // 4 gave an old share in the rotation and 5 only restored the old snapshot: never, for now
    assert_eq!(kind(&r, 4), None);
    assert_eq!(kind(&r, 5), None);
    assert!(holder(&r, 4)["stale"] == true && holder(&r, 1)["stale"] == false);

    let r = c.run(&["holders", t1.to_str().unwrap(), "--stale-after", "60"]);
    r.expect(3)
        .stdout_has("rotation verify")
        .stdout_has("44 days")
        .stdout_has("Drill: 2 holders have not proven a share in 60 days")
        .stderr_has(&fpr("holder4"))
        .stderr_has(&fpr("holder5"));
    assert!(!r.stderr().contains(&fpr("holder1")), "{}", r.stderr());
    // a user id from the transcript is shown as data
    assert!(!r.stdout().contains('\u{1b}') && !r.stderr().contains('\u{1b}'));
    assert!(
        r.stdout().contains("Holder Five \\u{1b}[2J"),
        "{}",
        r.stdout()
    );

    // Later, 40 days ago: 4 unseals, and a restore test of a snapshot of the new set by 3, 4
    // and 5; 2 days ago 1 unseals.
    // (Line times never go backwards: the old snapshot's drill, 10 days ago, comes after them.)
    let t2 = dir.path().join("drilled.jsonl");
    let drill = lines.pop().unwrap();
    lines.push((40, "unseal", "sys/unseal", json!({"holders": fprs(&[4])})));
    lines.push(restore_test(40, &[3, 4, 5], Some(&new)));
    lines.push(drill);
    lines.push((2, "unseal", "sys/unseal", json!({"holders": fprs(&[1])})));
    write_transcript(&t2, &lines);

    let r = holders_of(&c, &[&t2], &["--stale-after", "60"]);
    r.expect(0);
    assert_eq!(r.json()["stale_after_days"], 60);
    assert_eq!(kind(&r, 1).as_deref(), Some("unseal"));
    assert_eq!(kind(&r, 2).as_deref(), Some("rotation verify"));
    for i in [3, 4, 5] {
        assert_eq!(kind(&r, i).as_deref(), Some("restore test"), "holder {i}");
    }
    assert!(holders_json(&r).iter().all(|h| h["stale"] == false));
    c.run(&["holders", t2.to_str().unwrap(), "--stale-after", "60"])
        .expect(0)
        .stdout_has("Drill: every holder has proven a share in the last 60 days.");

    let r = c.run(&["holders", t2.to_str().unwrap(), "--stale-after", "30"]);
    r.expect(3)
        .stdout_has("Drill: 4 holders have not proven a share in 30 days")
        .stderr_has("4 of the 5 holder(s)");
    for h in ["holder2", "holder3", "holder4", "holder5"] {
        assert!(r.stderr().contains(&fpr(h)), "{h}: {}", r.stderr());
    }
    assert!(!r.stderr().contains(&fpr("holder1")), "{}", r.stderr());
    let r = holders_of(&c, &[&t2], &["--stale-after", "30"]);
    r.expect(3);
    assert_eq!(holder(&r, 1)["stale"], false);
    assert_eq!(holder(&r, 2)["stale"], true);

    // A tampered transcript: holder 4's old share made to look like a new-set verify.
    let text = std::fs::read_to_string(&t2).unwrap();
    let tampered = dir.path().join("tampered.jsonl");
    std::fs::write(
        &tampered,
        text.replacen("\"step\":\"share\"", "\"step\":\"verify\"", 1),
    )
    .unwrap();
    c.run(&["holders", tampered.to_str().unwrap()])
        .expect(3)
        .stderr_has(tampered.to_str().unwrap())
        .stderr_has("content changed");
}

#[test]
fn two_transcripts_one_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let c = Custody::new(dir.path());
    let old = old_set();
    // The init and its unseal on one laptop; the rotation, a drill of the old snapshot, and a
    // new-set unseal by 4 recorded on another.
    let a = dir.path().join("init.jsonl");
    write_transcript(&a, &before_rotation());
    let b = dir.path().join("rotation.jsonl");
    let mut later = rotation();
    later.push(restore_test(10, &[1, 4, 5], Some(&old)));
    later.push((5, "unseal", "sys/unseal", json!({"holders": fprs(&[4])})));
    write_transcript(&b, &later);

    // Alone, the init transcript shows the old set, proven 98 days ago by 1, 2, 3.
    let r = holders_of(&c, &[&a], &[]);
    r.expect(0);
    assert_eq!(r.json()["share_set"]["id"], old.id.as_str());
    assert_eq!(
        holder(&r, 2)["last_proof"]["transcript"],
        a.display().to_string()
    );
    assert_eq!(kind(&r, 4), None);

    // Together, in either order: the rotation's set, proven by 1, 2, 3 (verify) and 4 (unseal).
    for files in [[&a, &b], [&b, &a]] {
        let r = holders_of(&c, &[files[0], files[1]], &["--stale-after", "30"]);
        r.expect(3);
        let j = r.json();
        assert_ne!(j["share_set"]["id"], old.id.as_str());
        assert_eq!(
            j["share_set"]["origin"]["rotation_nonce"],
            "rotation-nonce-1"
        );
        assert_eq!(kind(&r, 1).as_deref(), Some("rotation verify"));
        assert_eq!(
            holder(&r, 1)["last_proof"]["transcript"],
            b.display().to_string()
        );
        assert_eq!(kind(&r, 4).as_deref(), Some("unseal"));
        assert_eq!(holder(&r, 4)["stale"], false);
        assert_eq!(kind(&r, 5), None, "5 only ever proved the old set");
        assert_eq!(holder(&r, 5)["stale"], true);
    }
    let r = c.run(&["holders", a.to_str().unwrap(), b.to_str().unwrap()]);
    r.expect(0)
        .stdout_has(&format!("put in force in {}", b.display()))
        .stdout_has("Drill: 1 holder has never proven a share of this set");

    // A broken second file fails the whole run, naming it.
    let text = std::fs::read_to_string(&b).unwrap();
    let broken = dir.path().join("broken.jsonl");
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&broken, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
    c.run(&["holders", a.to_str().unwrap(), broken.to_str().unwrap()])
        .expect(3)
        .stderr_has(broken.to_str().unwrap());
}

#[test]
fn without_an_init_there_is_no_one_to_list() {
    let dir = tempfile::tempdir().unwrap();
    let c = Custody::new(dir.path());
    // the default transcript does not exist
    c.run(&["holders"])
        .expect(4)
        .stderr_has("custody-transcript.jsonl")
        .stderr_has("hint:")
        .stderr_has("custody init");
    // a transcript with unseals only
    let t: PathBuf = dir.path().join("unseals.jsonl");
    write_transcript(
        &t,
        &[(3, "unseal", "sys/unseal", json!({"holders": fprs(&[1])}))],
    );
    c.run(&["holders", t.to_str().unwrap()])
        .expect(4)
        .stderr_has("no init and no proven rotation")
        .stderr_has("custody init");
    // a file that is not there
    c.run(&["holders", "missing.jsonl"])
        .expect(2)
        .stderr_has("missing.jsonl");
}

fn sign(c: &Custody, t: &Path, holder: &str) {
    let key = fixture(&format!("{holder}.sec.asc")).display().to_string();
    c.run(&[
        "--transcript",
        t.to_str().unwrap(),
        "transcript",
        "sign",
        "--secret-key",
        &key,
    ])
    .expect(0);
}

fn signed_of(r: &Run, i: usize) -> Value {
    holder(r, i)["last_proof"]["signed"].clone()
}

/// A proof counts as signed only where a holder's signature that checks out covers its line;
/// `--require-signatures N` fails unless N holders recorded at init signed every line of each
/// transcript, as `transcript verify` counts them; a forged signature always fails.
#[test]
fn proofs_are_signed_only_where_holders_signed_and_require_signatures_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let c = Custody::new(dir.path());
    let certs = fixtures().display().to_string();
    let t = dir.path().join("init.jsonl");
    write_transcript(&t, &before_rotation());
    let ts = t.to_str().unwrap();

    // Nothing checked: every proof unsigned, and the output says so.
    let r = holders_of(&c, &[&t], &[]);
    r.expect(0);
    assert_eq!(signed_of(&r, 1), false);
    assert_eq!(r.json()["share_set_signed"], false);
    assert_eq!(r.json()["certs_checked"], false);
    c.run(&["holders", ts])
        .expect(0)
        .stdout_has("98 days ago, unsigned")
        .stdout_has("put in force in")
        .stdout_has("(unsigned):")
        .stdout_has("Signatures not checked (no --certs): every proof above is unsigned.");
    assert!(
        !c.run(&["holders", ts]).stdout().contains(", signed"),
        "nothing is shown signed"
    );
    c.run(&["holders", ts, "--require-signatures", "1"])
        .expect(2)
        .stderr_has("--certs");
    c.run(&[
        "holders",
        ts,
        "--certs",
        &certs,
        "--require-signatures",
        "0",
    ])
    .expect(2);

    // Holders 1 and 2 sign: the proofs are signed, but 2 of 3 is not enough.
    sign(&c, &t, "holder1");
    sign(&c, &t, "holder2");
    let r = holders_of(&c, &[&t], &["--certs", &certs]);
    r.expect(0);
    for i in [1, 2, 3] {
        assert_eq!(signed_of(&r, i), true, "holder {i}");
    }
    assert_eq!(r.json()["share_set_signed"], true);
    let r = c.run(&[
        "holders",
        ts,
        "--certs",
        &certs,
        "--require-signatures",
        "3",
    ]);
    r.expect(3)
        .stdout_has("98 days ago, signed")
        .stdout_has("signed by 2 of the 3 holder(s) required")
        .stderr_has("--require-signatures 3: in ")
        .stderr_has("2 distinct holder(s)");
    let before = std::fs::read_to_string(&t).unwrap();

    // Holder 3 signs: three holders, exit 0.
    sign(&c, &t, "holder3");
    let r = holders_of(&c, &[&t], &["--certs", &certs, "--require-signatures", "3"]);
    r.expect(0);
    assert_eq!(r.json()["required_signatures"], 3);
    assert_eq!(
        r.json()["transcripts"][0]["counted_signers"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // A line after the signatures: holder 4's unseal, which no one signed.
    let unseal = custody::transcript::Step::new(
        "unseal",
        "sys/unseal",
        "holders",
        json!({"holders": fprs(&[4])}),
    );
    custody::transcript::Transcript::at(&t)
        .append(unseal)
        .unwrap();
    let r = holders_of(&c, &[&t], &["--certs", &certs]);
    r.expect(0);
    assert_eq!(kind(&r, 4).as_deref(), Some("unseal"));
    assert_eq!(signed_of(&r, 4), false);
    assert_eq!(signed_of(&r, 1), true);
    c.run(&["holders", ts, "--certs", &certs])
        .expect(0)
        .stdout_has("0 minutes ago, unsigned")
        .stdout_has("1 line(s) from line 7 on are unsigned");
    c.run(&[
        "holders",
        ts,
        "--certs",
        &certs,
        "--require-signatures",
        "3",
    ])
    .expect(3)
    .stderr_has("0 distinct holder(s)")
    .stderr_has("sign again");

    // A second transcript, from another laptop, with no init of its own: the init holders of
    // the first count there too, and it must be signed as well.
    let b = dir.path().join("later.jsonl");
    write_transcript(
        &b,
        &[(0, "unseal", "sys/unseal", json!({"holders": fprs(&[5])}))],
    );
    for h in ["holder1", "holder2", "holder3"] {
        sign(&c, &b, h);
    }
    let both = |extra: &[&str]| holders_of(&c, &[&b, &t], extra);
    let r = both(&["--certs", &certs]);
    r.expect(0);
    assert_eq!(signed_of(&r, 5), true);
    assert_eq!(signed_of(&r, 4), false);
    both(&["--certs", &certs, "--require-signatures", "3"]).expect(3);
    std::fs::write(&t, &before).unwrap();
    sign(&c, &t, "holder3");
    both(&["--certs", &certs, "--require-signatures", "3"]).expect(0);

    // A forged signature: holder 3's line made to claim holder 4 (chain rebuilt). It fails
    // even without --require-signatures.
    let mut lines = transcript_lines(&t);
    let last = lines.len() - 1;
    lines[last]["facts"]["signer"] = json!(fpr("holder4"));
    lines[last]["actor"] = json!(format!("holder {}", fpr("holder4")));
    std::fs::write(&t, rechain(&lines)).unwrap();
    c.run(&["holders", ts, "--certs", &certs])
        .expect(3)
        .stderr_has("1 signature(s) do not check out");
    c.run(&["holders", ts]).expect(0);
}
