//! The restore test's server binary is pinned, and its throwaway server dies with custody: an
//! unknown `bao` refused with nothing started, the one named by `--bao-bin --bao-sha256` run,
//! a `tools/bin/bao` in the current directory never used; SIGINT and SIGTERM sent to a real
//! `custody snapshot verify --restore-test` mid-test kill the server and remove its directory;
//! after SIGKILL the server dies too and the next run removes the directory left.
//!
//! Every custody here gets a private TMPDIR, so its throwaway directories are the only ones
//! looked at (and no other test's are swept).

use custody_test_support as support;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::plugin::{install_authority, plugin_bin, plugin_cluster, sha256_file};
use support::*;

const PREFIX: &str = "custody-restore-test-";

#[test]
fn the_restore_tests_server_binary_is_pinned_and_dies_with_custody() {
    let u = init_and_unseal(
        plugin_cluster("pinned", 1),
        &["holder1", "holder3", "holder5", "operator"],
    );
    let as_root = u.custody.with_token_file(&u.root_file);
    let address = install_authority(&as_root, &u.dir().join("signer.wrap"));
    let snap = u.dir().join("blue.snap");
    as_root
        .run(&["snapshot", "save", "--out", snap.to_str().unwrap()])
        .expect(0);
    let t = Trial::new(&u, &snap);

    step_an_unknown_binary_refused_with_nothing_started(&t);
    step_interrupted(&t, libc::SIGINT, "SIGINT", Moment::Unsealed);
    step_interrupted(&t, libc::SIGTERM, "SIGTERM", Moment::Started);
    let left = step_killed_the_server_dies_too(&t);
    step_the_named_binary_runs_and_the_left_directory_is_removed(&t, &left, &address);
}

/// A restore test of `snap`, run from a directory holding a `tools/bin/bao` that would leave a
/// mark if it ever ran, with a private TMPDIR.
struct Trial {
    custody: Custody,
    args: Vec<String>,
    transcript: PathBuf,
    tmp: tempfile::TempDir,
    _cwd: tempfile::TempDir,
    mark: PathBuf,
    /// A copy of OpenBao 2.7.2 with one byte appended: a working binary custody does not know.
    other: PathBuf,
}

impl Trial {
    fn new(u: &Unsealed, snap: &Path) -> Trial {
        let cwd = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let mark = cwd.path().join("the-trap-ran");
        let trap = cwd.path().join("tools/bin/bao");
        std::fs::create_dir_all(trap.parent().unwrap()).unwrap();
        std::fs::write(
            &trap,
            format!("#!/bin/sh\ntouch {}\nexit 1\n", mark.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&trap, std::fs::Permissions::from_mode(0o755)).unwrap();
        let other = u.dir().join("other-bao");
        let mut bytes = std::fs::read(bao_bin()).unwrap();
        bytes.push(0);
        std::fs::write(&other, bytes).unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o755)).unwrap();
        let transcript = u.dir().join("custody-transcript.jsonl");
        let mut custody = Custody::new(cwd.path());
        custody.base.extend([
            "--transcript".into(),
            transcript.display().to_string(),
            "--token-file".into(),
            u.root_file.display().to_string(),
        ]);
        custody
            .env
            .push(("TMPDIR".into(), tmp.path().display().to_string()));
        let mut args: Vec<String> = [
            "--format",
            "json",
            "snapshot",
            "verify",
            snap.to_str().unwrap(),
            "--restore-test",
            "--plugin-bin",
            plugin_bin().to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec();
        args.extend(share_file_args(&u.out, &["holder1", "holder3", "holder5"]));
        Trial {
            custody,
            args,
            transcript,
            tmp,
            _cwd: cwd,
            mark,
            other,
        }
    }

    fn run(&self, extra: &[&str], env: &[(&str, &Path)]) -> Run {
        let mut c = Custody {
            cwd: self.custody.cwd.clone(),
            base: self.custody.base.clone(),
            env: self.custody.env.clone(),
        };
        for (k, v) in env {
            c.env.push((k.to_string(), v.display().to_string()));
        }
        let mut args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        args.extend(extra);
        c.run(&args)
    }

    fn spawn(&self) -> Child {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.custody
            .command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running custody")
    }

    /// The throwaway directories in the private TMPDIR.
    fn throwaways(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(PREFIX))
            })
            .collect()
    }

    fn transcript(&self) -> Vec<u8> {
        std::fs::read(&self.transcript).unwrap()
    }

    #[track_caller]
    fn trap_never_ran(&self) {
        assert!(
            !self.mark.exists(),
            "the tools/bin/bao of the current directory ran"
        );
    }
}

/// `CUSTODY_BAO_BIN` or `--bao-bin` naming a binary custody does not know, or `--bao-sha256`
/// that is not its sha256: exit 4 before any share is read, nothing made, nothing recorded.
fn step_an_unknown_binary_refused_with_nothing_started(t: &Trial) {
    let before = t.transcript();
    let sha = sha256_file(&t.other);
    let real = sha256_file(&bao_bin());
    let other = t.other.to_str().unwrap();
    let runs = [
        t.run(&[], &[("CUSTODY_BAO_BIN", &t.other)]),
        t.run(&["--bao-bin", other], &[]),
        t.run(&["--bao-bin", other, "--bao-sha256", &real], &[]),
    ];
    for r in &runs {
        r.expect(4)
            .stderr_has(&format!("has sha256 {sha}"))
            .stderr_has("refused; nothing was started");
        assert!(
            !r.stderr().contains("The throwaway server runs"),
            "{}",
            r.stderr()
        );
    }
    runs[0]
        .stderr_has("(CUSTODY_BAO_BIN)")
        .stderr_has("none custody knows (OpenBao 2.7.2 9c5f36287c673f38")
        .stderr_has("--bao-bin FILE --bao-sha256 HEX");
    runs[2].stderr_has(&format!("not the {real} that --bao-sha256 names"));
    t.run(&["--bao-sha256", &sha], &[])
        .expect(2)
        .stderr_has("--bao-bin");
    assert_eq!(t.throwaways(), Vec::<PathBuf>::new());
    assert_eq!(t.transcript(), before, "nothing recorded");
    t.trap_never_ran();
}

#[derive(Clone, Copy, Debug)]
enum Moment {
    /// The server process exists (custody is waiting for it to listen).
    Started,
    /// The throwaway server was initialized and unsealed: the snapshot is on its way in.
    Unsealed,
}

/// The running restore test's throwaway directory and its server's pid, once `moment` is
/// reached (the server's plugin children, when any, are found later by their parent).
fn wait_for(t: &Trial, custody: &mut Child, moment: Moment) -> (PathBuf, u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = custody.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = custody.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("custody ended ({status}) before {moment:?}:\n{err}");
        }
        // The server (`bao server`), not the `bao version` custody runs first.
        let bao = custody::localcluster::children_of(custody.id())
            .into_iter()
            .find(|p| comm(*p).as_deref() == Some("bao") && is_server(*p));
        if let (Some(pid), [dir]) = (bao, t.throwaways().as_slice()) {
            // The node's log, wherever the throwaway keeps it (`server/node1/` or `node1/`).
            let logs = [
                dir.join("server/node1/server.log"),
                dir.join("node1/server.log"),
            ];
            let reached = match moment {
                Moment::Started => true,
                Moment::Unsealed => logs.iter().any(|log| {
                    std::fs::read_to_string(log).is_ok_and(|l| l.contains("vault is unsealed"))
                }),
            };
            if reached {
                return (dir.clone(), pid);
            }
        }
        assert!(
            Instant::now() < deadline,
            "the restore test reached {moment:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_owned())
}

fn is_server(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.split(|b| *b == 0).nth(1) == Some(b"server".as_slice()))
}

/// Alive: there, and not a zombie waiting to be reaped.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .and_then(|i| s[i + 2..].split(' ').next().map(|st| st != "Z"))
        })
        .unwrap_or(false)
}

/// The live processes whose executable or working directory lies in `dir`: the throwaway's
/// copy of `bao` and the plugin copied into its plugin directory, or a server working there
/// (a removed file or directory still counts).
fn running_from(dir: &Path) -> Vec<u32> {
    let under = |p: u32, link: &str| {
        std::fs::read_link(format!("/proc/{p}/{link}")).is_ok_and(|e| e.starts_with(dir))
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| under(*p, "exe") || under(*p, "cwd"))
        .filter(|p| alive(*p))
        .collect()
}

/// Kills by pid whatever a failed step left running from a throwaway's directory.
struct Leftovers(PathBuf);

impl Drop for Leftovers {
    fn drop(&mut self) {
        for p in running_from(&self.0) {
            // SAFETY: kill(2) of a process this test's custody started from its directory.
            unsafe { libc::kill(p as i32, libc::SIGKILL) };
        }
    }
}

/// Nothing runs from `dir` any more, within a bound (a plugin notices its server is gone
/// within half a second).
#[track_caller]
fn wait_nothing_runs_from(dir: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = running_from(dir);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {left:?} still running");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `signal` sent to custody at `moment`: it exits 1 saying so, its server (and the plugin it
/// runs) dead, the directory gone, nothing recorded.
fn step_interrupted(t: &Trial, signal: i32, name: &str, moment: Moment) {
    let before = t.transcript();
    let mut custody = t.spawn();
    let (dir, bao) = wait_for(t, &mut custody, moment);
    let _left = Leftovers(dir.clone());
    // The server runs the checked copy in the throwaway's private directory.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", dir.display());
    assert_eq!(
        std::fs::read_link(format!("/proc/{bao}/exe")).unwrap(),
        dir.join("bin/bao")
    );
    // SAFETY: kill(2) of the custody this test started.
    unsafe { libc::kill(custody.id() as i32, signal) };
    let out = custody.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "after {name}:\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "interrupted by {name} during the restore test: the throwaway server was killed and \
             its directory {} removed; nothing was recorded",
            dir.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "server binary: {} (OpenBao 2.7.2, sha256 {}, a binary custody knows)",
            bao_bin().canonicalize().unwrap().display(),
            sha256_file(&bao_bin())
        )),
        "the known binary above custody is the default: {stderr}"
    );
    // custody waited for its server before it exited.
    assert!(
        !alive(bao),
        "the throwaway server outlived custody's {name}"
    );
    wait_nothing_runs_from(&dir, &format!("after {name}"));
    assert!(!dir.exists(), "{} is left after {name}", dir.display());
    assert_eq!(t.throwaways(), Vec::<PathBuf>::new());
    assert_eq!(t.transcript(), before, "nothing recorded");
    t.trap_never_ran();
}

/// SIGKILL of custody once its throwaway is unsealed: the server dies with it (and its plugin
/// after it); the directory stays for the next run. That directory.
fn step_killed_the_server_dies_too(t: &Trial) -> PathBuf {
    let mut custody = t.spawn();
    let (dir, bao) = wait_for(t, &mut custody, Moment::Unsealed);
    let _left = Leftovers(dir.clone());
    custody.kill().unwrap();
    custody.wait().unwrap();
    wait_nothing_runs_from(&dir, "after custody's SIGKILL");
    assert!(!alive(bao));
    assert!(dir.join("owner.lock").is_file(), "{}", dir.display());
    dir
}

/// `--bao-bin` with its `--bao-sha256`: the unknown binary runs, on purpose, and its path,
/// version and sha256 are printed and recorded; the run first removes what the killed one left.
fn step_the_named_binary_runs_and_the_left_directory_is_removed(
    t: &Trial,
    left: &Path,
    address: &str,
) {
    let sha = sha256_file(&t.other);
    let r = t.run(
        &["--bao-bin", t.other.to_str().unwrap(), "--bao-sha256", &sha],
        &[],
    );
    r.expect(0).stderr_has(&format!(
        "Removed {}, left by a restore test that was killed (custody pid ",
        left.display()
    ));
    assert!(!left.exists());
    assert_eq!(
        t.throwaways(),
        Vec::<PathBuf>::new(),
        "its own is removed too"
    );
    let path = t.other.canonicalize().unwrap().display().to_string();
    let server = serde_json::json!({
        "path": path, "version": "2.7.2", "sha256": sha, "pinned_by": "--bao-sha256"
    });
    let v = r.json();
    assert_eq!(v["verify"]["restore_test"]["address"], address);
    assert_eq!(v["verify"]["restore_test"]["server"], server);
    r.stderr_has(&format!(
        "server binary: {path} (OpenBao 2.7.2, sha256 {sha}, named by --bao-bin and --bao-sha256)"
    ));
    let (_, entries) = custody::transcript::read_verified(&t.transcript).unwrap();
    let last = entries.last().unwrap();
    assert_eq!(
        (&last["ceremony"], &last["step"]),
        (&"snapshot".into(), &"verify".into())
    );
    assert_eq!(last["facts"]["restore_test"]["server"], server);
    t.trap_never_ran();
}
