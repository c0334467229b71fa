//! Ceremonies 1 and 2 on a real 3-node OpenBao Raft cluster with TLS, with the holders' keys
//! made by gpg (RSA-3072 and ed25519/cv25519) and sq, and their own tools decrypting.

use custody_test_support as support;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::*;

const HOLDERS: [&str; 5] = ["holder1", "holder2", "holder3", "holder4", "holder5"];

fn unseal_json(r: &Run) -> Vec<serde_json::Value> {
    r.json()["unseal"]["nodes"].as_array().unwrap().clone()
}

#[track_caller]
fn assert_progress(cluster: &LocalCluster, sealed: bool, progress: u32) {
    for (i, s) in seal_status(cluster).iter().enumerate() {
        assert!(s.initialized, "node {i} not initialized");
        assert_eq!(
            (s.sealed, s.progress),
            (sealed, progress),
            "node {i}: {s:?}"
        );
    }
}

fn wait_one_active_two_standby(c: &Custody) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c.run(&["--format", "json", "status"]);
        let j = r.json();
        let roles: Vec<String> = j["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["ha_role"].as_str().unwrap_or("").to_owned())
            .collect();
        if r.code() == 0
            && roles.iter().filter(|r| *r == "active").count() == 1
            && roles.iter().filter(|r| *r == "standby").count() == 2
        {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "cluster did not settle: {roles:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn init_and_unseal_with_the_holders_own_tools() {
    let mut cluster = cluster("lifecycle", 3);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("shares");
    let c = Custody::for_cluster(work.path(), &cluster);

    let root_token_file = step_init_with_five_holders(&cluster, &c, &out);
    let gpg = Gpg::with_secret_keys(&[
        "holder1", "holder2", "holder3", "holder4", "holder5", "operator",
    ]);
    let (plain, root_token) =
        step_each_share_decrypts_with_the_holders_tools(&gpg, &out, &root_token_file);
    step_quorum_on_stdin_unseals_every_node(&c, &plain, &root_token);
    step_restart_then_bad_input_is_refused(&mut cluster, &c, &out, work.path(), &plain);
    step_holders_one_at_a_time(&cluster, &c, &out, work.path(), &plain);
    step_transcript_intact_then_tampered(&c, work.path());
    step_no_plaintext_secret_on_disk(work.path(), &plain, &root_token);
}

/// `init` with five holders (armored and binary files, gpg RSA, gpg ed25519, sq): the shares in
/// the holders' order, mode 0600, the cluster initialized and sealed; the root token's file.
fn step_init_with_five_holders(cluster: &TestCluster, c: &Custody, out: &Path) -> PathBuf {
    let keys: Vec<PathBuf> = vec![
        fixture("holder1.pub.asc"),
        fixture("holder2.pub.gpg"),
        fixture("holder3.pub.asc"),
        fixture("holder4.pub.asc"),
        fixture("holder5.pub.asc"),
    ];
    let mut args: Vec<String> = vec![
        "--yes".into(),
        "--format".into(),
        "json".into(),
        "init".into(),
    ];
    for k in &keys {
        args.extend(["--pgp-key".into(), k.display().to_string()]);
    }
    args.extend([
        "--threshold".into(),
        "3".into(),
        "--root-token-pgp-key".into(),
        fixture("operator.pub.asc").display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = c.run(&args);
    r.expect(0);
    let j = r.json();
    assert_eq!(j["schema_version"], 1);
    let shares = j["init"]["shares"].as_array().unwrap();
    assert_eq!(shares.len(), 5);
    for (i, h) in HOLDERS.iter().enumerate() {
        assert_eq!(
            shares[i]["fingerprint"],
            fpr(h),
            "shares come back in the holders' order"
        );
        assert_eq!(shares[i]["recipient_ok"], true);
        let f = share_file(out, h);
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", f.display());
        assert!(
            std::fs::read_to_string(&f)
                .unwrap()
                .starts_with("-----BEGIN PGP MESSAGE-----")
        );
    }
    let root_token_file = out.join(format!("root-token.{}.asc", fpr("operator")));
    assert_eq!(
        std::fs::metadata(&root_token_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let status = seal_status(cluster);
    assert!(status[0].initialized && status[0].sealed && status[0].t == 3 && status[0].n == 5);
    root_token_file
}

/// Each share decrypts with gpg, holder3's with sq too, and custody agrees with gpg; the
/// plaintext shares and the root token (the operator's).
fn step_each_share_decrypts_with_the_holders_tools(
    gpg: &Gpg,
    out: &Path,
    root_token_file: &Path,
) -> (BTreeMap<&'static str, String>, String) {
    let pass5 = fixture("holder5.passphrase");
    let mut plain: BTreeMap<&str, String> = BTreeMap::new();
    for h in HOLDERS {
        let p = gpg.decrypt(
            &share_file(out, h),
            (h == "holder5").then_some(pass5.as_path()),
        );
        assert_eq!(
            p.len(),
            66,
            "{h}: a share prints as 66 hex digits, got {p:?}"
        );
        assert!(p.bytes().all(|b| b.is_ascii_hexdigit()));
        let key = custody::pgp::SecretKeyFile::load(&fixture(&format!("{h}.sec.asc"))).unwrap();
        let message = custody::pgp::read_message(&std::fs::read(share_file(out, h)).unwrap())
            .unwrap()
            .0;
        let passphrase = (h == "holder5")
            .then(|| custody::secret::SecretString::new(std::fs::read_to_string(&pass5).unwrap()));
        let mine = key.decrypt(&message, passphrase.as_ref()).unwrap();
        assert_eq!(
            mine.expose(),
            p.as_bytes(),
            "{h}: custody and gpg decrypt the same share"
        );
        plain.insert(h, p);
    }
    assert_eq!(
        sq_decrypt(&fixture("holder3.sec.asc"), &share_file(out, "holder3")),
        plain["holder3"]
    );
    let root_token = gpg.decrypt(root_token_file, None);
    assert!(
        root_token.len() > 10 && root_token.is_ascii(),
        "the root token decrypts for the operator"
    );
    (plain, root_token)
}

/// Fresh cluster: holders 1, 3 and 5 together on stdin; the followers join and unseal. While
/// custody waits for stdin, no share is in its argv or environment.
fn step_quorum_on_stdin_unseals_every_node(
    c: &Custody,
    plain: &BTreeMap<&'static str, String>,
    root_token: &String,
) {
    let mut child = c
        .command(&["--format", "json", "unseal", "--share-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let stdin_text = format!(
        "{}\n{}\n{}\n",
        plain["holder1"], plain["holder3"], plain["holder5"]
    );
    {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(stdin_text.as_bytes()).unwrap();
    }
    let r = Run {
        args: vec!["unseal --share-stdin (1, 3, 5)".into()],
        out: child.wait_with_output().unwrap(),
    };
    r.expect(0);
    for s in plain.values().chain([root_token]) {
        let needle = s.as_bytes();
        assert!(
            !cmdline.windows(needle.len()).any(|w| w == needle),
            "a secret in custody's argv"
        );
        assert!(
            !environ.windows(needle.len()).any(|w| w == needle),
            "a secret in custody's environment"
        );
    }
    let nodes = unseal_json(&r);
    assert_eq!(nodes.len(), 3);
    assert!(nodes.iter().all(|n| n["state"] == "unsealed"), "{nodes:?}");
    let st = wait_one_active_two_standby(c);
    assert!(
        st["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["sealed"] == false && n["version"] == "2.7.2")
    );
}

/// Restart every node: initialized and sealed, progress 0 everywhere; bad input is refused
/// before anything is sent; shares of another cluster are refused by the server.
fn step_restart_then_bad_input_is_refused(
    cluster: &mut TestCluster,
    c: &Custody,
    out: &Path,
    work: &Path,
    plain: &BTreeMap<&'static str, String>,
) {
    cluster.restart().unwrap();
    assert_progress(cluster, true, 0);

    // Bad input is refused before anything is sent.
    c.run_stdin(&["unseal", "--share-stdin"], Some(b"not-a-share\n"))
        .expect(2)
        .stderr_has("not a share");
    c.run_stdin(
        &["unseal", "--share-stdin"],
        Some(format!("{}\n", &plain["holder1"][..40]).as_bytes()),
    )
    .expect(2)
    .stderr_has("33 bytes");
    c.run_stdin(
        &["unseal", "--share-stdin"],
        Some(format!("{0}\n{0}\n", plain["holder1"]).as_bytes()),
    )
    .expect(2)
    .stderr_has("given twice");
    c.run_stdin(&["unseal", "--share-stdin"], Some(b"\n\n"))
        .expect(2)
        .stderr_has("no share");
    c.run(&[
        "unseal",
        "--share-file",
        share_file(out, "holder5").to_str().unwrap(),
        "--secret-key",
        fixture("holder5.sec.asc").to_str().unwrap(),
    ])
    .expect(2)
    .stderr_has("--passphrase-file");
    let wrong = work.join("wrong-passphrase");
    std::fs::write(&wrong, "not it").unwrap();
    c.run(&[
        "unseal",
        "--share-file",
        share_file(out, "holder5").to_str().unwrap(),
        "--secret-key",
        fixture("holder5.sec.asc").to_str().unwrap(),
        "--passphrase-file",
        wrong.to_str().unwrap(),
    ])
    .expect(2)
    .stderr_has("does not unlock");
    c.run(&[
        "unseal",
        "--share-file",
        share_file(out, "holder1").to_str().unwrap(),
        "--secret-key",
        fixture("holder2.sec.asc").to_str().unwrap(),
    ])
    .expect(4)
    .stderr_has("not addressed");
    c.run(&[
        "unseal",
        "--share-file",
        share_file(out, "holder1").to_str().unwrap(),
        "--secret-key",
        fixture("holder1.pub.asc").to_str().unwrap(),
    ])
    .expect(2)
    .stderr_has("only a public certificate");
    assert_progress(cluster, true, 0);

    // Shares of another cluster: well-formed, so the server takes them, then refuses the
    // combination and resets its progress.
    let foreign: String = (1..=3u8)
        .map(|i| format!("{}{:02x}\n", format!("{:02x}", 40 + i).repeat(32), i))
        .collect();
    c.run_stdin(&["unseal", "--share-stdin"], Some(foreign.as_bytes()))
        .expect(3)
        .stderr_has("refused");
    assert_progress(cluster, true, 0);
}

/// Holders come one at a time, each with another input method. (Holder 5's passphrase file
/// ends with a newline, as `echo` writes it.)
fn step_holders_one_at_a_time(
    cluster: &TestCluster,
    c: &Custody,
    out: &Path,
    work: &Path,
    plain: &BTreeMap<&'static str, String>,
) {
    let pass5 = fixture("holder5.passphrase");
    let pass5_nl = work.join("holder5.passphrase.nl");
    std::fs::write(
        &pass5_nl,
        format!("{}\n", std::fs::read_to_string(&pass5).unwrap()),
    )
    .unwrap();
    let r = c.run(&[
        "--format",
        "json",
        "unseal",
        "--share-file",
        share_file(out, "holder2").to_str().unwrap(),
        "--secret-key",
        fixture("holder2.sec.asc").to_str().unwrap(),
    ]);
    r.expect(0);
    assert!(
        unseal_json(&r)
            .iter()
            .all(|n| n["state"] == "sealed" && n["progress"] == 1 && n["needs"] == 2)
    );
    assert_progress(cluster, true, 1);

    let r = c.run(&[
        "unseal",
        "--share-file",
        share_file(out, "holder5").to_str().unwrap(),
        "--secret-key",
        fixture("holder5.sec.asc").to_str().unwrap(),
        "--passphrase-file",
        pass5_nl.to_str().unwrap(),
    ]);
    r.expect(0);
    assert!(r.stdout().contains("needs 1 more holder"), "{}", r.stdout());
    assert_progress(cluster, true, 2);

    // Holder 4 (RSA) decrypted with their own gpg and piped, exactly as gpg printed it.
    c.run_stdin(
        &["unseal", "--share-stdin"],
        Some(plain["holder4"].as_bytes()),
    )
    .expect(0);
    assert_progress(cluster, false, 0);
    wait_one_active_two_standby(c);
}

/// The transcript: intact, then tampered.
fn step_transcript_intact_then_tampered(c: &Custody, work: &Path) {
    let transcript = work.join("custody-transcript.jsonl");
    let r = c.run(&[
        "--format",
        "json",
        "transcript",
        "verify",
        transcript.to_str().unwrap(),
    ]);
    r.expect(0);
    assert!(r.json()["entries"].as_u64().unwrap() >= 5);
    let text = std::fs::read_to_string(&transcript).unwrap();
    let tampered = work.join("tampered.jsonl");
    std::fs::write(
        &tampered,
        text.replacen("\"threshold\":3", "\"threshold\":2", 1),
    )
    .unwrap();
    c.run(&["transcript", "verify", tampered.to_str().unwrap()])
        .expect(3)
        .stderr_has("line 1");
}

/// No plaintext share or token in any file custody wrote.
fn step_no_plaintext_secret_on_disk(
    work: &Path,
    plain: &BTreeMap<&'static str, String>,
    root_token: &String,
) {
    for f in files_under(work) {
        let data = std::fs::read(&f).unwrap();
        for s in plain.values().chain([root_token]) {
            let needle = s.as_bytes();
            assert!(
                !data.windows(needle.len()).any(|w| w == needle),
                "a plaintext secret in {}",
                f.display()
            );
        }
    }
}
