//! Share rotation on a real OpenBao (`sys/rotate/root/*`): refusals that change nothing, a
//! rotation interrupted and continued, one cancelled (the old shares still open the cluster), and
//! a full rotation proven by the new holders, after which only the new shares unseal.

use custody_test_support as support;

use std::path::{Path, PathBuf};

use support::plugin::Api;
use support::*;

const HOLDERS: [&str; 7] = [
    "holder1", "holder2", "holder3", "holder4", "holder5", "holder6", "operator",
];

#[test]
fn rotate_shares_refused_interrupted_cancelled_and_completed() {
    let u = init_and_unseal(cluster("rotate", 1), &HOLDERS);
    let ceremony = step_ceremony_token(&u);
    step_refusals_change_nothing(&u, &ceremony);
    step_a_rotation_without_the_proof_is_never_continued(&u, &ceremony);
    step_interrupted_continued_then_cancelled(&u, &ceremony);
    let out = step_rotation_to_holder6(&u, &ceremony);
    step_verification_refuses_an_old_share_then_completes(&u, &ceremony, &out);
    step_only_the_new_shares_unseal(&u, &out);
}

/// The new set: holders 1-4 and 6 (holder 6 replaces holder 5), threshold 3.
fn new_set_args(out: &Path) -> Vec<String> {
    let mut a = vec!["--yes".to_owned(), "rotate-shares".to_owned()];
    for h in ["holder1", "holder2", "holder3", "holder4", "holder6"] {
        a.push("--pgp-key".into());
        a.push(fixture(&format!("{h}.pub.asc")).display().to_string());
    }
    a.extend(["--threshold".into(), "3".into(), "--out".into()]);
    a.push(out.display().to_string());
    a
}

fn with_share_file(mut args: Vec<String>, share: &Path, key: &str) -> Vec<String> {
    args.extend([
        "--share-file".into(),
        share.display().to_string(),
        "--secret-key".into(),
        fixture(&format!("{key}.sec.asc")).display().to_string(),
    ]);
    args
}

fn strs(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

fn lines(u: &Unsealed) -> usize {
    std::fs::read_to_string(u.dir().join("custody-transcript.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn rotation_status(u: &Unsealed, ceremony: &Custody) -> serde_json::Value {
    let _ = u;
    let r = ceremony.run(&["--format", "json", "status"]);
    r.json()["share_rotation"].clone()
}

/// The ceremony token from the init root token; its policy covers the rotation.
fn step_ceremony_token(u: &Unsealed) -> Custody {
    u.custody.with_token_file(&u.ceremony_token())
}

/// Bad PGP input, a root token, a share file of a key that holds no share, a wrong share and a
/// foreign share: each a clear error, nothing recorded, no rotation left open.
fn step_refusals_change_nothing(u: &Unsealed, ceremony: &Custody) {
    let out = u.dir().join("refused");
    let before = lines(u);
    let share1 = share_file(&u.out, "holder1");

    let mut expired = new_set_args(&out);
    expired[5] = fixture("bad/expired.pub.asc").display().to_string();
    ceremony
        .run(&strs(&with_share_file(expired, &share1, "holder1")))
        .expect(4)
        .stderr_has("expired");
    let mut twice = new_set_args(&out);
    twice[5] = twice[3].clone();
    ceremony
        .run(&strs(&with_share_file(twice, &share1, "holder1")))
        .expect(4)
        .stderr_has("already given");
    let mut one = new_set_args(&out);
    let t = one.iter().position(|a| a == "--threshold").unwrap();
    one[t + 1] = "1".into();
    ceremony
        .run(&strs(&with_share_file(one, &share1, "holder1")))
        .expect(2)
        .stderr_has("--threshold 1");

    let as_root = u.custody.with_token_file(&u.root_file);
    as_root
        .run(&strs(&with_share_file(
            new_set_args(&out),
            &share1,
            "holder1",
        )))
        .expect(4)
        .stderr_has("root token");

    // holder 6's key holds no share of the set in force (and cannot open holder 1's file).
    let share6 = u.dir().join("holder6-has-no-share.asc");
    std::fs::copy(share_file(&u.out, "holder2"), &share6).unwrap();
    let r = ceremony.run(&strs(&with_share_file(
        new_set_args(&out),
        &share6,
        "holder6",
    )));
    assert!(matches!(r.code(), 2 | 4), "{}", r.stderr());

    // No terminal and no share: a usage error before anything is sent.
    ceremony.run(&strs(&new_set_args(&out))).expect(2);
    assert_eq!(lines(u), before, "a refusal records nothing");
    assert_eq!(
        rotation_status(u, ceremony)["started"],
        serde_json::Value::Null
    );
    assert!(
        rotation_status(u, ceremony)
            .as_str()
            .unwrap()
            .contains("no share rotation in progress")
    );
    assert!(!out.join(format!("{}.share.asc", fpr("holder6"))).exists());

    // A foreign share (right form, another cluster's) is refused when the quorum is complete;
    // the rotation stays open, and is cancelled.
    let foreign = format!(
        "{}\n{}\n{}\n",
        u.plain("holder1"),
        u.plain("holder3"),
        "0".repeat(64) + "01"
    );
    let r = ceremony.run_stdin(
        &strs(&[new_set_args(&out), vec!["--share-stdin".into()]].concat()),
        Some(foreign.as_bytes()),
    );
    r.expect(3)
        .stderr_has("not a share")
        .stderr_has("in this run, stdin line 1, stdin line 2, stdin line 3.");
    assert!(!out.join(format!("{}.share.asc", fpr("holder6"))).exists());
    ceremony
        .run(&["rotate-shares", "--cancel"])
        .expect(0)
        .stdout_has("cancelled");
}

/// A rotation started through the API without `require_verification` (as `bao operator
/// rotate-keys` without -verify starts it): custody refuses to continue it (exit 4), before any
/// share is read or sent, even when the transcript records its start as an older custody did (it
/// wrote the start line before it checked the server's answer). --cancel ends it.
fn step_a_rotation_without_the_proof_is_never_continued(u: &Unsealed, ceremony: &Custody) {
    let out = u.dir().join("unproven");
    let api = Api::new(&u.cluster, 0, &u.root_token);
    let started = api.ok(
        "POST",
        "sys/rotate/root/init",
        Some(serde_json::json!({ "secret_shares": 5, "secret_threshold": 3 })),
    );
    assert_eq!(started["verification_required"], false, "{started}");
    let nonce = started["nonce"].as_str().unwrap().to_owned();
    let args = with_share_file(
        new_set_args(&out),
        &share_file(&u.out, "holder1"),
        "holder1",
    );
    let refused = |u: &Unsealed| {
        let before = lines(u);
        ceremony
            .run(&strs(&args))
            .expect(4)
            .stderr_has("does not require the new holders' proof")
            .stderr_has("rotate-shares --cancel");
        assert_eq!(lines(u), before, "nothing recorded");
        let now = api.ok("GET", "sys/rotate/root/init", None);
        assert_eq!(
            (&now["nonce"], &now["progress"]),
            (&serde_json::json!(nonce), &serde_json::json!(0)),
            "no share given: {now}"
        );
        assert!(!out.exists() || files_under(&out).is_empty());
    };
    refused(u);

    let holders: Vec<serde_json::Value> = ["holder1", "holder2", "holder3", "holder4", "holder6"]
        .iter()
        .enumerate()
        .map(|(i, h)| serde_json::json!({ "index": i + 1, "fingerprint": fpr(h), "user_id": h }))
        .collect();
    custody::transcript::Transcript::at(u.dir().join("custody-transcript.jsonl"))
        .append(custody::transcript::Step::new(
            "rotate-shares",
            "start",
            "operator",
            serde_json::json!({
                "addr": u.cluster.nodes[0].addr().to_string(), "endpoint": "sys/rotate/root",
                "nonce": nonce, "shares": 5, "threshold": 3, "holders": holders,
                "backup": false, "verification_required": false, "previous_set": null,
            }),
        ))
        .unwrap();
    refused(u);
    ceremony
        .run(&["rotate-shares", "--cancel"])
        .expect(0)
        .stdout_has("cancelled");
}

/// One holder gives a share and stops; a different rotation and an early --verify are refused;
/// the next holder continues; --cancel ends it and the old quorum still unseals.
fn step_interrupted_continued_then_cancelled(u: &Unsealed, ceremony: &Custody) {
    let out = u.dir().join("interrupted");
    let mut args = new_set_args(&out);
    args.push("--backup".into());
    ceremony
        .run(&strs(&with_share_file(
            args.clone(),
            &share_file(&u.out, "holder1"),
            "holder1",
        )))
        .expect(0)
        .stdout_has("1/3 old shares given");
    let stage = rotation_status(u, ceremony);
    assert!(
        stage.as_str().unwrap().contains("1/3 old shares"),
        "{stage}"
    );
    let start = std::fs::read_to_string(u.dir().join("custody-transcript.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .rfind(|l| l["ceremony"] == "rotate-shares" && l["step"] == "start")
        .unwrap();
    assert_eq!(
        start["facts"]["backup"], true,
        "--backup is asked of the server"
    );

    let mut other = args.clone();
    let t = other.iter().position(|a| a == "--threshold").unwrap();
    other[t + 1] = "2".into();
    ceremony
        .run(&strs(&with_share_file(
            other,
            &share_file(&u.out, "holder3"),
            "holder3",
        )))
        .expect(4)
        .stderr_has("another share rotation");
    ceremony
        .run(&strs(&with_share_file(
            vec!["rotate-shares".into(), "--verify".into()],
            &share_file(&u.out, "holder3"),
            "holder3",
        )))
        .expect(4)
        .stderr_has("still needs the old holders");

    ceremony
        .run(&strs(&with_share_file(
            args.clone(),
            &share_file(&u.out, "holder3"),
            "holder3",
        )))
        .expect(0)
        .stdout_has("2/3 old shares given");
    ceremony
        .run(&["rotate-shares", "--cancel"])
        .expect(0)
        .stdout_has("old shares stay in force");
    ceremony
        .run(&["rotate-shares", "--cancel"])
        .expect(0)
        .stdout_has("nothing to cancel");
    seal(u);
    u.custody
        .run_stdin(&["unseal", "--share-stdin"], Some(u.quorum.as_bytes()))
        .expect(0);
}

/// Holder 1 starts with their share file, holders 3 and 5 finish on stdin: five new share
/// files, 0600, each addressed to its holder; the old shares stay in force.
fn step_rotation_to_holder6(u: &Unsealed, ceremony: &Custody) -> PathBuf {
    let out = u.dir().join("rotated");
    let args = new_set_args(&out);
    ceremony
        .run(&strs(&with_share_file(
            args.clone(),
            &share_file(&u.out, "holder1"),
            "holder1",
        )))
        .expect(0);
    let rest = format!("{}\n{}\n", u.plain("holder3"), u.plain("holder5"));
    let r = ceremony.run_stdin(
        &strs(
            &[
                vec!["--format".into(), "json".into()],
                args,
                vec!["--share-stdin".into()],
            ]
            .concat(),
        ),
        Some(rest.as_bytes()),
    );
    r.expect(0);
    let shares = r.json()["shares"].as_array().unwrap().clone();
    assert_eq!(shares.len(), 5);
    assert!(shares.iter().all(|s| s["recipient_ok"] == true));
    for h in ["holder1", "holder2", "holder3", "holder4", "holder6"] {
        let f = share_file(&out, h);
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&f).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "{}", f.display());
    }
    assert!(!share_file(&out, "holder5").exists());
    let stage = rotation_status(u, ceremony);
    assert!(stage.as_str().unwrap().contains("wait for"), "{stage}");
    out
}

/// An old share among the new ones is refused (the verification starts over); holder 6 proves
/// theirs with their own key; a key that is not a new holder's is refused; two more finish.
fn step_verification_refuses_an_old_share_then_completes(
    u: &Unsealed,
    ceremony: &Custody,
    out: &Path,
) {
    let new = |h: &str| {
        let pass5 = fixture("holder5.passphrase");
        u.gpg.decrypt(
            &share_file(out, h),
            (h == "holder5").then_some(pass5.as_path()),
        )
    };
    let mixed = format!(
        "{}\n{}\n{}\n",
        new("holder1"),
        new("holder2"),
        u.plain("holder3")
    );
    ceremony
        .run_stdin(
            &["rotate-shares", "--verify", "--share-stdin"],
            Some(mixed.as_bytes()),
        )
        .expect(3)
        .stderr_has("not a new share");

    ceremony
        .run(&strs(&with_share_file(
            vec!["rotate-shares".into(), "--verify".into()],
            &share_file(out, "holder6"),
            "holder6",
        )))
        .expect(0)
        .stdout_has("1/3 new shares proven");
    let share5 = u.dir().join("old-share5.asc");
    std::fs::copy(share_file(&u.out, "holder5"), &share5).unwrap();
    let mut by5 = with_share_file(
        vec!["rotate-shares".into(), "--verify".into()],
        &share5,
        "holder5",
    );
    by5.extend([
        "--passphrase-file".into(),
        fixture("holder5.passphrase").display().to_string(),
    ]);
    ceremony
        .run(&strs(&by5))
        .expect(4)
        .stderr_has("not one of the new holders");

    // Holders 2 and 3 at one sitting, each with their own key; a key missing is refused first.
    let verify = vec![
        "--format".to_owned(),
        "json".to_owned(),
        "rotate-shares".to_owned(),
        "--verify".to_owned(),
    ];
    let both = with_share_file(
        with_share_file(verify.clone(), &share_file(out, "holder2"), "holder2"),
        &share_file(out, "holder3"),
        "holder3",
    );
    let mut one_key = both.clone();
    one_key.truncate(one_key.len() - 2);
    one_key.push("--share-file".into());
    one_key.push(share_file(out, "holder3").display().to_string());
    ceremony
        .run(&strs(&one_key))
        .expect(2)
        .stderr_has("in the same order");
    let r = ceremony.run(&strs(&both));
    r.expect(0);
    let set = &r.json()["share_set"];
    assert_eq!(set["threshold"], 3);
    let fprs: Vec<&str> = set["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["fingerprint"].as_str().unwrap())
        .collect();
    let want: Vec<String> = ["holder1", "holder2", "holder3", "holder4", "holder6"]
        .iter()
        .map(|h| fpr(h))
        .collect();
    assert_eq!(fprs, want);
    let transcript = std::fs::read_to_string(u.dir().join("custody-transcript.jsonl")).unwrap();
    let verified = transcript
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["ceremony"] == "rotate-shares" && l["step"] == "verified")
        .expect("a verified line");
    assert_eq!(
        verified["facts"]["proven_by"],
        serde_json::json!([fpr("holder6"), fpr("holder2"), fpr("holder3")])
    );
    assert!(
        rotation_status(u, ceremony)
            .as_str()
            .unwrap()
            .contains("no share rotation")
    );
    ceremony
        .run(&["transcript", "verify", "custody-transcript.jsonl"])
        .expect(0);
}

/// After a seal, the old quorum is refused and the new quorum (holder 6 among them) unseals.
fn step_only_the_new_shares_unseal(u: &Unsealed, out: &Path) {
    seal(u);
    u.custody
        .run_stdin(&["unseal", "--share-stdin"], Some(u.quorum.as_bytes()))
        .expect(3);
    let new = format!(
        "{}\n{}\n{}\n",
        u.gpg.decrypt(&share_file(out, "holder6"), None),
        u.gpg.decrypt(&share_file(out, "holder4"), None),
        u.gpg.decrypt(&share_file(out, "holder1"), None)
    );
    u.custody
        .run_stdin(&["unseal", "--share-stdin"], Some(new.as_bytes()))
        .expect(0);
    let ss = seal_status(&u.cluster);
    assert_eq!((ss[0].t, ss[0].n, ss[0].sealed), (3, 5, false));
}

fn seal(u: &Unsealed) {
    Api::new(&u.cluster, 0, &u.root_token).ok("PUT", "sys/seal", None);
}
