//! A private (0700) temporary directory that says whether its owner is alive: the owner holds
//! an exclusive `flock` on its `owner.lock` for as long as it runs, and the kernel drops that
//! lock when the owner dies however it dies (SIGKILL included). A later run removes the
//! directories whose owner is gone ([`sweep`]), never one a running owner holds.
//!
//! The lock file is made and locked under another name, then renamed to `owner.lock`: an
//! `owner.lock` that a sweep can lock is one whose owner has died, never one not yet locked.

use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Context, Result};

const LOCK: &str = "owner.lock";
/// A directory of the prefix without `owner.lock` (one a custody before the lock left) is
/// removed only when it is at least this old and no process works in it.
const UNLOCKED_GRACE: Duration = Duration::from_secs(120);

/// A directory `PREFIX*` in the temporary directory, removed (with everything in it) when
/// dropped or [`OwnedDir::remove`]d.
#[derive(Debug)]
pub struct OwnedDir {
    path: PathBuf,
    lock: Option<File>,
}

impl OwnedDir {
    pub fn create(prefix: &str) -> Result<OwnedDir> {
        use std::os::unix::fs::PermissionsExt;
        // 0700 from its creation (tempfile's default is 0777 less the umask).
        let t = tempfile::Builder::new()
            .prefix(prefix)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .context("making a temporary directory")?;
        let path = t.keep();
        let mut dir = OwnedDir { path, lock: None };
        let pending = dir.path.join(format!("{LOCK}.new"));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&pending)
            .context(format!("creating {}", pending.display()))?;
        if !try_lock(&file) {
            return Err(crate::error::Error::failed(format!(
                "{} is locked by another process",
                pending.display()
            )));
        }
        std::io::Write::write_all(&mut &file, format!("{}\n", std::process::id()).as_bytes())
            .context(format!("writing {}", pending.display()))?;
        std::fs::rename(&pending, dir.path.join(LOCK))
            .context(format!("renaming {}", pending.display()))?;
        dir.lock = Some(file);
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the directory (the lock is held until it is gone).
    pub fn remove(mut self) -> std::io::Result<()> {
        self.remove_now()
    }

    fn remove_now(&mut self) -> std::io::Result<()> {
        let r = match std::fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r,
        };
        self.lock = None;
        r
    }
}

impl Drop for OwnedDir {
    fn drop(&mut self) {
        if self.lock.is_some() {
            let _ = self.remove_now();
        }
    }
}

/// A directory a sweep removed, and why it was free to.
#[derive(Debug)]
pub struct Swept {
    pub path: PathBuf,
    /// The pid its owner wrote, when it had a lock file.
    pub owner: Option<u32>,
    /// The processes still working in it that were killed first.
    pub killed: Vec<u32>,
}

/// Removes every `PREFIX*` directory of this user in the temporary directory whose owner is
/// dead: its `owner.lock` lockable (first killing, SIGKILL, any process still working in it), or
/// no lock file, older than two minutes, and no process working in it. A directory a live owner
/// locks, a symlink, or another user's, is left. What was removed, and what could not be.
pub fn sweep(prefix: &str) -> (Vec<Swept>, Vec<(PathBuf, std::io::Error)>) {
    let (mut swept, mut failed) = (Vec::new(), Vec::new());
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return (swept, failed);
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(|n| n.starts_with(prefix)) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != me {
            continue;
        }
        let (owner, _held) = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path.join(LOCK))
        {
            Ok(f) => {
                if !try_lock(&f) {
                    continue;
                }
                let pid = std::fs::read_to_string(path.join(LOCK))
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
                (pid, Some(f))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let old = meta
                    .modified()
                    .ok()
                    .and_then(|m| SystemTime::now().duration_since(m).ok())
                    .is_some_and(|age| age >= UNLOCKED_GRACE);
                if !old || !working_in(&path).is_empty() {
                    continue;
                }
                (None, None)
            }
            Err(_) => continue,
        };
        let killed = working_in(&path);
        for pid in &killed {
            // SAFETY: kill(2) of a process of this user working in the dead owner's directory.
            unsafe {
                libc::kill(*pid as libc::pid_t, libc::SIGKILL);
            }
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => swept.push(Swept {
                path,
                owner,
                killed,
            }),
            Err(e) => failed.push((path, e)),
        }
    }
    (swept, failed)
}

/// An exclusive lock on `file`, without waiting.
fn try_lock(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor this function borrows for the call.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// The processes (readable by this user) whose working directory is `dir` or below it.
fn working_in(dir: &Path) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live owner's directory is left; a dead owner's (its lock released) is removed.
    #[test]
    fn only_a_dead_owners_directory_is_swept() {
        let prefix = format!("custody-owned-dir-test-{}-", std::process::id());
        let live = OwnedDir::create(&prefix).unwrap();
        let dead = OwnedDir::create(&prefix).unwrap();
        std::fs::write(dead.path().join("data"), b"x").unwrap();
        let dead_path = dead.path().to_owned();
        // As a killed owner leaves it: the directory stays, the lock goes.
        let mut dead = dead;
        dead.lock = None;
        std::mem::forget(dead);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(live.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let (swept, failed) = sweep(&prefix);
        assert!(failed.is_empty(), "{failed:?}");
        let paths: Vec<&Path> = swept.iter().map(|s| s.path.as_path()).collect();
        assert_eq!(paths, [dead_path.as_path()]);
        assert_eq!(swept[0].owner, Some(std::process::id()));
        assert!(!dead_path.exists());
        assert!(live.path().is_dir(), "a live owner's directory is kept");
        let live_path = live.path().to_owned();
        drop(live);
        assert!(!live_path.exists(), "the owner removes its own directory");
    }
}
