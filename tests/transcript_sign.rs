//! Holders sign the transcript's head with their own OpenPGP keys; a witness checks every
//! signature against the certificates of the holders recorded at init.

use custody_test_support as support;

use serde_json::json;

use custody::transcript::{Step, Transcript};
use support::*;

#[test]
fn signatures_verify_and_every_bad_one_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t.jsonl");
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

    let mut c = Custody::new(dir.path());
    c.base
        .extend(["--transcript".into(), t.display().to_string()]);
    let certs = fixtures().display().to_string();
    let key = |h: &str| fixture(&format!("{h}.sec.asc")).display().to_string();

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
    let r = c.run(&[
        "--format",
        "json",
        "transcript",
        "verify",
        t.to_str().unwrap(),
        "--certs",
        &certs,
    ]);
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
    c.run(&[
        "transcript",
        "verify",
        t.to_str().unwrap(),
        "--certs",
        &certs,
    ])
    .expect(3)
    .stderr_has("do not check out");
    let r = c.run(&[
        "--format",
        "json",
        "transcript",
        "verify",
        t.to_str().unwrap(),
        "--certs",
        &certs,
    ]);
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
        .append(Step::new("witness", "sign", "holder", sig["facts"].clone()))
        .unwrap();
    let r = c.run(&[
        "--format",
        "json",
        "transcript",
        "verify",
        t.to_str().unwrap(),
        "--certs",
        &certs,
    ]);
    r.expect(3);
    assert!(r.stdout().contains("older head"), "{}", r.stdout());

    // An edited line breaks the chain.
    std::fs::write(
        &t,
        good.replacen("\"holder 41", "\"holder 42", 1)
            .replacen("sys/unseal", "sys/unseal2", 1),
    )
    .unwrap();
    c.run(&[
        "transcript",
        "verify",
        t.to_str().unwrap(),
        "--certs",
        &certs,
    ])
    .expect(3)
    .stderr_has("line 2");
}
