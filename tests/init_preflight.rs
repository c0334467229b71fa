//! Every pre-flight refusal of `custody init` names the file and the problem, exits non-zero,
//! and leaves the cluster uninitialized. Then a down node during unseal is reported.

use custody_test_support as support;

use std::path::{Path, PathBuf};

use openpgp::serialize::SerializeInto;
use sequoia_openpgp as openpgp;

use support::*;

fn init_args(keys: &[PathBuf], threshold: &str, root: &Path, out: &Path) -> Vec<String> {
    let mut a = vec!["--yes".to_owned(), "init".to_owned()];
    for k in keys {
        a.extend(["--pgp-key".to_owned(), k.display().to_string()]);
    }
    a.extend([
        "--threshold".into(),
        threshold.into(),
        "--root-token-pgp-key".into(),
        root.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ]);
    a
}

/// A valid v4 certificate whose user ID tries to forge a line of init's holder list and to
/// clear the terminal's line.
fn crafted_cert(dir: &Path) -> PathBuf {
    let uid = "Mallory\n  9. FAKE0000000000000000000000000000000000000  Holder Nine\u{1b}[2K";
    let (cert, _) = openpgp::cert::CertBuilder::general_purpose(Some(uid))
        .set_cipher_suite(openpgp::cert::CipherSuite::Cv25519)
        .generate()
        .unwrap();
    let p = dir.join("crafted.pub.asc");
    std::fs::write(&p, cert.armored().to_vec().unwrap()).unwrap();
    p
}

fn v6_cert(dir: &Path) -> PathBuf {
    let (cert, _) = openpgp::cert::CertBuilder::general_purpose(Some("v6 <v6@custody.test>"))
        .set_cipher_suite(openpgp::cert::CipherSuite::Cv25519)
        .set_profile(openpgp::Profile::RFC9580)
        .unwrap()
        .generate()
        .unwrap();
    let p = dir.join("v6.pub.asc");
    std::fs::write(&p, cert.armored().to_vec().unwrap()).unwrap();
    p
}

#[test]
fn init_refuses_bad_inputs_and_changes_nothing() {
    let cluster = cluster("preflight", 1);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let c = Custody::for_cluster(work.path(), &cluster);
    let good: Vec<PathBuf> = ["holder1", "holder2", "holder3"]
        .iter()
        .map(|h| fixture(&format!("{h}.pub.asc")))
        .collect();
    let root = fixture("operator.pub.asc");
    let bad = |n: &str| fixtures().join("bad").join(n);
    let with = |extra: PathBuf| {
        let mut k = good.clone();
        k.push(extra);
        k
    };

    let cases: Vec<(&str, Vec<String>, i32, String)> = vec![
        (
            "expired key",
            init_args(&with(bad("expired.pub.asc")), "2", &root, &out),
            4,
            "expired.pub.asc".into(),
        ),
        (
            "expired subkey",
            init_args(&with(bad("expired-subkey.pub.asc")), "2", &root, &out),
            4,
            "encryption subkey has expired".into(),
        ),
        (
            "revoked key",
            init_args(&with(bad("revoked.pub.asc")), "2", &root, &out),
            4,
            "revoked".into(),
        ),
        (
            "revoked subkey",
            init_args(&with(bad("revoked-subkey.pub.asc")), "2", &root, &out),
            4,
            "encryption subkey is revoked".into(),
        ),
        (
            "signing only",
            init_args(&with(bad("sign-only.pub.asc")), "2", &root, &out),
            4,
            "no encryption-capable subkey".into(),
        ),
        (
            "secret key material",
            init_args(&with(bad("with-secret.asc")), "2", &root, &out),
            4,
            "secret key material".into(),
        ),
        (
            "garbage",
            init_args(&with(bad("garbage.asc")), "2", &root, &out),
            4,
            "garbage.asc".into(),
        ),
        (
            "empty file",
            init_args(&with(bad("empty.asc")), "2", &root, &out),
            4,
            "is empty".into(),
        ),
        (
            "missing file",
            init_args(&with(work.path().join("nope.asc")), "2", &root, &out),
            4,
            "cannot read it".into(),
        ),
        (
            "same holder twice",
            init_args(&with(bad("duplicate-of-holder2.pub.gpg")), "2", &root, &out),
            4,
            "already given".into(),
        ),
        (
            "v6 key",
            init_args(&with(v6_cert(work.path())), "2", &root, &out),
            4,
            "v6".into(),
        ),
        (
            "threshold 1",
            init_args(&good, "1", &root, &out),
            2,
            "--threshold 1".into(),
        ),
        (
            "threshold above holders",
            init_args(&good, "4", &root, &out),
            2,
            "--threshold 4".into(),
        ),
        (
            "one holder",
            init_args(&good[..1], "1", &root, &out),
            2,
            "at least 2".into(),
        ),
        (
            "secret root token key",
            init_args(&good, "2", &bad("with-secret.asc"), &out),
            4,
            "secret key material".into(),
        ),
    ];
    for (what, args, code, needle) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = c.run(&args);
        assert_eq!(
            r.code(),
            *code,
            "{what}: exit {} (want {code})\n{}",
            r.code(),
            r.stderr()
        );
        assert!(
            r.stderr().contains(needle.as_str()),
            "{what}: stderr lacks {needle:?}:\n{}",
            r.stderr()
        );
        let s = &seal_status(&cluster)[0];
        assert!(!s.initialized, "{what}: the cluster was initialized");
        assert!(
            !out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(),
            "{what}: files written"
        );
    }

    // An existing share file is never overwritten: refused before anything is sent.
    std::fs::create_dir_all(&out).unwrap();
    let existing = out.join(format!("{}.share.asc", fpr("holder2")));
    std::fs::write(&existing, "keep me").unwrap();
    let args = init_args(&good, "2", &root, &out);
    let r = c.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    r.expect(4).stderr_has("already exists");
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me");
    assert!(!seal_status(&cluster)[0].initialized);
    std::fs::remove_file(&existing).unwrap();

    // A node that does not answer: precondition, nothing sent.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead_addr = format!("https://127.0.0.1:{dead}");
    let mut with_dead = Custody::for_cluster(work.path(), &cluster);
    with_dead.base.extend(["--addr".into(), dead_addr.clone()]);
    let r = with_dead.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    r.expect(4).stderr_has("not reachable");
    assert!(!seal_status(&cluster)[0].initialized);

    // Without --yes and without a terminal, custody does not wait: it names the flag.
    let no_yes: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--yes")
        .collect();
    c.run(&no_yes).expect(2).stderr_has("--yes");
    assert!(!seal_status(&cluster)[0].initialized);

    // A crafted user ID is shown as data: it cannot add a line to the list the holders confirm.
    let crafted = crafted_cert(work.path());
    let mut with_crafted = init_args(&with(crafted), "2", &root, &out);
    with_crafted.retain(|a| a != "--yes");
    let r = c.run(&with_crafted.iter().map(String::as_str).collect::<Vec<_>>());
    r.expect(2).stderr_has("Mallory\\n  9. FAKE");
    assert!(!r.stderr().contains('\u{1b}'), "{}", r.stderr());
    assert!(!r.stderr().contains("\n  9. FAKE"), "{}", r.stderr());
    assert!(!seal_status(&cluster)[0].initialized);

    // Now the real thing, with a fault between the checks and the writes: no share is lost.
    step_outputs_that_cannot_be_written_are_printed(&c, &args, &out, &good);
    assert!(seal_status(&cluster)[0].initialized);
    let out2 = work.path().join("out2");
    let again = init_args(&good, "2", &root, &out2);
    c.run(&again.iter().map(String::as_str).collect::<Vec<_>>())
        .expect(4)
        .stderr_has("already initialized");

    // Unseal with one node down: the live node is served, the dead one reported, exit 1. (The
    // dead address is no node init recorded: --new-node vouches for it.)
    let gpg = Gpg::with_secret_keys(&["holder1", "holder2"]);
    let s1 = gpg.decrypt(&out.join(format!("{}.share.asc", fpr("holder1"))), None);
    let s2 = gpg.decrypt(&out.join(format!("{}.share.asc", fpr("holder2"))), None);
    let r = with_dead.run_stdin(
        &[
            "--format",
            "json",
            "unseal",
            "--new-node",
            &dead_addr,
            "--share-stdin",
        ],
        Some(format!("{s1}\n{s2}\n").as_bytes()),
    );
    r.expect(1).stderr_has("down");
    let nodes = r.json()["unseal"]["nodes"].as_array().unwrap().clone();
    assert_eq!(nodes[0]["state"], "unsealed");
    assert_eq!(nodes[1]["state"], "down");
    assert!(!seal_status(&cluster)[0].sealed);
}

/// The real init on a terminal; at its confirmation prompt (every check made, --out created
/// 0700) --out is replaced by a file, so no output can be written after `sys/init`. Every share
/// and the root token are printed armored with their holder's fingerprint, custody exits 1, and
/// the operator saves each one where init would have: the next steps unseal with them.
fn step_outputs_that_cannot_be_written_are_printed(
    c: &Custody,
    args: &[String],
    out: &Path,
    holders: &[PathBuf],
) {
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--yes")
        .collect();
    let moved = out.with_extension("moved");
    if out.exists() {
        std::fs::remove_dir(out).expect("--out is empty before the real init");
    }
    let r = run_on_terminal_at(
        c,
        &args,
        "confirmed by each holder?",
        || {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(out).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "--out was not made 0700");
            std::fs::rename(out, &moved).unwrap();
            std::fs::write(out, "not a directory").unwrap();
        },
        "y",
    );
    assert_eq!(r.code(), 1, "{}", r.stdout());
    let text = r.stdout().replace("\r\n", "\n");
    assert!(text.contains("could not be written"), "{text}");
    std::fs::remove_file(out).unwrap();
    std::fs::rename(&moved, out).unwrap();
    let mut rescued = 0;
    for (i, holder) in holders.iter().enumerate() {
        let name = holder
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches(".pub.asc");
        let label = format!("share {} of {}", i + 1, fpr(name));
        let block = rescued_block(&text, &label);
        assert!(
            block.starts_with("-----BEGIN PGP MESSAGE-----"),
            "{label}: {block}"
        );
        std::fs::write(share_file(out, name), format!("{block}\n")).unwrap();
        rescued += 1;
    }
    let root_label = format!("the root token ({})", fpr("operator"));
    assert!(rescued_block(&text, &root_label).starts_with("-----BEGIN PGP MESSAGE-----"));
    assert_eq!(rescued, holders.len());
    // What was rescued is each holder's own share: their own tool decrypts it.
    let share1 = sq_decrypt(&fixture("holder1.sec.asc"), &share_file(out, "holder1"));
    assert!(!share1.trim().is_empty());
}

/// The text between custody's ==== lines for `label`.
fn rescued_block(text: &str, label: &str) -> String {
    let start = format!("==== custody init could not write {label}: ");
    let end = format!("==== end of {label}\n");
    let from = text
        .find(&start)
        .unwrap_or_else(|| panic!("{label} was not printed:\n{text}"));
    let body = &text[from..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body
        .find(&end)
        .unwrap_or_else(|| panic!("{label} has no end line"))]
        .trim()
        .to_owned()
}
