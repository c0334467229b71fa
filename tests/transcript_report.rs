//! `transcript report` and `transcript show` over a transcript real custody commands wrote:
//! the page's contract (ids and data attributes a browser test reads), a tampered line named,
//! an existing --out left alone, holders' signatures checked with --certs.

use custody_test_support as support;

use serde_json::{Value, json};

use custody::transcript::{Step, Transcript};
use support::*;

const CONTRACT: [&str; 9] = [
    "<!DOCTYPE html>",
    "<html lang=\"en\">",
    "<meta charset=\"utf-8\" />",
    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src &#39;none&#39;; style-src &#39;unsafe-inline&#39;; img-src data:\" />",
    "<table id=\"signatures\">",
    "<section id=\"timeline\">",
    "<table id=\"holders\">",
    "<section id=\"checks\">",
    "<table id=\"quorum\">",
];

fn report(c: &Custody, transcript: &std::path::Path, out: &std::path::Path, certs: bool) -> Run {
    let fixtures = fixtures().display().to_string();
    let mut args = vec![
        "transcript",
        "report",
        transcript.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    if certs {
        args.extend(["--certs", &fixtures]);
    }
    c.run(&args)
}

#[test]
fn the_report_shows_the_verdict_the_ceremonies_and_the_signatures() {
    let u = init_and_unseal(
        cluster("report", 1),
        &["holder1", "holder3", "holder5", "operator"],
    );
    let t = u.dir().join("custody-transcript.jsonl");
    let c = &u.custody;

    let out = u.dir().join("report.html");
    report(c, &t, &out, false)
        .expect(0)
        .stdout_has("chain intact");
    let page = std::fs::read_to_string(&out).unwrap();
    for want in CONTRACT {
        assert!(page.contains(want), "the page lacks {want}");
    }
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(!page.to_ascii_lowercase().contains("<script"));
    assert!(page.contains("<section id=\"verdict\" data-chain=\"intact\">"));
    assert!(page.contains("<section id=\"unsigned\" data-count=\""));
    assert!(page.contains("<section id=\"authority\" data-address=\""));
    assert!(page.contains("<section id=\"nonces\">"));
    assert!(page.contains("no nonce history in this transcript"));
    for ceremony in ["init", "unseal"] {
        assert!(
            page.contains(&format!(
                "<article class=\"ceremony\" data-ceremony=\"{ceremony}\""
            )),
            "no {ceremony} run"
        );
    }
    for h in ["holder1", "holder2", "holder3", "holder4", "holder5"] {
        assert!(
            page.contains(&format!(
                "<tr class=\"holder\" data-fingerprint=\"{}\">",
                fpr(h)
            )),
            "{h} is not in the holders table"
        );
    }
    assert!(page.contains("<tr class=\"check\" data-ok=\"true\""));

    // An existing --out is refused and left as it was.
    std::fs::write(&out, "mine").unwrap();
    report(c, &t, &out, false)
        .expect(4)
        .stderr_has("already exists");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "mine");

    // transcript show: text, and the model in JSON.
    c.run(&["transcript", "show", t.to_str().unwrap()])
        .expect(0)
        .stdout_has("hash chain intact")
        .stdout_has("command init lines 1-1");
    let r = c.run(&[
        "--format",
        "json",
        "transcript",
        "show",
        t.to_str().unwrap(),
    ]);
    r.expect(0);
    let j = r.json();
    assert_eq!(j["broken"], Value::Null);
    assert_eq!(j["runs"][0]["ceremony"], "init");
    assert_eq!(j["quorum"][0]["set"]["threshold"], 3);

    // One fact changed in line 2: the chain breaks there; the rest is shown untrusted.
    let tampered = u.dir().join("tampered.jsonl");
    let text = std::fs::read_to_string(&t).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    assert!(lines.len() >= 2, "{text}");
    let mut line2: Value = serde_json::from_str(&lines[1]).unwrap();
    let facts = line2["facts"].as_object_mut().unwrap();
    let key = facts.keys().next().unwrap().clone();
    facts.insert(key, Value::String("tampered".into()));
    lines[1] = serde_json::to_string(&line2).unwrap();
    std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    let broken = u.dir().join("broken.html");
    report(c, &tampered, &broken, false)
        .expect(3)
        .stderr_has("line 2");
    let page = std::fs::read_to_string(&broken).unwrap();
    assert!(
        page.contains("<section id=\"verdict\" data-chain=\"broken\" data-broken-line=\"2\">"),
        "{}",
        &page[..page.len().min(3000)]
    );
    assert!(page.contains("broken at line 2"));
    assert!(page.contains("data-trusted=\"false\""));
    let r = c.run(&[
        "--format",
        "json",
        "transcript",
        "show",
        tampered.to_str().unwrap(),
    ]);
    r.expect(3);
    assert_eq!(r.json()["broken"]["line"], 2);

    // A holder signs; with --certs the signature is valid, without it unchecked.
    c.run(&[
        "transcript",
        "sign",
        "--secret-key",
        fixture("holder1.sec.asc").to_str().unwrap(),
    ])
    .expect(0);
    let signed = u.dir().join("signed.html");
    report(c, &t, &signed, true).expect(0);
    let page = std::fs::read_to_string(&signed).unwrap();
    let row = format!(
        "<tr class=\"signature\" data-signer=\"{}\" data-valid=\"true\"",
        fpr("holder1")
    );
    assert!(page.contains(&row), "{page}");
    assert!(page.contains("<section id=\"unsigned\" data-count=\"0\">"));
    let unchecked = u.dir().join("unchecked.html");
    report(c, &t, &unchecked, false).expect(0);
    let page = std::fs::read_to_string(&unchecked).unwrap();
    assert!(page.contains("data-valid=\"unchecked\""));

    // Unsigned facts are marked so. Without --certs no signature is checked: nothing is
    // shown signed.
    assert!(!page.contains("data-signed=\"true\""), "{page}");
    assert!(page.contains("<p id=\"coverage\" data-signed-lines=\"0\""));
    assert!(page.contains("every fact below is unsigned"));
    let j = show(c, &t, false);
    assert_eq!(j["signed_lines"], 0);
    assert!(every(&j["checks"], |c| c["signed"] == false));
    assert!(every(&j["runs"], |r| r["signed"] == false));
    assert!(every(&j["quorum"], |q| q["signed"] == false));
    c.run(&["transcript", "show", t.to_str().unwrap()])
        .expect(0)
        .stdout_has("signatures not checked (no --certs): every fact below is unsigned")
        .stdout_has("command init lines 1-1")
        .stdout_has("[unsigned]");
    // With them, holder 1's signature covers every line before it.
    let j = show(c, &t, true);
    let sig_line = j["signatures"][0]["line"].as_u64().unwrap();
    assert_eq!(j["signed_lines"], sig_line - 1);
    assert!(!j["checks"].as_array().unwrap().is_empty());
    assert!(every(&j["checks"], |c| c["signed"] == true));
    assert!(every(&j["quorum"], |q| q["signed"] == true));
    assert_eq!(j["runs"][0]["signed"], true);
    assert!(every(&j["runs"][0]["steps"], |s| s["signed"] == true));

    // A line after the signature, which no one signed: an Authority "created".
    let address = "0x00000000000000000000000000000000000000aa";
    Transcript::at(&t)
        .append(Step::new(
            "configure",
            "wallet-create",
            "operator",
            json!({"account": "authority", "address": address, "plugin_sha256": "ab"}),
        ))
        .unwrap();
    let later = u.dir().join("later.html");
    report(c, &t, &later, true).expect(0);
    let page = std::fs::read_to_string(&later).unwrap();
    let n = sig_line + 1;
    for want in [
        format!("<section id=\"authority\" data-address=\"{address}\" data-signed=\"false\">"),
        "(unsigned: no holder&#39;s good signature covers the line it is taken from)".to_owned(),
        format!(
            "<tr class=\"check\" data-ok=\"true\" data-line=\"{n}\" data-trusted=\"true\" \
             data-signed=\"false\">"
        ),
        "data-line=\"1\" data-trusted=\"true\" data-signed=\"true\"".to_owned(),
        format!(
            "<tr class=\"sighting\" data-line=\"{n}\" data-same=\"true\" data-trusted=\"true\" data-signed=\"false\">"
        ),
        format!("Unsigned: no holder&#39;s signature that checks out covers lines {n}–{n}."),
    ] {
        assert!(page.contains(&want), "the page lacks {want}");
    }
    let j = show(c, &t, true);
    assert_eq!(j["authority"], address);
    assert_eq!(j["authority_signed"], false);
    let last = j["checks"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["line"].as_u64(), &last["signed"]),
        (Some(n), &json!(false))
    );
    c.run(&[
        "transcript",
        "show",
        t.to_str().unwrap(),
        "--certs",
        fixtures().to_str().unwrap(),
    ])
    .expect(0)
    .stdout_has(&format!("lines 1 to {} are signed", sig_line - 1))
    .stdout_has(&format!("Authority {address} (unsigned)"))
    .stdout_has(&format!("command configure lines {n}-{n}"))
    .stdout_has("[signed]");
}

/// `transcript show --format json`, with or without the fixture certificates.
fn show(c: &Custody, t: &std::path::Path, certs: bool) -> Value {
    let fixtures = fixtures().display().to_string();
    let mut args = vec![
        "--format",
        "json",
        "transcript",
        "show",
        t.to_str().unwrap(),
    ];
    if certs {
        args.extend(["--certs", &fixtures]);
    }
    let r = c.run(&args);
    r.expect(0);
    r.json()
}

fn every(v: &Value, f: impl Fn(&Value) -> bool) -> bool {
    v.as_array().unwrap().iter().all(f)
}
