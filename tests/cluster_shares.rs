//! Shares go only to the cluster they belong to (issue 23 §6), on two real OpenBao clusters of
//! the same 5-of-3 shape initialized by custody for the same five holders: blue, whose transcript
//! the operator works with, and "other", another cluster the holders also hold shares of. A node
//! blue's transcript does not record gets nothing (unseal, root generate, rotate-shares) unless
//! `--new-node` vouches for it, which is recorded; a share file that is not the one init wrote
//! for its holder is refused before it is sent; a refused quorum names whose shares to give again.

use custody_test_support as support;

use std::path::{Path, PathBuf};

use support::plugin::Api;
use support::*;

const KEYS: [&str; 4] = ["holder1", "holder3", "holder5", "operator"];

#[test]
fn shares_go_only_to_the_cluster_they_belong_to() {
    let mut blue = init_and_unseal(cluster("shares-blue", 1), &KEYS);
    let mut other = init_and_unseal(cluster("shares-other", 1), &KEYS);
    let bundle = ca_bundle(
        &blue.dir().join("both-ca.pem"),
        &[&blue.cluster.ca_cert, &other.cluster.ca_cert],
    );
    step_root_generate_and_rotation_refuse_a_foreign_node(&blue, &other, &bundle);

    blue.cluster.restart().unwrap();
    other.cluster.restart().unwrap();
    assert_eq!(progress(&blue.cluster), (true, 0));
    assert_eq!(progress(&other.cluster), (true, 0));
    step_unseal_refuses_a_foreign_node(&blue, &other, &bundle);
    step_share_files_unlike_the_record_refused(&blue, &other);
    step_refused_quorum_names_who_gives_again(&blue, &other);
    step_new_node_vouched_for_and_recorded(&blue, &other, &bundle);
    step_no_record_of_any_node_refused(&blue, &other, &bundle);
}

fn strs(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

fn transcript(u: &Unsealed) -> PathBuf {
    u.dir().join("custody-transcript.jsonl")
}

fn text_of(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// The one node's (sealed, progress).
fn progress(c: &LocalCluster) -> (bool, u32) {
    let s = &seal_status(c)[0];
    (s.sealed, s.progress)
}

fn addr(u: &Unsealed) -> String {
    u.cluster.addrs()[0].to_string()
}

/// custody in blue's directory (blue's transcript) with both CAs and no node of its own.
fn operator(blue: &Unsealed, bundle: &Path) -> Custody {
    let mut c = Custody::new(blue.dir());
    c.base
        .extend(["--ca-cert".into(), bundle.display().to_string()]);
    c
}

/// The other cluster is unsealed and holds a ceremony token, so nothing but custody's check
/// stands between blue's transcript and it: root generate and rotate-shares with `--addr` of the
/// other cluster are refused (exit 4, naming it), no attempt or rotation starts there, and blue's
/// transcript is unchanged.
fn step_root_generate_and_rotation_refuse_a_foreign_node(
    blue: &Unsealed,
    other: &Unsealed,
    bundle: &Path,
) {
    let token = other.ceremony_token();
    let before = text_of(&transcript(blue));
    let op = operator(blue, bundle).with_token_file(&token);
    let other_addr = addr(other);
    let root_out = blue.dir().join("foreign-root.asc");
    op.run_stdin(
        &[
            "--addr",
            &other_addr,
            "root",
            "generate",
            "--pgp-key",
            fixture("operator.pub.asc").to_str().unwrap(),
            "--out",
            root_out.to_str().unwrap(),
            "--share-stdin",
        ],
        Some(other.plain("holder1").as_bytes()),
    )
    .expect(4)
    .stderr_has(&format!(
        "root generate: {other_addr} is not a node the transcript"
    ))
    .stderr_has(&format!("{} (init, line 1)", addr(blue)))
    .stderr_has("--new-node");
    assert!(!root_out.exists());

    let new_out = blue.dir().join("foreign-rotation");
    let mut rotate: Vec<String> = ["--yes", "--addr", &other_addr, "rotate-shares"]
        .map(String::from)
        .to_vec();
    for h in ["holder1", "holder2", "holder3", "holder4", "holder5"] {
        rotate.extend([
            "--pgp-key".into(),
            fixture(&format!("{h}.pub.asc")).display().to_string(),
        ]);
    }
    rotate.extend(["--threshold", "3", "--out"].map(String::from));
    rotate.push(new_out.display().to_string());
    rotate.push("--share-stdin".into());
    op.run_stdin(&strs(&rotate), Some(other.plain("holder1").as_bytes()))
        .expect(4)
        .stderr_has(&format!(
            "rotate-shares: {other_addr} is not a node the transcript"
        ));
    assert!(!new_out.exists());

    let api = Api::new(&other.cluster, 0, &other.root_token);
    let started = |path: &str| {
        let (status, v) = api.read(path);
        assert_eq!(status, 200, "{path}: {v}");
        v["data"]["started"] == true || v["started"] == true
    };
    assert!(
        !started("sys/generate-root-token/attempt"),
        "no root generation"
    );
    assert!(!started("sys/rotate/root/init"), "no rotation");
    assert_eq!(text_of(&transcript(blue)), before, "nothing recorded");
}

/// Both clusters sealed: holder 1's real share for blue, sent with `--addr` of the other cluster,
/// is refused before it is read or sent; the other node's progress stays 0.
fn step_unseal_refuses_a_foreign_node(blue: &Unsealed, other: &Unsealed, bundle: &Path) {
    let before = text_of(&transcript(blue));
    let other_addr = addr(other);
    let mut args = vec!["--addr".to_owned(), other_addr.clone(), "unseal".to_owned()];
    args.extend(share_file_args(&blue.out, &["holder1"]));
    operator(blue, bundle)
        .run(&strs(&args))
        .expect(4)
        .stderr_has(&format!(
            "unseal: {other_addr} is not a node the transcript"
        ))
        .stderr_has("nothing was sent");
    assert_eq!(progress(&other.cluster), (true, 0), "nothing reached it");
    assert_eq!(text_of(&transcript(blue)), before, "nothing recorded");
}

/// Blue sealed: holder 1's share file of the OTHER cluster (it opens with holder 1's key), holder
/// 1's own file re-encoded as a binary message, and holder 3's file renamed as holder 1's: each
/// refused before anything is sent, naming the holder and both sha256s; blue's progress stays 0.
fn step_share_files_unlike_the_record_refused(blue: &Unsealed, other: &Unsealed) {
    let before = text_of(&transcript(blue));
    let fpr1 = fpr("holder1");
    let recorded = support::plugin::sha256_file(&share_file(&blue.out, "holder1"));
    let unseal_with = |file: &Path, key: &str| {
        blue.custody.run(&[
            "unseal",
            "--share-file",
            file.to_str().unwrap(),
            "--secret-key",
            fixture(&format!("{key}.sec.asc")).to_str().unwrap(),
        ])
    };

    let foreign = share_file(&other.out, "holder1");
    unseal_with(&foreign, "holder1")
        .expect(4)
        .stderr_has(&format!("is not the share file recorded for holder {fpr1}"))
        .stderr_has(&support::plugin::sha256_file(&foreign))
        .stderr_has(&recorded)
        .stderr_has("another cluster's init")
        .stderr_has("nothing was sent");
    assert_eq!(progress(&blue.cluster), (true, 0));

    let binary = blue.dir().join("holder1.share.gpg");
    let armored = std::fs::read(share_file(&blue.out, "holder1")).unwrap();
    std::fs::write(&binary, custody::pgp::read_message(&armored).unwrap().0).unwrap();
    unseal_with(&binary, "holder1")
        .expect(4)
        .stderr_has(&format!("is not the share file recorded for holder {fpr1}"))
        .stderr_has(&recorded);
    assert_eq!(progress(&blue.cluster), (true, 0));

    let renamed_dir = blue.dir().join("renamed");
    std::fs::create_dir_all(&renamed_dir).unwrap();
    let renamed = share_file(&renamed_dir, "holder1");
    std::fs::copy(share_file(&blue.out, "holder3"), &renamed).unwrap();
    unseal_with(&renamed, "holder1")
        .expect(4)
        .stderr_has(&format!(
            "is the share file init wrote for holder {}",
            fpr("holder3")
        ));
    assert_eq!(progress(&blue.cluster), (true, 0));
    assert_eq!(text_of(&transcript(blue)), before, "nothing recorded");
}

/// Holder 1 gives their share (1/3); in a later run holder 3's share and a share of the other
/// cluster complete the count, and blue refuses the lot: custody names holder 1 (an earlier run,
/// from the transcript) and this run's two shares as the ones to give again. Progress is 0.
fn step_refused_quorum_names_who_gives_again(blue: &Unsealed, other: &Unsealed) {
    let mut args = vec!["unseal".to_owned()];
    args.extend(share_file_args(&blue.out, &["holder1"]));
    blue.custody.run(&strs(&args)).expect(0);
    assert_eq!(progress(&blue.cluster), (true, 1));

    // The other cluster's share with a Shamir index blue's two do not use (else: a duplicate).
    let index = |s: &str| s.trim()[64..66].to_owned();
    let taken = [index(&blue.plain("holder1")), index(&blue.plain("holder3"))];
    let foreign = ["holder1", "holder3", "holder5"]
        .iter()
        .map(|h| other.plain(h))
        .find(|s| !taken.contains(&index(s)))
        .unwrap();
    let stdin = format!("{}\n{}\n", blue.plain("holder3").trim(), foreign.trim());
    let r = blue.custody.run_stdin(
        &["--format", "json", "unseal", "--share-stdin"],
        Some(stdin.as_bytes()),
    );
    r.expect(3)
        .stderr_has("must give their shares again")
        .stderr_has("in this run, stdin line 1, stdin line 2")
        .stderr_has(&format!(
            "in earlier runs (as the transcript records), holder {}",
            fpr("holder1")
        ));
    let again = &r.json()["give_again"][0];
    assert_eq!(again["addr"], addr(blue));
    assert_eq!(
        again["holders"]["earlier"],
        serde_json::json!([fpr("holder1")])
    );
    assert_eq!(progress(&blue.cluster), (true, 0));
}

/// `--new-node` must name one of the `--addr` nodes; naming the other cluster's node (spelled
/// with a trailing slash) vouches for it: the vouching is recorded before the share is sent,
/// the share is accepted, and a later run needs no `--new-node`. (In a copy of blue's transcript:
/// the other cluster is no node of blue.)
fn step_new_node_vouched_for_and_recorded(blue: &Unsealed, other: &Unsealed, bundle: &Path) {
    let vouched = blue.dir().join("vouched.jsonl");
    std::fs::copy(transcript(blue), &vouched).unwrap();
    let mut c = operator(blue, bundle);
    c.base
        .extend(["--transcript".into(), vouched.display().to_string()]);
    let other_addr = addr(other);
    c.run_stdin(
        &[
            "--addr",
            &other_addr,
            "unseal",
            "--new-node",
            "https://127.0.0.1:1",
            "--share-stdin",
        ],
        Some(other.plain("holder1").as_bytes()),
    )
    .expect(2)
    .stderr_has("is not one of the nodes given with --addr");
    assert_eq!(progress(&other.cluster), (true, 0));

    let before = text_of(&vouched).lines().count();
    c.run_stdin(
        &[
            "--addr",
            &other_addr,
            "unseal",
            "--new-node",
            &format!("{other_addr}/"),
            "--share-stdin",
        ],
        Some(other.plain("holder1").as_bytes()),
    )
    .expect(0)
    .stderr_has("(--new-node)")
    .stdout_has("1/3");
    assert_eq!(progress(&other.cluster), (true, 1));
    let (_, lines) = custody::transcript::read_verified(&vouched).unwrap();
    assert_eq!(lines.len(), before + 2, "the vouching, then the unseal");
    let vouching = &lines[before];
    assert_eq!(
        (vouching["ceremony"].as_str(), vouching["step"].as_str()),
        (Some("nodes"), Some("new-node"))
    );
    assert_eq!(vouching["facts"]["nodes"], serde_json::json!([other_addr]));

    c.run_stdin(
        &["--addr", &other_addr, "unseal", "--share-stdin"],
        Some(other.plain("holder3").as_bytes()),
    )
    .expect(0);
    assert_eq!(progress(&other.cluster), (true, 2));
}

/// A transcript that records no node at all (here: none exists) is no licence: refused, exit 4,
/// saying how to go on; nothing is sent and no transcript is created.
fn step_no_record_of_any_node_refused(blue: &Unsealed, other: &Unsealed, bundle: &Path) {
    let none = blue.dir().join("none.jsonl");
    let mut c = operator(blue, bundle);
    c.base
        .extend(["--transcript".into(), none.display().to_string()]);
    c.run_stdin(
        &["--addr", &addr(other), "unseal", "--share-stdin"],
        Some(other.plain("holder5").as_bytes()),
    )
    .expect(4)
    .stderr_has("none.jsonl does not exist")
    .stderr_has("custody adopt");
    assert_eq!(progress(&other.cluster), (true, 2));
    assert!(!none.exists());
}
