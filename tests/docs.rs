//! The man pages in man/ are the ones the clap definition makes today; completions exist for
//! every shell.

use custody_test_support as support;

use support::*;

#[test]
fn man_pages_match_the_cli() {
    let dir = root().join("man");
    let pages = custody::commands::man::man_pages().unwrap();
    let mut stale = Vec::new();
    for (name, text) in &pages {
        match std::fs::read(dir.join(name)) {
            Ok(on_disk) if on_disk == *text => {}
            Ok(_) => stale.push(format!("{name} differs")),
            Err(_) => stale.push(format!("{name} is missing")),
        }
    }
    let expected: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !expected.contains(&name.as_str()) {
            stale.push(format!("{name} has no command any more"));
        }
    }
    assert!(
        stale.is_empty(),
        "man/ is stale ({}): run `cargo run -- man --out man`",
        stale.join(", ")
    );
    assert!(expected.contains(&"custody.1") && expected.contains(&"custody-root-generate.1"));
}

#[test]
fn completions_for_every_shell() {
    let dir = tempfile::tempdir().unwrap();
    let c = Custody::new(dir.path());
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let r = c.run(&["completions", shell]);
        r.expect(0);
        assert!(r.stdout().contains("custody"), "{shell}");
    }
    c.run(&["completions", "tcsh"]).expect(2);
}
