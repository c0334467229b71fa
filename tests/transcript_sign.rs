//! Holders sign the transcript's head with their own OpenPGP keys; a witness checks every
//! signature against the certificates of the holders recorded at init.

use custody_test_support as support;

use serde_json::json;

use custody::transcript::{Step, Transcript};
use support::*;

#[test]
fn signatures_verify_and_every_bad_one_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (t, transcript, c) = five_holder_transcript(dir.path());

    // Holder 1 (RSA) and holder 5 (passphrase-protected) sign, one after the other.
    c.run(&["transcript", "sign", "--secret-key", &key("holder1")])
        .expect(0);
    c.run(&["transcript", "sign", "--secret-key", &key("holder5")])
        .expect(2)
        .stderr_has("--passphrase-file");
    let pass = fixture("holder5.passphrase").display().to_string();
    c.run(&[
        "transcript",
        "sign",
        "--secret-key",
        &key("holder5"),
        "--passphrase-file",
        &pass,
    ])
    .expect(0);
    let r = verify(&c, &t, true, None);
    r.expect(0);
    let sigs = r.json()["signatures"].as_array().unwrap().clone();
    assert_eq!(sigs.len(), 2);
    assert!(sigs.iter().all(|s| s["ok"] == true), "{sigs:?}");
    assert_eq!(sigs[0]["signer"], fpr("holder1"));
    assert_eq!(sigs[1]["signer"], fpr("holder5"));
    assert!(
        r.json()["signatures"][0]["user_id"]
            .as_str()
            .unwrap()
            .contains("Holder One")
    );
    let good = std::fs::read_to_string(&t).unwrap();

    // A key not in the init set.
    c.run(&["transcript", "sign", "--secret-key", &key("operator")])
        .expect(0);
    verify(&c, &t, false, None)
        .expect(3)
        .stderr_has("do not check out");
    let r = verify(&c, &t, true, None);
    assert!(
        r.stdout().contains("not one of the holders"),
        "{}",
        r.stdout()
    );

    // A signature over an older head: holder 2's signature, re-added after the head moved on.
    std::fs::write(&t, &good).unwrap();
    c.run(&["transcript", "sign", "--secret-key", &key("holder2")])
        .expect(0);
    let lines: Vec<String> = std::fs::read_to_string(&t)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let sig: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    transcript
        .append(Step::new("unseal", "sys/unseal", "holders", json!({})))
        .unwrap();
    transcript
        .append(Step::new(
            "witness",
            "sign",
            &format!("holder {}", fpr("holder2")),
            sig["facts"].clone(),
        ))
        .unwrap();
    let r = verify(&c, &t, true, None);
    r.expect(3);
    assert!(r.stdout().contains("older head"), "{}", r.stdout());

    // An edited line breaks the chain.
    std::fs::write(
        &t,
        good.replacen("\"holder 41", "\"holder 42", 1)
            .replacen("sys/unseal", "sys/unseal2", 1),
    )
    .unwrap();
    verify(&c, &t, false, None).expect(3).stderr_has("line 2");
}

/// A transcript with an init step naming the five fixture holders, then an unseal step, written
/// through custody's own transcript writer so the chain is genuine; and custody pointed at it.
fn five_holder_transcript(dir: &std::path::Path) -> (std::path::PathBuf, Transcript, Custody) {
    let t = dir.join("t.jsonl");
    let transcript = Transcript::at(&t);
    let holders: Vec<_> = ["holder1", "holder2", "holder3", "holder4", "holder5"]
        .iter()
        .map(|h| json!({ "fingerprint": fpr(h) }))
        .collect();
    transcript
        .append(Step::new(
            "init",
            "sys/init",
            "operator",
            json!({ "holders": holders }),
        ))
        .unwrap();
    transcript
        .append(Step::new("unseal", "sys/unseal", "holders", json!({})))
        .unwrap();
    let mut c = Custody::new(dir);
    c.base
        .extend(["--transcript".into(), t.display().to_string()]);
    (t, transcript, c)
}

fn key(h: &str) -> String {
    fixture(&format!("{h}.sec.asc")).display().to_string()
}

/// `transcript verify --certs fixtures --require-signatures n`, in JSON or text.
fn require(c: &Custody, t: &std::path::Path, n: u32, json: bool) -> Run {
    verify(c, t, json, Some(n))
}

/// `transcript verify T --certs fixtures [--require-signatures N]`, in JSON or text.
fn verify(c: &Custody, t: &std::path::Path, json: bool, require: Option<u32>) -> Run {
    let certs = fixtures().display().to_string();
    let n = require.map(|n| n.to_string());
    let mut args = vec![];
    if json {
        args.extend(["--format", "json"]);
    }
    args.extend([
        "transcript",
        "verify",
        t.to_str().unwrap(),
        "--certs",
        &certs,
    ]);
    if let Some(n) = &n {
        args.extend(["--require-signatures", n]);
    }
    c.run(&args)
}

fn counted(r: &Run) -> Vec<String> {
    r.json()["counted_signers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["fingerprint"].as_str().unwrap().to_owned())
        .collect()
}

fn unsigned(r: &Run) -> Vec<u64> {
    r.json()["unsigned_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["line"].as_u64().unwrap())
        .collect()
}

#[test]
fn require_signatures_counts_distinct_holders_over_a_head_that_covers_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let (t, transcript, c) = five_holder_transcript(dir.path());
    let before = std::fs::read_to_string(&t).unwrap();

    // --require-signatures needs --certs (a usage error), and N is at least 1.
    c.run(&[
        "transcript",
        "verify",
        t.to_str().unwrap(),
        "--require-signatures",
        "1",
    ])
    .expect(2)
    .stderr_has("--certs");
    let certs = fixtures().display().to_string();
    c.run(&[
        "transcript",
        "verify",
        t.to_str().unwrap(),
        "--certs",
        &certs,
        "--require-signatures",
        "0",
    ])
    .expect(2);

    // No signature yet: both lines are unsigned.
    let r = require(&c, &t, 1, true);
    r.expect(3);
    assert_eq!(unsigned(&r), [1, 2]);
    assert!(counted(&r).is_empty());
    assert_eq!(r.json()["ok"], false);
    assert_eq!(
        std::fs::read_to_string(&t).unwrap(),
        before,
        "verify changes nothing"
    );

    // Holder 1 signs: one of two is not enough; the output names who signed.
    c.run(&["transcript", "sign", "--secret-key", &key("holder1")])
        .expect(0);
    let r = require(&c, &t, 2, false);
    r.expect(3)
        .stderr_has("1 distinct holder(s) signed")
        .stderr_has(&fpr("holder1"));
    assert!(
        r.stdout()
            .contains("Signed by 1 of the 2 holder(s) required")
            && r.stdout().contains(&fpr("holder1"))
            && r.stdout().contains("Holder One"),
        "{}",
        r.stdout()
    );
    let r = require(&c, &t, 1, true);
    r.expect(0);
    assert_eq!(counted(&r), [fpr("holder1")]);
    assert!(unsigned(&r).is_empty());
    assert_eq!(r.json()["required_signatures"], 1);
    assert_eq!(r.json()["ok"], true);

    // Holder 1 signs again: still one holder.
    c.run(&["transcript", "sign", "--secret-key", &key("holder1")])
        .expect(0);
    let r = require(&c, &t, 2, true);
    r.expect(3);
    assert_eq!(counted(&r), [fpr("holder1")]);
    let sigs = r.json()["signatures"].as_array().unwrap().clone();
    assert_eq!(sigs[1]["ok"], true);
    assert_eq!(sigs[1]["counted"], false);
    assert!(
        sigs[1]["not_counted"]
            .as_str()
            .unwrap()
            .contains("already counted (line 3)"),
        "{sigs:?}"
    );

    // Holder 2 signs: two distinct holders.
    c.run(&["transcript", "sign", "--secret-key", &key("holder2")])
        .expect(0);
    let r = require(&c, &t, 2, true);
    r.expect(0);
    assert_eq!(counted(&r), [fpr("holder1"), fpr("holder2")]);

    // The operator's key is in --certs but was no holder at init: listed, not counted, and not
    // a failure when enough holders signed (without --require-signatures it still is).
    c.run(&["transcript", "sign", "--secret-key", &key("operator")])
        .expect(0);
    let r = require(&c, &t, 2, true);
    r.expect(0);
    assert_eq!(counted(&r), [fpr("holder1"), fpr("holder2")]);
    let sigs = r.json()["signatures"].as_array().unwrap().clone();
    assert_eq!(sigs[3]["signer"], fpr("operator"));
    assert_eq!(sigs[3]["counted"], false);
    assert!(
        sigs[3]["not_counted"]
            .as_str()
            .unwrap()
            .contains("not one of the holders"),
        "{sigs:?}"
    );
    require(&c, &t, 3, false)
        .expect(3)
        .stderr_has("2 distinct holder(s)");
    verify(&c, &t, false, None)
        .expect(3)
        .stderr_has("do not check out");

    // A step after the signatures: no signature covers it, so none counts and it is named.
    transcript
        .append(Step::new("unseal", "sys/unseal", "holders", json!({})))
        .unwrap();
    let r = require(&c, &t, 1, true);
    r.expect(3);
    assert!(counted(&r).is_empty());
    assert_eq!(unsigned(&r), [7]);
    let sigs = r.json()["signatures"].as_array().unwrap().clone();
    assert_eq!(sigs[0]["ok"], true);
    assert_eq!(sigs[0]["covers_lines"], 2);
    assert!(
        sigs[0]["not_counted"]
            .as_str()
            .unwrap()
            .contains("covers lines 1 to 2 only, not line 7 (unseal sys/unseal)"),
        "{sigs:?}"
    );
    let r = require(&c, &t, 1, false);
    r.expect(3).stderr_has("sign again");
    assert!(
        r.stdout()
            .contains("covers these 1 line(s):\n  line 7: unseal sys/unseal"),
        "{}",
        r.stdout()
    );

    // Holder 3 signs the new head: it counts, the older signatures still do not.
    c.run(&["transcript", "sign", "--secret-key", &key("holder3")])
        .expect(0);
    let r = require(&c, &t, 1, true);
    r.expect(0);
    assert_eq!(counted(&r), [fpr("holder3")]);
    assert!(unsigned(&r).is_empty());
    require(&c, &t, 2, false)
        .expect(3)
        .stderr_has(&fpr("holder3"));
}

#[test]
fn without_an_init_step_no_signature_counts() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t.jsonl");
    Transcript::at(&t)
        .append(Step::new("unseal", "sys/unseal", "holders", json!({})))
        .unwrap();
    let mut c = Custody::new(dir.path());
    c.base
        .extend(["--transcript".into(), t.display().to_string()]);
    c.run(&["transcript", "sign", "--secret-key", &key("holder1")])
        .expect(0);
    let r = require(&c, &t, 1, false);
    r.expect(3).stderr_has("has no init step");
    assert!(r.stdout().contains("No init step"), "{}", r.stdout());
}

#[test]
fn a_line_with_a_duplicate_key_is_refused_by_verify_and_sign() {
    let dir = tempfile::tempdir().unwrap();
    let (t, _transcript, c) = five_holder_transcript(dir.path());
    let good = std::fs::read_to_string(&t).unwrap();
    // The duplicate comes first, so the last value (the one hashed) is the real one: the
    // chain alone would pass it.
    for (from, to, dup) in [
        ("{\"actor\":", "{\"actor\":\"mallory\",\"actor\":", "actor"),
        (
            "\"facts\":{\"holders\":",
            "\"facts\":{\"holders\":[],\"holders\":",
            "facts.holders",
        ),
    ] {
        let bad = good.replacen(from, to, 1);
        assert_ne!(bad, good);
        std::fs::write(&t, &bad).unwrap();
        c.run(&["transcript", "verify", t.to_str().unwrap()])
            .expect(3)
            .stderr_has(&format!("line 1: the key {dup} appears twice"));
        c.run(&["transcript", "sign", "--secret-key", &key("holder1")])
            .expect(3)
            .stderr_has(&format!("line 1: the key {dup} appears twice"));
        assert_eq!(
            std::fs::read_to_string(&t).unwrap(),
            bad,
            "sign changed nothing"
        );
    }
}

/// Every reader of the transcript `t`, each of which must refuse a bad line: `transcript
/// verify`, `show` and `report`, `holders`, and `transcript sign` (which appends).
fn every_reader(c: &Custody, t: &std::path::Path, out: &std::path::Path) -> Vec<Run> {
    let t = t.to_str().unwrap();
    let certs = fixtures().display().to_string();
    let page = out.display().to_string();
    let _ = std::fs::remove_file(out);
    vec![
        c.run(&["transcript", "verify", t]),
        c.run(&["transcript", "verify", t, "--certs", &certs]),
        c.run(&["transcript", "show", t, "--certs", &certs]),
        c.run(&["transcript", "report", t, "--out", &page]),
        c.run(&["holders", t]),
        c.run(&["holders", t, "--certs", &certs, "--require-signatures", "1"]),
        c.run(&["transcript", "sign", "--secret-key", &key("holder2")]),
    ]
}

/// A signature covers only the head it signs: a field added to its line (the chain rebuilt
/// around it, so only this rule can catch it) would be a fact no one signed, shown beside a
/// good signature. Every reader refuses the line, naming it and the field.
#[test]
fn a_signature_line_with_anything_else_on_it_is_refused_by_every_reader() {
    let dir = tempfile::tempdir().unwrap();
    let (t, _transcript, c) = five_holder_transcript(dir.path());
    c.run(&["transcript", "sign", "--secret-key", &key("holder1")])
        .expect(0);
    let good = transcript_lines(&t);
    assert_eq!(good[2]["step"], "sign");
    type Edit = fn(&mut serde_json::Value);
    let edits: [(Edit, &str); 4] = [
        // holders 1 to 3 "proving" their shares on holder 1's signature line
        (
            |e| {
                e["facts"]["holders"] = json!([fpr("holder1"), fpr("holder2"), fpr("holder3")]);
                e["facts"]["shares_given"] = json!(3);
            },
            "it also has facts.holders",
        ),
        (
            |e| e["note"] = json!("all five holders agreed"),
            "it also has note",
        ),
        (
            |e| e["files"] = json!({"shares/holder1.share.asc": "00"}),
            "it also has files.shares/holder1.share.asc",
        ),
        (
            |e| e["actor"] = json!("holders 1, 2 and 3"),
            "actor is holders 1, 2 and 3",
        ),
    ];
    for (edit, why) in edits {
        let mut lines = good.clone();
        edit(&mut lines[2]);
        let text = rechain(&lines);
        std::fs::write(&t, &text).unwrap();
        for r in every_reader(&c, &t, &dir.path().join("report.html")) {
            r.expect(3).stderr_has("line 3: ").stderr_has(why);
        }
        assert_eq!(
            std::fs::read_to_string(&t).unwrap(),
            text,
            "nothing appended"
        );
    }
    // The line as sign wrote it: every reader accepts it.
    std::fs::write(&t, rechain(&good)).unwrap();
    require(&c, &t, 1, false).expect(0);
}

/// Line times never go backwards, and none lies after the time of reading by more than five
/// minutes; the chain rebuilt each time, so only the time rule can refuse it.
#[test]
fn a_line_back_in_time_or_from_the_future_is_refused_by_every_reader() {
    use time::format_description::well_known::Rfc3339;
    use time::{Duration, OffsetDateTime};
    let dir = tempfile::tempdir().unwrap();
    let (t, _transcript, c) = five_holder_transcript(dir.path());
    let good = transcript_lines(&t);
    let first = OffsetDateTime::parse(good[0]["time"].as_str().unwrap(), &Rfc3339).unwrap();
    let now = OffsetDateTime::now_utc();
    let at = |t: OffsetDateTime| json!(t.format(&Rfc3339).unwrap());
    for (time, why) in [
        (at(first - Duration::hours(1)), "before the previous line's"),
        (at(now + Duration::days(1)), "after the time of reading"),
        (at(now + Duration::minutes(6)), "after the time of reading"),
        (json!("2026-02-30T10:00:00Z"), "is not an RFC 3339 time"),
    ] {
        let mut lines = good.clone();
        lines[1]["time"] = time;
        let text = rechain(&lines);
        std::fs::write(&t, &text).unwrap();
        for r in every_reader(&c, &t, &dir.path().join("report.html")) {
            r.expect(3).stderr_has("line 2: its time ").stderr_has(why);
        }
        assert_eq!(
            std::fs::read_to_string(&t).unwrap(),
            text,
            "nothing appended"
        );
    }

    // Two minutes ahead is within the skew: read. But this machine's clock is behind that
    // line, so appending (sign) is refused and writes nothing.
    let mut lines = good.clone();
    lines[1]["time"] = at(now + Duration::minutes(2));
    let text = rechain(&lines);
    std::fs::write(&t, &text).unwrap();
    c.run(&["transcript", "verify", t.to_str().unwrap()])
        .expect(0);
    c.run(&["transcript", "sign", "--secret-key", &key("holder1")])
        .expect(4)
        .stderr_has("before the time of the transcript's last line")
        .stderr_has("clock");
    assert_eq!(
        std::fs::read_to_string(&t).unwrap(),
        text,
        "nothing appended"
    );
}
