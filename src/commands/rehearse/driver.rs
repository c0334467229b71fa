//! The ceremony subprocess driver: each ceremony script run as its own `custody ceremony run`
//! process, the way an operator runs it, with its output kept in a log.

use super::*;

/// The OpenBao the ceremonies' own throwaway servers run (the restore test): green's, the
/// version a snapshot is about to be restored into. Set once, when the rehearsal starts.
pub(super) static GREEN_BAO: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The global options of a ceremony run against `addrs`.
pub(super) fn ceremony_globals(
    addrs: &[crate::vault::Addr],
    ca: &Path,
    transcript: &Path,
) -> Vec<String> {
    crate::cli::GlobalArgs {
        addr: addrs.iter().map(ToString::to_string).collect(),
        ca_cert: Some(ca.to_owned()),
        format: crate::cli::Format::Text,
        transcript: transcript.to_owned(),
        yes: true,
        token_file: None,
    }
    .to_argv()
}

/// Runs `custody ceremony run NAME` as its own process, the way an operator does, in the
/// rehearsal's directory; `stdin` carries the holders' shares, from memory. Its output goes to
/// `ceremony-NAME.log` there. Returns the exit code.
pub(super) fn run_ceremony(
    dir: &Path,
    globals: &[String],
    name: &str,
    params: &[(&str, String)],
    stdin: Option<&[u8]>,
) -> Result<i32> {
    let mut child = spawn_ceremony(dir, globals, name, params, stdin)?;
    let status = child.wait().context(format!("ceremony {name}"))?;
    Ok(status.code().unwrap_or(1))
}

/// [`run_ceremony`], pulling the plug: SIGKILL the moment `transcript` records `step` of the
/// ceremony (before it can record the step in its state, when the kill lands first). Whether the
/// kill landed before the run ended by itself.
pub(super) fn run_ceremony_killed_after(
    dir: &Path,
    globals: &[String],
    name: &str,
    params: &[(&str, String)],
    transcript: &Path,
    step: &str,
) -> Result<bool> {
    let mut child = spawn_ceremony(dir, globals, name, params, None)?;
    let needle = format!("\"ceremony\":\"{name}\"");
    let step_needle = format!("\"step\":\"{step}\"");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child
            .try_wait()
            .context(format!("ceremony {name}"))?
            .is_some()
        {
            return Ok(false);
        }
        let text = std::fs::read_to_string(transcript).unwrap_or_default();
        if text
            .lines()
            .any(|l| l.contains(&needle) && l.contains(&step_needle))
        {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(true);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::failed(format!(
                "ceremony {name} never recorded step {step}"
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn spawn_ceremony(
    dir: &Path,
    globals: &[String],
    name: &str,
    params: &[(&str, String)],
    stdin: Option<&[u8]>,
) -> Result<std::process::Child> {
    let bao = GREEN_BAO.get().cloned().or_else(|| find_bao(None).ok());
    use std::io::Write as _;
    let exe = std::env::current_exe().context("finding custody itself")?;
    let log = dir.join(format!("ceremony-{name}.log"));
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .context(format!("opening {}", log.display()))?;
    let err = out
        .try_clone()
        .context(format!("{}: a second handle for stderr", log.display()))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.current_dir(dir).args(globals).args([
        "ceremony",
        "run",
        name,
        "--state",
        &format!("ceremony-{name}.state.json"),
    ]);
    if let Some(b) = bao {
        cmd.env("CUSTODY_BAO_BIN", b);
    }
    for (k, v) in params {
        cmd.arg("--param").arg(format!("{k}={v}"));
    }
    cmd.stdin(if stdin.is_some() {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    })
    .stdout(out)
    .stderr(err);
    let mut child = cmd.spawn().context(format!("starting ceremony {name}"))?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(data);
    }
    Ok(child)
}

pub(super) fn ceremony_failed(dir: &Path, name: &str, code: i32) -> Error {
    let log = std::fs::read_to_string(dir.join(format!("ceremony-{name}.log"))).unwrap_or_default();
    Error::failed(format!(
        "ceremony {name} exited {code}:\n{}",
        tail(&log, 30)
    ))
}

pub(super) fn expect_ceremony(
    dir: &Path,
    globals: &[String],
    name: &str,
    params: &[(&str, String)],
    stdin: Option<&[u8]>,
) -> Result<()> {
    match run_ceremony(dir, globals, name, params, stdin)? {
        0 => Ok(()),
        code => Err(ceremony_failed(dir, name, code)),
    }
}

/// The quorum's shares, one per line, in zeroizing memory (for a ceremony's stdin).
pub(super) fn share_lines(shares: &Shares) -> zeroize::Zeroizing<Vec<u8>> {
    let mut v = zeroize::Zeroizing::new(Vec::new());
    for s in &shares.shares {
        v.extend_from_slice(s.text.expose().as_bytes());
        v.push(b'\n');
    }
    v
}

/// Runs one custody command as its own process in the rehearsal's directory, its output in
/// `custody-LABEL.log`. The exit code, standard output, and both outputs.
pub(super) fn run_custody(
    dir: &Path,
    label: &str,
    args: &[String],
) -> Result<(i32, String, String)> {
    let exe = std::env::current_exe().context("finding custody itself")?;
    let bao = GREEN_BAO.get().cloned().or_else(|| find_bao(None).ok());
    let mut cmd = std::process::Command::new(exe);
    cmd.current_dir(dir).args(args);
    if let Some(b) = bao {
        cmd.env("CUSTODY_BAO_BIN", b);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .context(format!("running custody ({label})"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let both = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let log = dir.join(format!("custody-{label}.log"));
    std::fs::write(&log, &both).context(format!("writing {}", log.display()))?;
    Ok((out.status.code().unwrap_or(1), stdout, both))
}

/// `custody holders --format json` on `transcript`: its exit code and the fingerprints of the
/// holders it shows with a proof, in holder order.
pub(super) fn proven_holders(
    dir: &Path,
    label: &str,
    transcript: &Path,
) -> Result<(i32, Vec<String>)> {
    let args = [
        "--transcript",
        &transcript.display().to_string(),
        "--format",
        "json",
        "holders",
    ]
    .map(String::from);
    let (code, stdout, output) = run_custody(dir, label, &args)?;
    let report: serde_json::Value = serde_json::from_str(&stdout).map_err(|e| {
        Error::failed(format!(
            "custody holders exited {code}: {}",
            tail(&output, 20)
        ))
        .caused_by(e)
    })?;
    let proven = report["holders"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| !h["last_proof"].is_null())
        .filter_map(|h| h["fingerprint"].as_str().map(str::to_owned))
        .collect();
    Ok((code, proven))
}
