//! Writing the report file: created exclusively (`transcript report --out`), or replaced
//! atomically (the rehearsal's own report: a temporary file beside it, renamed over it).

use std::io::Write;
use std::path::Path;

use crate::error::{Context as _, Error, Result};

/// Creates `path` with `text`; refuses (precondition) when it exists.
pub fn write_new(path: &Path, text: &str) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::precondition(format!(
                    "{} already exists; custody never overwrites it",
                    path.display()
                ))
                .hint("give --out a new file name")
            } else {
                Error::failed(format!("creating {}", path.display())).caused_by(e)
            }
        })?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.sync_all())
        .context(format!("writing {}", path.display()))
}

/// Writes `text` to `path`, replacing any file there in one rename.
pub fn replace(path: &Path, text: &str) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".custody-report-")
        .tempfile_in(dir)
        .context(format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(text.as_bytes())
        .and_then(|_| tmp.as_file().sync_all())
        .context(format!("writing the report for {}", path.display()))?;
    tmp.persist(path).map_err(|e| {
        Error::failed(format!("renaming the report to {}", path.display())).caused_by(e.error)
    })?;
    Ok(())
}
