//! The signer plugin is registered in the cluster by the sha256 of its binary, so a holder must be
//! able to rebuild it to the same bytes: the source tree is copied to two checkouts at different
//! paths and depths, each runs `scripts/release --plugin-only` with its own target directory (the
//! CARGO_HOME, with its registry sources, is shared: its path is remapped like the others), and
//! the two sha256s must be equal. Two release builds of the plugin: the slowest test of the suite.

use custody_test_support as support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Every file git knows in the working tree (tracked, or new and not ignored), copied to `to`
/// with its mode.
fn copy_tree(from: &Path, to: &Path) {
    let out = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(from)
        .output()
        .expect("git ls-files");
    assert!(out.status.success(), "git ls-files: {out:?}");
    let mut n = 0;
    for rel in out.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let rel = Path::new(std::str::from_utf8(rel).expect("a UTF-8 path"));
        let src = from.join(rel);
        if !src.is_file() {
            continue; // deleted in the working tree, or a submodule
        }
        let dst = to.join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        n += 1;
    }
    assert!(n > 100, "only {n} files copied from {}", from.display());
}

/// `scripts/release --plugin-only` in the checkout `dir`: the sha256 it wrote and its time.
fn release(dir: &Path) -> (String, Duration) {
    let start = Instant::now();
    let status = Command::new(dir.join("scripts/release"))
        .arg("--plugin-only")
        .current_dir(dir)
        .status()
        .expect("scripts/release");
    let took = start.elapsed();
    assert!(
        status.success(),
        "scripts/release in {}: {status}",
        dir.display()
    );
    let sums = dir.join("target/release-repro/SHA256SUMS");
    let text = std::fs::read_to_string(&sums).unwrap();
    let line = text
        .lines()
        .find(|l| l.ends_with("  custody-signer"))
        .unwrap_or_else(|| panic!("no custody-signer line in {}:\n{text}", sums.display()));
    (line[..64].to_owned(), took)
}

#[test]
fn the_plugin_builds_to_the_same_bytes_from_two_checkouts() {
    let tmp = tempfile::Builder::new()
        .prefix("custody-repro-")
        .tempdir()
        .unwrap();
    let a: PathBuf = tmp.path().join("a/custody");
    let b: PathBuf = tmp
        .path()
        .join("second/checkout/at/another/depth/custody-src");
    let root = support::root();
    copy_tree(&root, &a);
    copy_tree(&root, &b);

    let (sha_a, took_a) = release(&a);
    let (sha_b, took_b) = release(&b);
    eprintln!(
        "custody-signer {sha_a} from {} in {took_a:.0?}",
        a.display()
    );
    eprintln!(
        "custody-signer {sha_b} from {} in {took_b:.0?}",
        b.display()
    );
    if sha_a != sha_b {
        let kept = tmp.keep();
        panic!(
            "the two builds differ: {sha_a} != {sha_b}; both checkouts are kept under {} \
             (compare target/release-repro/custody-signer with diffoscope)",
            kept.display()
        );
    }
}
