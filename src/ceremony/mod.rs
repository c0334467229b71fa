//! Scripted ceremonies: the scripts shipped in `ceremonies/`, their checks, and the state that
//! lets a run resume at its first unfinished step.

pub mod actions;
pub mod script;

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Context as _, Error, Kind, Result};

/// The shipped ceremonies, compiled in so the binary carries them anywhere.
pub const BUILTIN: &[(&str, &str)] = &[
    ("init", include_str!("../../ceremonies/init.toml")),
    ("unseal", include_str!("../../ceremonies/unseal.toml")),
    ("adopt", include_str!("../../ceremonies/adopt.toml")),
    (
        "remove-bastion",
        include_str!("../../ceremonies/remove-bastion.toml"),
    ),
    ("authority", include_str!("../../ceremonies/authority.toml")),
    (
        "bind-authority",
        include_str!("../../ceremonies/bind-authority.toml"),
    ),
    ("snapshot", include_str!("../../ceremonies/snapshot.toml")),
    (
        "blue-green-1",
        include_str!("../../ceremonies/blue-green-1.toml"),
    ),
    (
        "blue-green-2",
        include_str!("../../ceremonies/blue-green-2.toml"),
    ),
    (
        "rotate-shares",
        include_str!("../../ceremonies/rotate-shares.toml"),
    ),
];

/// A built-in name, or a path to a script file.
pub fn load(name: &str) -> Result<(String, script::Checked)> {
    if let Some((n, src)) = BUILTIN.iter().find(|(n, _)| *n == name) {
        return Ok((
            n.to_string(),
            script::parse(&format!("ceremonies/{n}.toml"), src)?,
        ));
    }
    let path = Path::new(name);
    if path.is_file() {
        let src = std::fs::read_to_string(path)
            .with_kind(Kind::Usage, format!("reading the ceremony script {name}"))?;
        return Ok((name.to_owned(), script::parse(name, &src)?));
    }
    Err(Error::usage(format!(
        "no ceremony {name:?}: give one of {} or a script file",
        BUILTIN
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// What a run has finished, kept beside the transcript so an interruption loses nothing.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RunState {
    pub ceremony: String,
    pub script_sha256: String,
    /// The sha256 of the run's parameter values (see [`params_sha256`]): a state resumes only
    /// the run it was made for.
    #[serde(default)]
    pub params_sha256: String,
    /// How many lines the transcript had when the run began: the lines from there on are this
    /// run's record.
    #[serde(default)]
    pub transcript_from: u64,
    pub done: BTreeSet<String>,
}

/// The sha256 of the parameter values (name → value, canonical JSON).
pub fn params_sha256(values: &std::collections::BTreeMap<String, String>) -> String {
    crate::digest::sha256_hex(&serde_json::to_vec(values).unwrap_or_default())
}

pub fn read_state(path: &Path) -> Result<Option<RunState>> {
    if !path.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(path).context(format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .context(format!("{}: not a ceremony state", path.display()))
}

/// Written whole to a new temporary file (0600, created exclusively), synced, then renamed: a
/// crash leaves the old or the new.
pub fn write_state(path: &Path, state: &RunState) -> Result<()> {
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    let bytes = serde_json::to_vec_pretty(state).with_kind(
        crate::error::Kind::Internal,
        "serializing the ceremony's progress",
    )?;
    crate::fsutil::write_private(&tmp, &bytes, false)?;
    std::fs::rename(&tmp, path).context(format!("renaming {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_damaged_state_file_keeps_the_parser_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.state.json");
        std::fs::write(&path, "{").unwrap();
        let err = super::read_state(&path).unwrap_err();
        assert_eq!(
            err.message,
            format!("{}: not a ceremony state", path.display())
        );
        assert_eq!(err.causes().count(), 1);
    }
}
