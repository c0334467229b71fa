//! A cluster initialized by OpenBao's own CLI (`bao operator init -pgp-keys`), adopted by
//! custody: the holders' shares in every form they may have (the CLI's one-line base64, binary,
//! armored) accepted by every command that takes one; junk refused; mismatched or repeated
//! adoptions refused with nothing written; the adopted record signed and verified with the
//! holders' certificates.

use custody_test_support as support;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;
use support::plugin::{install_authority, plugin_bin, plugin_cluster};
use support::*;

const HOLDERS: [&str; 5] = ["holder1", "holder2", "holder3", "holder4", "holder5"];

/// The cluster as `bao operator init` left it, and the holders' shares in the forms they keep.
struct Adopted {
    cluster: TestCluster,
    work: tempfile::TempDir,
    custody: Custody,
    /// The CLI's root token (plaintext: no -root-token-pgp-key), in a 0600 file.
    root_file: PathBuf,
    /// Holder `i`'s share file (`shares[i - 1]`): 1, 4 and 5 as the CLI printed them, 2 binary,
    /// 3 armored.
    shares: Vec<PathBuf>,
}

impl Adopted {
    fn dir(&self) -> &Path {
        self.work.path()
    }

    fn transcript(&self) -> PathBuf {
        self.dir().join("custody-transcript.jsonl")
    }

    /// `--share-file SHARE --secret-key KEY` for each holder `i` (1-based), holder 5's key with
    /// its passphrase.
    fn share_args(&self, who: &[usize]) -> Vec<String> {
        let mut a = Vec::new();
        for &i in who {
            a.extend([
                "--share-file".into(),
                self.shares[i - 1].display().to_string(),
                "--secret-key".into(),
                fixture(&format!("holder{i}.sec.asc")).display().to_string(),
            ]);
        }
        if who.contains(&5) {
            a.push("--passphrase-file".into());
            a.push(fixture("holder5.passphrase").display().to_string());
        }
        a
    }
}

fn strs(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

fn sealed(c: &LocalCluster) -> bool {
    seal_status(c).iter().all(|s| s.sealed)
}

#[test]
fn a_cluster_initialized_by_the_bao_cli_is_adopted_and_its_shares_read_in_every_form() {
    let a = step_init_with_the_bao_cli(plugin_cluster("adopt", 1));
    step_junk_share_file_refused(&a);
    step_unseal_with_three_forms(&a);
    step_seal_with_the_bao_cli(&a);
    step_mismatched_adoptions_refused(&a);
    let set = step_adopt_unseals_and_proves(&a);
    step_adopt_twice_refused(&a);
    step_adopt_of_an_unsealed_cluster_proves_no_one(&a);
    step_root_generate_with_three_forms(&a);
    step_restore_test_with_three_forms(&a, &set);
    step_signed_and_verified_with_the_holders_certs(&a);
}

/// `bao` itself, pointed at the test cluster, with no environment but PATH and HOME.
fn bao(a_dir: &Path, cluster: &LocalCluster, args: &[&str]) -> Command {
    let mut c = Command::new(bao_bin());
    c.current_dir(a_dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", a_dir)
        .args(args)
        .arg(format!("-address={}", cluster.addrs()[0]))
        .arg(format!("-ca-cert={}", cluster.ca_cert.display()));
    c
}

/// `bao operator init -key-shares=5 -key-threshold=3 -pgp-keys=…` with each holder's key as the
/// Vault docs export it (`gpg --export KEY | base64`).
fn step_init_with_the_bao_cli(cluster: TestCluster) -> Adopted {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let b64 = base64::engine::general_purpose::STANDARD;
    let keys: Vec<String> = HOLDERS
        .iter()
        .map(|h| {
            let file = dir.join(format!("{h}.b64"));
            let binary = std::fs::read(fixture(&format!("{h}.pub.gpg"))).unwrap();
            std::fs::write(&file, b64.encode(binary) + "\n").unwrap();
            file.display().to_string()
        })
        .collect();
    let out = bao(dir, &cluster, &["operator", "init"])
        .args([
            "-key-shares=5",
            "-key-threshold=3",
            "-format=json",
            &format!("-pgp-keys={}", keys.join(",")),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bao operator init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let init: Value = serde_json::from_slice(&out.stdout).unwrap();
    let printed: Vec<&str> = (init["unseal_keys_b64"].as_array().unwrap().iter())
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(printed.len(), 5);
    let shares = (1..=5)
        .map(|i| {
            let line = printed[i - 1];
            let binary = b64.decode(line).unwrap();
            let (file, bytes) = match i {
                2 => (format!("holder{i}.share.gpg"), binary),
                3 => (
                    format!("holder{i}.share.asc"),
                    custody::pgp::armor_message(&binary).unwrap(),
                ),
                _ => (format!("holder{i}.share"), format!("{line}\n").into_bytes()),
            };
            let path = dir.join(file);
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect();
    let root_file = dir.join("root.token");
    custody::fsutil::write_private(
        &root_file,
        init["root_token"].as_str().unwrap().as_bytes(),
        false,
    )
    .unwrap();
    Adopted {
        custody: Custody::for_cluster(dir, &cluster),
        cluster,
        work,
        root_file,
        shares,
    }
}

/// A share file in none of the three forms: exit 2, saying what was expected, nothing sent.
fn step_junk_share_file_refused(a: &Adopted) {
    let junk = a.dir().join("junk.share");
    std::fs::write(&junk, "not a share at all\n").unwrap();
    let key = fixture("holder1.sec.asc");
    // (No transcript records the node yet: --new-node vouches for it, as in the next step.)
    let node = a.cluster.addrs()[0].to_string();
    a.custody
        .run(&[
            "unseal",
            "--new-node",
            &node,
            "--share-file",
            junk.to_str().unwrap(),
            "--secret-key",
            key.to_str().unwrap(),
        ])
        .expect(2)
        .stderr_has("armored OpenPGP message")
        .stderr_has("binary OpenPGP message")
        .stderr_has("one line of base64");
    assert_eq!(seal_status(&a.cluster)[0].progress, 0, "nothing was sent");
    assert!(!a.transcript().exists());
}

/// Holders 1 (the CLI's base64), 2 (binary) and 3 (armored) unseal, each form named. Before the
/// adoption no transcript records the node: the unseal is refused until --new-node vouches for it.
fn step_unseal_with_three_forms(a: &Adopted) {
    let node = a.cluster.addrs()[0].to_string();
    let mut args: Vec<String> = ["--transcript", "before-adopt.jsonl", "unseal"]
        .map(String::from)
        .to_vec();
    args.extend(a.share_args(&[1, 2, 3]));
    a.custody
        .run(&strs(&args))
        .expect(4)
        .stderr_has("before-adopt.jsonl does not exist")
        .stderr_has("custody adopt")
        .stderr_has("--new-node");
    assert_eq!(seal_status(&a.cluster)[0].progress, 0, "nothing was sent");
    assert!(!a.dir().join("before-adopt.jsonl").exists());
    let mut args: Vec<String> = [
        "--transcript",
        "before-adopt.jsonl",
        "unseal",
        "--new-node",
        &node,
    ]
    .map(String::from)
    .to_vec();
    args.extend(a.share_args(&[1, 2, 3]));
    a.custody
        .run(&strs(&args))
        .expect(0)
        .stderr_has("one-line base64 share")
        .stderr_has("binary share")
        .stderr_has("armored share");
    assert!(!sealed(&a.cluster));
}

fn step_seal_with_the_bao_cli(a: &Adopted) {
    let token = std::fs::read_to_string(&a.root_file).unwrap();
    let out = bao(a.dir(), &a.cluster, &["operator", "seal"])
        .env("BAO_TOKEN", token.trim())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bao operator seal: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(sealed(&a.cluster));
}

fn adopt_args(holders: &[&str], threshold: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = ["--yes", "--format", "json", "adopt"]
        .map(String::from)
        .to_vec();
    for h in holders {
        args.push("--pgp-key".into());
        args.push(fixture(&format!("{h}.pub.gpg")).display().to_string());
    }
    if let Some(t) = threshold {
        args.extend(["--threshold".into(), t.into()]);
    }
    args
}

/// Four keys for five shares, a threshold the server does not have, a share file opened by a
/// key that is not a holder's: exit 4, no transcript, the cluster untouched.
fn step_mismatched_adoptions_refused(a: &Adopted) {
    a.custody
        .run(&strs(&adopt_args(&HOLDERS[..4], None)))
        .expect(4)
        .stderr_has("4 --pgp-key given, and the server made 5 shares");
    a.custody
        .run(&strs(&adopt_args(&HOLDERS, Some("2"))))
        .expect(4)
        .stderr_has("--threshold 2 given, and the server needs 3");
    let mut not_a_holder = adopt_args(
        &["holder1", "holder2", "holder3", "holder4", "holder6"],
        Some("3"),
    );
    not_a_holder.extend(a.share_args(&[5]));
    a.custody
        .run(&strs(&not_a_holder))
        .expect(4)
        .stderr_has("not one of the --pgp-key holders");
    assert!(!a.transcript().exists(), "a refusal writes no transcript");
    assert!(sealed(&a.cluster));
    assert_eq!(seal_status(&a.cluster)[0].progress, 0);
}

/// The sealed cluster adopted with holders 1, 4 and 5's files as the CLI printed them: they
/// unseal it, which proves them. The line is a share set as init's is. Its id.
fn step_adopt_unseals_and_proves(a: &Adopted) -> String {
    let mut args = adopt_args(&HOLDERS, None);
    args.extend(a.share_args(&[1, 4, 5]));
    let r = a.custody.run(&strs(&args));
    r.expect(0);
    assert!(!sealed(&a.cluster));
    let (_, entries) = custody::transcript::read_verified(&a.transcript()).unwrap();
    assert_eq!(entries.len(), 1);
    let line = &entries[0];
    assert_eq!(
        (&line["ceremony"], &line["step"]),
        (&"adopt".into(), &"adopt".into())
    );
    let facts = &line["facts"];
    assert_eq!(
        (facts["shares"].as_u64(), facts["threshold"].as_u64()),
        (Some(5), Some(3))
    );
    let recorded: Vec<&str> = (facts["holders"].as_array().unwrap().iter())
        .map(|h| h["fingerprint"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = HOLDERS.iter().map(|h| fpr(h)).collect();
    assert_eq!(recorded, expected);
    assert_eq!(
        facts["proven_by"],
        serde_json::json!([fpr("holder1"), fpr("holder4"), fpr("holder5")])
    );
    assert_eq!(facts["opened_by"], serde_json::json!([]));
    assert!(
        facts["version"].as_str().unwrap().starts_with("2.7"),
        "{facts}"
    );
    assert!(!facts["cluster_id"].as_str().unwrap().is_empty(), "{facts}");
    assert_eq!(facts["addr"], a.cluster.addrs()[0].to_string());
    let set = custody::transcript::share_sets::current(&entries).unwrap();
    assert_eq!(set.origin.ceremony, "adopt");
    assert_eq!(r.json()["adopt"]["proven_by"], facts["proven_by"]);
    // Holders 1, 4 and 5 have proven their share of the adopted set; 2 and 3 not yet.
    let r = a.custody.run(&["--format", "json", "holders"]);
    r.expect(0);
    let proved: Vec<bool> = (r.json()["holders"].as_array().unwrap().iter())
        .map(|h| !h["last_proof"].is_null())
        .collect();
    assert_eq!(proved, [true, false, false, true, true], "{}", r.stdout());
    set.id
}

/// The transcript now records a share set: a second adoption is refused and writes nothing.
fn step_adopt_twice_refused(a: &Adopted) {
    let before = std::fs::read(a.transcript()).unwrap();
    a.custody
        .run(&strs(&adopt_args(&HOLDERS, None)))
        .expect(4)
        .stderr_has("already records the share set");
    assert_eq!(std::fs::read(a.transcript()).unwrap(), before);
}

/// The cluster is unsealed now: an adoption into a fresh transcript with holders 2 (binary) and
/// 3 (armored) can only say whose keys opened which files (`opened_by`), proves no one, and
/// points to a restore test; `custody holders` on that record shows no proof.
fn step_adopt_of_an_unsealed_cluster_proves_no_one(a: &Adopted) {
    let fresh = a.dir().join("unsealed-adoption.jsonl");
    let mut args = vec!["--transcript".to_owned(), fresh.display().to_string()];
    args.extend(adopt_args(&HOLDERS, Some("3")));
    args.extend(a.share_args(&[2, 3]));
    let r = a.custody.run(&strs(&args));
    r.expect(0);
    assert!(
        r.json()["not_submitted"].is_string(),
        "it says why the shares were not given to the server: {}",
        r.stdout()
    );
    assert!(!sealed(&a.cluster));
    let (_, entries) = custody::transcript::read_verified(&fresh).unwrap();
    let facts = &entries[0]["facts"];
    assert_eq!(facts["proven_by"], serde_json::json!([]));
    assert_eq!(
        facts["opened_by"],
        serde_json::json!([fpr("holder2"), fpr("holder3")])
    );
    let r = a.custody.run(&[
        "--transcript",
        fresh.to_str().unwrap(),
        "--format",
        "json",
        "holders",
    ]);
    r.expect(0);
    assert!(
        (r.json()["holders"].as_array().unwrap().iter()).all(|h| h["last_proof"].is_null()),
        "opening a file proves nothing to the server: {}",
        r.stdout()
    );
}

/// A ceremony token from the CLI's root token, then a root token from holders 2 (binary),
/// 3 (armored) and 1 (base64).
fn step_root_generate_with_three_forms(a: &Adopted) {
    let gpg = Gpg::with_secret_keys(&["operator"]);
    let asc = a.dir().join("ceremony.asc");
    let op_pub = fixture("operator.pub.asc");
    a.custody
        .with_token_file(&a.root_file)
        .run(&[
            "root",
            "ceremony-token",
            "--pgp-key",
            op_pub.to_str().unwrap(),
            "--out",
            asc.to_str().unwrap(),
        ])
        .expect(0);
    let ceremony = a.dir().join("ceremony.token");
    custody::fsutil::write_private(&ceremony, gpg.decrypt(&asc, None).trim().as_bytes(), false)
        .unwrap();
    let out = a.dir().join("root2.asc");
    let mut args: Vec<String> = ["--format", "json", "root", "generate", "--pgp-key"]
        .map(String::from)
        .to_vec();
    args.extend([
        op_pub.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ]);
    args.extend(a.share_args(&[2, 3, 1]));
    let r = a.custody.with_token_file(&ceremony).run(&strs(&args));
    r.expect(0);
    assert_eq!(r.json()["complete"], true, "{}", r.stdout());
    assert!(!gpg.decrypt(&out, None).trim().is_empty());
    rotation_reads_three_forms(a, &ceremony);
}

/// rotate-shares takes the old quorum's share files in the three forms too: holders 1 (base64),
/// 2 (binary) and 3 (armored) complete the old quorum of a rotation to the same five holders;
/// it is then cancelled and the adopted shares stay in force.
fn rotation_reads_three_forms(a: &Adopted, ceremony: &Path) {
    let mut args: Vec<String> = ["--yes", "rotate-shares"].map(String::from).to_vec();
    for h in HOLDERS {
        args.push("--pgp-key".into());
        args.push(fixture(&format!("{h}.pub.asc")).display().to_string());
    }
    args.extend(["--threshold".into(), "3".into(), "--out".into()]);
    args.push(a.dir().join("rotated").display().to_string());
    args.extend(a.share_args(&[1, 2, 3]));
    let as_ceremony = a.custody.with_token_file(ceremony);
    as_ceremony
        .run(&strs(&args))
        .expect(0)
        .stdout_has("The old quorum is complete");
    as_ceremony
        .run(&["rotate-shares", "--cancel"])
        .expect(0)
        .stdout_has("old shares stay in force");
}

/// The Authority made with the root token (a restore test checks its address), a snapshot
/// saved; its restore test opened by holders 3 (armored), 4 (base64) and 2 (binary), for the
/// adopted share set.
fn step_restore_test_with_three_forms(a: &Adopted, set: &str) {
    let snap = a.dir().join("adopted.snap");
    let as_root = a.custody.with_token_file(&a.root_file);
    install_authority(&as_root, &a.dir().join("signer.wrap"));
    let r = as_root.run(&[
        "--format",
        "json",
        "snapshot",
        "save",
        "--out",
        snap.to_str().unwrap(),
    ]);
    r.expect(0);
    assert_eq!(r.json()["manifest"]["share_set"]["id"], set);
    let mut args: Vec<String> = [
        "--format",
        "json",
        "snapshot",
        "verify",
        snap.to_str().unwrap(),
        "--restore-test",
        "--plugin-bin",
        plugin_bin().to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    args.extend(a.share_args(&[3, 4, 2]));
    let r = as_root.run(&strs(&args));
    r.expect(0);
    assert_eq!(r.json()["verify"]["share_set"], set);
    // With holders 2 and 3's restore test, every holder of the adopted set has proven theirs.
    let r = a.custody.run(&["--format", "json", "holders"]);
    r.expect(0);
    assert!(
        (r.json()["holders"].as_array().unwrap().iter()).all(|h| !h["last_proof"].is_null()),
        "{}",
        r.stdout()
    );
}

/// Holder 2 signs the adopted record; verify with the holders' certificates counts them as the
/// holders init would have named.
fn step_signed_and_verified_with_the_holders_certs(a: &Adopted) {
    let key = fixture("holder2.sec.asc");
    a.custody
        .run(&["transcript", "sign", "--secret-key", key.to_str().unwrap()])
        .expect(0);
    let certs = fixtures();
    let r = a.custody.run(&[
        "--format",
        "json",
        "transcript",
        "verify",
        a.transcript().to_str().unwrap(),
        "--certs",
        certs.to_str().unwrap(),
        "--require-signatures",
        "1",
    ]);
    r.expect(0);
    assert_eq!(r.json()["init_holders"].as_array().unwrap().len(), 5);
    let json = r.json();
    let counted: Vec<&str> = (json["counted_signers"].as_array().unwrap().iter())
        .map(|s| s["fingerprint"].as_str().unwrap())
        .collect();
    assert_eq!(counted, [fpr("holder2")]);
}
