//! The transcript report as a witness opens it: headless Chromium renders the page from a real
//! cluster's transcript with no network; the verdict, the ceremonies and the holders are there,
//! the console is silent, the file is well-formed; a tampered copy's page says where it breaks;
//! a fact no checked holder signature covers is shown unsigned, one a signature covers signed.
//! (The rehearsal's own report is rendered and photographed in tests/rehearse.rs.)

use custody_test_support as support;

use std::path::Path;

use support::browser::{assert_well_formed, render};
use support::*;

#[test]
fn a_real_transcript_and_a_tampered_copy_render_with_their_verdicts() {
    support::browser::chromium();
    let u = init_and_unseal(
        cluster("report", 1),
        &["holder1", "holder3", "holder5", "operator"],
    );
    let dir = u.dir();
    let transcript = dir.join("custody-transcript.jsonl");

    let page = report_page(&u.custody, &transcript, &dir.join("intact.html"), 0);
    assert_eq!(
        page.attr("id=\"verdict\"", "data-chain").as_deref(),
        Some("intact")
    );
    for ceremony in ["init", "unseal"] {
        assert!(
            page.dom.contains(&format!("data-ceremony=\"{ceremony}\"")),
            "the timeline has no {ceremony}"
        );
    }
    for h in ["holder1", "holder2", "holder3", "holder4", "holder5"] {
        assert!(
            page.dom
                .contains(&format!("data-fingerprint=\"{}\"", fpr(h))),
            "{h} is not among the holders"
        );
    }

    // No --certs: no signature checked, so every fact is unsigned, none signed.
    assert_eq!(
        page.attr("id=\"coverage\"", "data-signed-lines").as_deref(),
        Some("0")
    );
    assert!(page.dom.contains("every fact below is unsigned"));
    assert!(!page.dom.contains("data-signed=\"true\""));
    assert_eq!(
        page.attr("class=\"check\"", "data-signed").as_deref(),
        Some("false")
    );

    let tampered = dir.join("tampered.jsonl");
    let mut lines: Vec<String> = std::fs::read_to_string(&transcript)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(lines.len() >= 2);
    let mut second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    second["actor"] = serde_json::json!("someone else");
    lines[1] = serde_json::to_string(&second).unwrap();
    std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    let page = report_page(&u.custody, &tampered, &dir.join("tampered.html"), 3);
    assert_eq!(
        page.attr("id=\"verdict\"", "data-chain").as_deref(),
        Some("broken")
    );
    assert_eq!(
        page.attr("id=\"verdict\"", "data-broken-line").as_deref(),
        Some("2")
    );
    assert!(
        page.dom.contains("broken at line 2"),
        "the verdict does not say where"
    );

    // Holder 1 signs; checked with the certificates, the lines before it are signed.
    u.custody
        .run(&[
            "transcript",
            "sign",
            "--secret-key",
            fixture("holder1.sec.asc").to_str().unwrap(),
        ])
        .expect(0);
    let out = dir.join("signed.html");
    let certs = fixtures().display().to_string();
    let args = ["--certs", certs.as_str()];
    let page = report_page_with(&u.custody, &transcript, &out, 0, &args);
    let signed: usize = page
        .attr("id=\"coverage\"", "data-signed-lines")
        .unwrap()
        .parse()
        .unwrap();
    assert!(signed >= 2, "{signed}");
    assert_eq!(
        page.attr("class=\"check\"", "data-signed").as_deref(),
        Some("true")
    );
    assert!(
        page.dom
            .contains(&format!("Lines 1 to {signed} are covered"))
    );
}

/// `transcript report` to `out` (exit `code`: 3 when the chain is broken, the page written all
/// the same), checked well-formed, rendered; its console must be silent.
fn report_page(c: &Custody, transcript: &Path, out: &Path, code: i32) -> support::browser::Page {
    report_page_with(c, transcript, out, code, &[])
}

/// [`report_page`] with more arguments (`--certs DIR`).
fn report_page_with(
    c: &Custody,
    transcript: &Path,
    out: &Path,
    code: i32,
    extra: &[&str],
) -> support::browser::Page {
    let mut args = vec![
        "transcript",
        "report",
        transcript.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    c.run(&args).expect(code);
    let html = std::fs::read_to_string(out).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("<script"), "the report carries a script");
    assert_well_formed(out);
    let page = render(out);
    assert!(
        page.console.is_empty(),
        "the browser's console complained:\n{}",
        page.console.join("\n")
    );
    page
}
