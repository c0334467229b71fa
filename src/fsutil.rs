//! Writing files that hold anything sensitive: created 0600, never overwritten unless asked,
//! synced to disk.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// Creates `path` with mode 0600 and writes `data`. Refuses an existing file unless `force`.
pub fn write_private(path: &Path, data: &[u8], force: bool) -> Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).mode(0o600);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut file = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::precondition(format!(
                "{} already exists; custody never overwrites it",
                path.display()
            ))
        } else {
            Error::failed(format!("creating {}: {e}", path.display()))
        }
    })?;
    file.write_all(data)
        .and_then(|_| file.sync_all())
        .map_err(|e| Error::failed(format!("writing {}: {e}", path.display())))?;
    if let Some(parent) = path.parent()
        && let Ok(dir) = std::fs::File::open(parent)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Refuses, before anything is done, an output file that already exists.
pub fn refuse_existing(path: &Path) -> Result<()> {
    if path.exists() {
        return Err(Error::precondition(format!(
            "{} already exists; custody never overwrites it",
            path.display()
        )));
    }
    Ok(())
}
