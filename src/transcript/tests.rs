//! The chain's own tests: tampering, duplicate keys, a signature line's shape, line times.

use super::*;

#[test]
fn chain_verifies_and_detects_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let t = Transcript::at(&path);
    t.append(Step::new("init", "a", "operator", json!({"x": 1})))
        .unwrap();
    let head = t
        .append(Step::new("init", "b", "operator", json!({"y": "z"})))
        .unwrap();
    assert_eq!(verify_file(&path).unwrap().head_hash, head.head_hash);
    assert_eq!(head.entries, 2);

    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"y\":\"z\"", "\"y\":\"w\"")).unwrap();
    let err = verify_file(&path).unwrap_err();
    assert_eq!(err.kind, crate::error::Kind::Verification);
    assert!(err.message.contains("line 2"), "{}", err.message);
    // a damaged transcript is never extended
    assert!(
        t.append(Step::new("init", "c", "operator", json!({})))
            .is_err()
    );
}

#[test]
fn fractional_numbers_survive_the_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let t = Transcript::at(&path);
    let mut x = 0.1f64;
    for i in 0..200 {
        x = x * 1.37 + 0.013 * i as f64;
        t.append(Step::new(
            "c",
            "s",
            "op",
            json!({ "seconds": x, "ms": x * 1000.0, "n": i, "list": [x / 3.0] }),
        ))
        .unwrap();
    }
    assert_eq!(verify_file(&path).unwrap().entries, 200);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.lines().all(|l| l.contains("\"seconds\":\"")),
        "fractions are recorded as text"
    );
}

#[test]
fn removed_line_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let t = Transcript::at(&path);
    for s in ["a", "b", "c"] {
        t.append(Step::new("c", s, "op", json!({}))).unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<_> = text.lines().collect();
    std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
    assert!(verify_file(&path).unwrap_err().message.contains("line 2"));
}

#[test]
fn a_line_that_is_not_json_keeps_the_parser_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    std::fs::write(&path, "{not json\n").unwrap();
    let err = verify_file(&path).unwrap_err();
    assert_eq!(
        err.message,
        format!("transcript {} line 1: not JSON", path.display())
    );
    assert_eq!(err.kind, crate::error::Kind::Verification);
    assert_eq!(err.causes().count(), 1);
}

#[test]
fn duplicate_keys_are_found_at_any_depth() {
    assert_eq!(duplicate_key(r#"{"a":1,"b":2}"#), None);
    assert_eq!(duplicate_key(r#"{"a":1,"a":1}"#).as_deref(), Some("a"));
    assert_eq!(
        duplicate_key(r#"{"a":1,"facts":{"x":[1,{"k":1,"k":2}]}}"#).as_deref(),
        Some("facts.x[1].k")
    );
    // the same key in sibling objects is no duplicate
    assert_eq!(duplicate_key(r#"[{"k":1},{"k":2}]"#), None);
    assert_eq!(duplicate_key(r#"{"o":{"k":1},"p":{"k":1}}"#), None);
    // an escaped spelling is the same key
    assert_eq!(duplicate_key(r#"{"a":1,"\u0061":2}"#).as_deref(), Some("a"));
    // the first duplicate in document order is named, and nothing after it is missed
    assert_eq!(
        duplicate_key(r#"{"z":{"q":1,"q":2},"z":3}"#).as_deref(),
        Some("z.q")
    );
    // a key that would rewrite the terminal is shown escaped
    assert_eq!(
        duplicate_key("{\"\\u001b[2J\":1,\"\\u001b[2J\":2}").as_deref(),
        Some("\\u{1b}[2J")
    );
    assert_eq!(duplicate_key("{not json"), None);
}

/// A duplicate key whose last value is the one hashed passes the chain checks; only the
/// duplicate check refuses it. Reading, verifying and appending all refuse it.
#[test]
fn a_line_with_a_duplicate_key_is_refused_by_every_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let t = Transcript::at(&path);
    t.append(Step::new(
        "init",
        "a",
        "operator",
        json!({"holders": ["x"]}),
    ))
    .unwrap();
    t.append(Step::new("init", "b", "operator", json!({})))
        .unwrap();
    let good = std::fs::read_to_string(&path).unwrap();
    for (n, from, to, key) in [
        (
            1,
            "{\"actor\":",
            "{\"actor\":\"mallory\",\"actor\":",
            "actor",
        ),
        (
            1,
            "\"facts\":{\"holders\":",
            "\"facts\":{\"holders\":[\"y\"],\"holders\":",
            "facts.holders",
        ),
    ] {
        let bad = good.replacen(from, to, 1);
        assert_ne!(bad, good);
        std::fs::write(&path, &bad).unwrap();
        // serde_json alone sees nothing wrong: the hash holds for the last value
        let entry: Value = serde_json::from_str(bad.lines().next().unwrap()).unwrap();
        assert_eq!(entry_hash(&entry), entry["hash"].as_str().unwrap());

        let err = verify_file(&path).unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Verification);
        assert!(
            err.message.contains(&format!("line {n}:")),
            "{}",
            err.message
        );
        assert!(
            err.message
                .contains(&format!("the key {key} appears twice")),
            "{}",
            err.message
        );
        assert!(read_verified(&path).is_err());
        let err = t
            .append(Step::new("init", "c", "operator", json!({})))
            .unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Verification);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            bad,
            "nothing appended"
        );
    }
}

/// `entries` written as a chain custody would accept but for the rules under test: each line's
/// seq, prev and hash recomputed, so only those rules can refuse it.
fn rechain(entries: &[Value]) -> String {
    let mut prev = GENESIS.to_owned();
    let mut out = String::new();
    for (seq, e) in entries.iter().enumerate() {
        let mut e = e.clone();
        e["seq"] = json!(seq);
        e["prev"] = json!(prev);
        e.as_object_mut().unwrap().remove("hash");
        let hash = entry_hash(&e);
        e["hash"] = json!(hash);
        prev = hash;
        out.push_str(&serde_json::to_string(&e).unwrap());
        out.push('\n');
    }
    out
}

fn lines_of(path: &Path) -> Vec<Value> {
    read_verified(path).unwrap().1
}

const SIGNER: &str = "441AD08AF0F05D642C76BC98409ED80F05C0D572";

/// A transcript of one step and a signature line shaped as `transcript sign` writes it.
fn signed_transcript(dir: &Path) -> PathBuf {
    let path = dir.join("t.jsonl");
    let t = Transcript::at(&path);
    let head = t
        .append(Step::new("init", "sys/init", "operator", json!({"x": 1})))
        .unwrap();
    t.append(Step::new(
        "witness",
        "sign",
        &format!("holder {SIGNER}"),
        json!({
            "signer": SIGNER,
            "signed_head": head.head_hash,
            "signature": "-----BEGIN PGP SIGNATURE-----\n\nwsBc\n-----END PGP SIGNATURE-----\n",
        }),
    ))
    .unwrap();
    path
}

/// Whatever is added to a signature line, with the chain rebuilt around it, every reader
/// refuses the line, naming it and what it carries; and custody never writes such a line.
#[test]
fn a_signature_line_carries_only_its_signer_signed_head_and_signature() {
    let dir = tempfile::tempdir().unwrap();
    let path = signed_transcript(dir.path());
    let good = lines_of(&path);
    type Edit = fn(&mut Value);
    let edits: [(Edit, &str); 9] = [
        (
            |e| e["facts"]["holders"] = json!(["FAKE"]),
            "it also has facts.holders, which no signature covers",
        ),
        (
            |e| e["note"] = json!("agreed"),
            "it also has note, which no signature covers",
        ),
        (
            |e| e["files"] = json!({"shares.asc": "ab"}),
            "it also has files.shares.asc",
        ),
        (
            |e| e["files"] = json!([]),
            "it also has files that are not an empty object",
        ),
        (
            |e| e["actor"] = json!("holder ALL FIVE"),
            "actor is holder ALL FIVE, not `holder 441AD0",
        ),
        (
            |e| e["facts"]["signer"] = json!(SIGNER.to_lowercase()),
            "is not a key fingerprint",
        ),
        (
            |e| e["facts"]["signed_head"] = json!("head"),
            "signed head head is not a head hash",
        ),
        (
            |e| e["facts"]["signature"] = json!({"armor": "x"}),
            "signature is not an armored OpenPGP signature",
        ),
        (|e| e["facts"] = json!("signed"), "facts are not an object"),
    ];
    for (edit, why) in edits {
        let mut lines = good.clone();
        edit(&mut lines[1]);
        let text = rechain(&lines);
        std::fs::write(&path, &text).unwrap();
        let err = verify_file(&path).unwrap_err();
        assert_eq!(err.kind, Kind::Verification, "{}", err.message);
        assert!(err.message.contains("line 2: "), "{}", err.message);
        assert!(err.message.contains(why), "{why}: {}", err.message);
        let read = lenient::check_text(&text, OffsetDateTime::now_utc());
        assert_eq!(read.broken.as_ref().map(|b| b.line), Some(2), "{why}");
        assert_eq!(read.trusted_count(), 1);
        // a transcript with such a line is never extended
        let t = Transcript::at(&path);
        assert!(
            t.append(Step::new("unseal", "sys/unseal", "op", json!({})))
                .is_err()
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }
    // the line as sign writes it passes
    std::fs::write(&path, rechain(&good)).unwrap();
    assert_eq!(verify_file(&path).unwrap().entries, 2);
    // custody refuses to write a signature line with anything else on it
    let t = Transcript::at(&path);
    let mut facts = good[1]["facts"].clone();
    facts["holders"] = json!(["FAKE"]);
    let err = t
        .append(Step::new(
            "witness",
            "sign",
            &format!("holder {SIGNER}"),
            facts,
        ))
        .unwrap_err();
    assert_eq!(err.kind, Kind::Internal);
    assert_eq!(verify_file(&path).unwrap().entries, 2, "nothing appended");
}

#[test]
fn line_times_never_go_backwards_and_none_comes_from_the_future() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let t = Transcript::at(&path);
    for s in ["a", "b", "c"] {
        t.append(Step::new("c", s, "op", json!({}))).unwrap();
    }
    let good = lines_of(&path);
    let now = OffsetDateTime::now_utc();
    let at = |d: time::Duration| rfc3339(now + d);
    let minutes = time::Duration::minutes;
    let cases: [(usize, String, &str); 5] = [
        // line 2 an hour before line 1
        (1, at(-minutes(60)), "before the previous line's"),
        // line 3 (the last) beyond the skew
        (2, at(minutes(6)), "after the time of reading"),
        (1, at(minutes(24 * 60)), "after the time of reading"),
        (
            1,
            "yesterday".to_owned(),
            "its time yesterday is not an RFC 3339 time",
        ),
        (1, String::new(), "is not an RFC 3339 time"),
    ];
    for (i, time, why) in cases {
        let mut lines = good.clone();
        if i == 1 && why.contains("before") {
            // the line before stays as written; this one goes an hour back from it
            lines[0]["time"] = json!(at(-minutes(1)));
        }
        lines[i]["time"] = json!(time);
        let text = rechain(&lines);
        std::fs::write(&path, &text).unwrap();
        let err = verify_file(&path).unwrap_err();
        assert_eq!(err.kind, Kind::Verification);
        assert!(
            err.message.contains(&format!("line {}: ", i + 1)) && err.message.contains(why),
            "{why}: {}",
            err.message
        );
        let read = lenient::check_text(&text, now);
        assert_eq!(read.broken.map(|b| b.line), Some(i + 1), "{why}");
    }
    let mut lines = good.clone();
    lines[2].as_object_mut().unwrap().remove("time");
    std::fs::write(&path, rechain(&lines)).unwrap();
    assert!(
        verify_file(&path)
            .unwrap_err()
            .message
            .contains("line 3: has no time")
    );

    // Equal times pass, and so does a line within the skew; the skew is five minutes.
    assert_eq!(CLOCK_SKEW, time::Duration::minutes(5));
    let mut lines = good.clone();
    let same = at(minutes(4));
    for l in &mut lines {
        l["time"] = json!(same);
    }
    std::fs::write(&path, rechain(&lines)).unwrap();
    assert_eq!(verify_file(&path).unwrap().entries, 3);

    // This machine's clock is now behind the last line (written by a clock 4 minutes ahead):
    // appending would go back in time, so nothing is written.
    let before = std::fs::read_to_string(&path).unwrap();
    let err = t.append(Step::new("c", "d", "op", json!({}))).unwrap_err();
    assert_eq!(err.kind, Kind::Precondition);
    assert!(
        err.message
            .contains("before the time of the transcript's last line")
            && err.message.contains("line 3"),
        "{}",
        err.message
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
}

/// Two writers at once: each line follows the one before, in time and in the chain.
#[test]
fn appends_from_many_threads_make_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    std::thread::scope(|s| {
        for w in 0..4 {
            let path = &path;
            s.spawn(move || {
                let t = Transcript::at(path);
                for i in 0..25 {
                    t.append(Step::new("c", &format!("{w}-{i}"), "op", json!({})))
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(verify_file(&path).unwrap().entries, 100);
}
