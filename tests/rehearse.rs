//! The main job: `custody rehearse` on a fresh machine after the set-up.

use custody_test_support as support;

use support::*;

#[test]
fn rehearse_proves_the_lifecycle_and_leaves_nothing_behind() {
    bao_bin();
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Custody::new(tmp.path());
    c.env
        .push(("TMPDIR".into(), tmp.path().display().to_string()));
    let r = c.run(&["--format", "json", "rehearse"]);
    if r.code() != 0 {
        // Keep the rehearsal's files and show the end of every server log, for a failure in CI.
        let kept = tmp.keep();
        for log in files_under(&kept)
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|n| n == "server.log"))
        {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!(
                "---- {} (last 40 lines) ----\n{}",
                log.display(),
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
        r.expect(0);
        unreachable!();
    }
    let j = r.json();
    assert_eq!(j["ok"], true);
    let steps: Vec<&str> = j["proofs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["step"].as_str().unwrap())
        .collect();
    for want in [
        "init (ceremony 1)",
        "unseal, fresh cluster",
        "remove bastion (ceremony 3)",
        "authority (ceremony 4)",
        "snapshot + green (ceremony 5, phase 1)",
        "cutover (phase 2)",
        "root revoked",
        "every use accounted for (reconcile)",
        "rotate shares (ceremony 6)",
        "adopt a cluster initialized by hand",
        "transcript signed",
        "restart + unseal one by one",
        "transcript verify",
    ] {
        assert!(
            steps.contains(&want),
            "rehearsal did not prove {want:?}: {steps:?}"
        );
    }
    assert_eq!(j["transcript_head"].as_str().unwrap().len(), 64);
    let accounted = j["proofs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["step"] == "every use accounted for (reconcile)")
        .map(|p| p["proved"].to_string())
        .unwrap_or_default();
    assert!(
        accounted.contains("nonces the Authority has on the chain were signed through the plugin"),
        "{accounted}"
    );
    // Its report in the current directory, and nothing else left on disk (its temporary
    // directory is gone) or running.
    let report = tmp.path().join("custody-rehearsal-report.html");
    assert_eq!(
        j["report"].as_str(),
        Some("custody-rehearsal-report.html"),
        "{j}"
    );
    let page = std::fs::read_to_string(&report).expect("the rehearsal writes its report");
    assert!(
        page.starts_with("<!DOCTYPE html>"),
        "{}",
        &page[..80.min(page.len())]
    );
    report_in_a_browser(&report, &j);
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "custody-rehearsal-report.html")
        .collect();
    assert!(left.is_empty(), "the rehearsal left {left:?} behind");
    let prefix = tmp.path().display().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline);
            assert!(
                !cmdline.contains(&prefix),
                "a process of the rehearsal still runs: {cmdline}"
            );
        }
    }
}

/// The rehearsal's report as a witness opens it in Chromium, with no network: the chain intact,
/// holders 1-3's signatures valid,
/// every ceremony script, the six holders (holder 6 came with the rotation), the Authority's
/// address as the rehearsal proved it; a silent console, a well-formed file, and a screenshot
/// kept in target/test-artifacts/rehearsal-report.png.
fn report_in_a_browser(report: &std::path::Path, j: &serde_json::Value) {
    use support::browser::{artifacts, assert_well_formed, render, screenshot};
    assert_well_formed(report);
    let page = render(report);
    assert!(
        page.console.is_empty(),
        "the browser's console complained:\n{}",
        page.console.join("\n")
    );
    assert_eq!(
        page.attr("id=\"verdict\"", "data-chain").as_deref(),
        Some("intact")
    );
    for ceremony in [
        "init",
        "unseal",
        "remove-bastion",
        "authority",
        "bind-authority",
        "snapshot",
        "blue-green-1",
        "blue-green-2",
        "rotate-shares",
    ] {
        assert!(
            page.dom.contains(&format!("data-ceremony=\"{ceremony}\"")),
            "the report's timeline has no {ceremony}"
        );
    }
    assert!(
        page.count("class=\"holder\"") >= 6,
        "the report names {} holders, not the six",
        page.count("class=\"holder\"")
    );
    let proved = j["proofs"].to_string();
    let at = proved
        .find("Authority 0x")
        .expect("the rehearsal names the Authority")
        + 10;
    let address = &proved[at..at + 42];
    assert_eq!(
        page.attr("id=\"authority\"", "data-address").as_deref(),
        Some(address)
    );
    screenshot(
        report,
        &artifacts().join("rehearsal-report.png"),
        1280,
        2400,
    );
}
