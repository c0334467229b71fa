//! Running `ip` and `nft` (iproute2, nftables): found or failed with an install hint, never
//! skipped; each failure says which command and what it printed.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// `ip` from iproute2; a test fails with the install hint when it is missing.
pub fn ip() -> PathBuf {
    tool("ip", "install Debian's iproute2")
}

/// `nft` from nftables; a test fails with the install hint when it is missing.
pub fn nft() -> PathBuf {
    tool(
        "nft",
        "run scripts/setup (it installs Debian's nftables), or apt-get install nftables",
    )
}

fn tool(name: &str, hint: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    // Root's tools live in sbin, which a test's PATH may lack.
    dirs.extend(["/usr/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("the network-fault harness needs `{name}`, which is not installed: {hint}")
        })
}

/// Runs `program args`, feeding `stdin`; its stdout, or what failed.
pub fn run(program: &PathBuf, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let shown = format!(
        "{} {}",
        program.file_name().unwrap_or_default().to_string_lossy(),
        args.join(" ")
    );
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{shown}: {e}"))?;
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("a piped stdin");
        pipe.write_all(text.as_bytes())
            .map_err(|e| format!("{shown}: writing its input: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{shown}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{shown}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip args`.
pub fn ip_run(args: &[&str]) -> Result<String, String> {
    run(&ip(), args, None)
}

/// `nft -f -` with `script`, inside the network namespace `netns`.
pub fn nft_in(netns: &str, script: &str) -> Result<String, String> {
    let nft = nft();
    let nft = nft.to_string_lossy();
    run(
        &ip(),
        &["netns", "exec", netns, &nft, "-f", "-"],
        Some(script),
    )
}

/// `nft args` inside the network namespace `netns`.
pub fn nft_args_in(netns: &str, args: &[&str]) -> Result<String, String> {
    let nft = nft();
    let nft = nft.to_string_lossy();
    let mut all = vec!["netns", "exec", netns, &nft];
    all.extend_from_slice(args);
    run(&ip(), &all, None)
}
