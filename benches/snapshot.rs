//! `custody snapshot save | verify` against the two-step way with the stock tools, on one
//! OpenBao in one run, at three data sizes.
//!
//!   scripts/bench            (runs this after the signing bench)
//!
//! Save: `custody snapshot save` (stream + sha256 + manifest) against `bao operator raft
//! snapshot save` followed by `sha256sum`. Verify: `custody snapshot verify` (gzip, tar, every
//! member's sha256, meta.json, the manifest) against `tar -xzf` + `sha256sum -c SHA256SUMS`.
//! Each is the median of three runs.

use custody_test_support as support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use support::plugin::init_plain_cluster;
use support::{ClusterSpec, bao_bin};

fn median(mut f: impl FnMut() -> Duration) -> Duration {
    let mut v: Vec<Duration> = (0..3).map(|_| f()).collect();
    v.sort();
    v[1]
}

fn timed(cmd: &mut Command) -> Duration {
    let t0 = Instant::now();
    let out = cmd.output().expect("running a command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t0.elapsed()
}

fn main() {
    let (cluster, token, _, api) =
        init_plain_cluster(ClusterSpec::raft("snapshot-bench", 1, bao_bin()));
    api.ok("POST", "sys/mounts/kv", Some(json!({ "type": "kv" })));
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let token_file = dir.join("token");
    std::fs::write(&token_file, &token).unwrap();
    let addr = cluster.nodes[0].addr().to_string();
    let ca = cluster.ca_cert.display().to_string();
    let custody = env!("CARGO_BIN_EXE_custody");
    let value = "x".repeat(480);

    println!(
        "custody snapshot vs bao + sha256sum, one OpenBao 2.7.2 (1-node Raft, TLS), median of 3, 2 cores"
    );
    println!(
        "{:>8} {:>10} {:>14} {:>14} {:>7} {:>14} {:>14} {:>7}",
        "entries",
        "MB",
        "custody save",
        "bao+sha256sum",
        "ratio",
        "custody verify",
        "tar+sha256 -c",
        "ratio"
    );
    let mut written = 0usize;
    for target in [1_000usize, 10_000, 100_000] {
        while written < target {
            let batch: Vec<_> = (written..(written + 256).min(target))
                .map(|i| {
                    (
                        "POST".to_owned(),
                        format!("kv/e{i}"),
                        Some(json!({ "v": value })),
                    )
                })
                .collect();
            written += batch.len();
            assert!(api.concurrent(batch).iter().all(|(s, _)| *s == 204));
        }
        let mut n = 0;
        let mut last = dir.join("x");
        let save = median(|| {
            n += 1;
            last = dir.join(format!("custody-{target}-{n}.snap"));
            timed(Command::new(custody).args([
                "--addr",
                &addr,
                "--ca-cert",
                &ca,
                "--token-file",
                token_file.to_str().unwrap(),
                "--transcript",
                dir.join("t.jsonl").to_str().unwrap(),
                "snapshot",
                "save",
                "--out",
                last.to_str().unwrap(),
            ]))
        });
        let mut m = 0;
        let base = median(|| {
            m += 1;
            let f = dir.join(format!("bao-{target}-{m}.snap"));
            let t0 = Instant::now();
            let out = Command::new(bao_bin())
                .args(["operator", "raft", "snapshot", "save", f.to_str().unwrap()])
                .env("BAO_ADDR", &addr)
                .env("BAO_CACERT", &ca)
                .env("BAO_TOKEN", &token)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "bao snapshot save: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            timed(Command::new("sha256sum").arg(&f));
            t0.elapsed()
        });
        let size_mb = std::fs::metadata(&last).unwrap().len() as f64 / 1e6;
        let verify = median(|| {
            timed(Command::new(custody).args([
                "--transcript",
                dir.join("t.jsonl").to_str().unwrap(),
                "snapshot",
                "verify",
                last.to_str().unwrap(),
            ]))
        });
        let check = median(|| {
            let x = tempfile::tempdir_in(dir).unwrap();
            let t0 = Instant::now();
            timed(
                Command::new("tar")
                    .arg("-xzf")
                    .arg(&last)
                    .arg("-C")
                    .arg(x.path()),
            );
            timed(
                Command::new("sha256sum")
                    .args(["--quiet", "-c", "SHA256SUMS"])
                    .current_dir(x.path()),
            );
            t0.elapsed()
        });
        let s = |d: Duration| format!("{:.3} s", d.as_secs_f64());
        println!(
            "{:>8} {:>10.1} {:>14} {:>14} {:>6.2}x {:>14} {:>14} {:>6.2}x",
            target,
            size_mb,
            s(save),
            s(base),
            save.as_secs_f64() / base.as_secs_f64(),
            s(verify),
            s(check),
            verify.as_secs_f64() / check.as_secs_f64()
        );
        for f in std::fs::read_dir(dir).unwrap().flatten() {
            let p = f.path();
            if p.extension().is_some_and(|e| e == "snap" || e == "json") && p != last {
                let _ = std::fs::remove_file(&p);
            }
        }
        let _ = Path::new(&last);
    }
    println!("targets: save ≤ 1.0x the two-step baseline; verify of a 50 MB snapshot under 0.5 s");
}
