//! Text a server sends is shown as data: OpenBao takes a `cluster_name` with a terminal escape
//! and a right-to-left override from its config and reports it in every seal status; custody
//! shows it escaped in its results, never obeyed, and keeps it exact in JSON.

use custody_test_support as support;

use support::*;

/// ESC [2J clears a terminal; U+202E shows what follows reversed. (The harness also names the
/// cluster's directory after it, so no line break: the config's paths must stay paths.)
const NAME: &str = "evil\u{1b}[2J\u{202e}eman";

#[test]
fn a_cluster_name_with_control_characters_is_shown_escaped() {
    let u = init_and_unseal(
        cluster(NAME, 1),
        &["holder1", "holder3", "holder5", "operator"],
    );
    let as_root = u.custody.with_token_file(&u.root_file);
    let status = as_root.run(&["--format", "json", "status"]);
    status.expect(0);
    assert_eq!(
        status.json()["nodes"][0]["cluster_name"],
        NAME,
        "the server sends the name with its control characters"
    );

    let snap = u.dir().join("named.snap");
    let saved = as_root.run(&["snapshot", "save", "--out", snap.to_str().unwrap()]);
    saved.expect(0);
    let out = saved.stdout();
    assert!(
        out.contains("Snapshot of evil\\u{1b}[2J\\u{202e}eman ("),
        "the name is shown escaped: {out}"
    );
    for text in [out, saved.stderr(), as_root.run(&["status"]).stdout()] {
        assert!(
            !text.contains('\u{1b}'),
            "a raw escape reached the terminal: {text:?}"
        );
        assert!(!text.contains('\u{202e}'), "{text:?}");
    }
}
