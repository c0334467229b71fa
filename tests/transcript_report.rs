//! `transcript report` and `transcript show` over a transcript real custody commands wrote:
//! the page's contract (ids and data attributes a browser test reads), a tampered line named,
//! an existing --out left alone, holders' signatures checked with --certs.

use custody_test_support as support;

use serde_json::Value;
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
    assert!(
        std::fs::read_to_string(&unchecked)
            .unwrap()
            .contains("data-valid=\"unchecked\"")
    );
}
