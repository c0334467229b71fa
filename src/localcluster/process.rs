//! Starting and stopping server processes by pid: plugin children first, SIGTERM, then
//! SIGKILL after a bound.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Context, Result};

pub fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .context(format!("opening {}", log.display()))?;
    let err = out
        .try_clone()
        .context(format!("duplicating the handle of {}", log.display()))?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    cmd.spawn()
        .context(format!("starting {:?}", cmd.get_program()))
}

/// The child is killed (SIGKILL) by the kernel when the thread that spawns it ends, custody
/// killed by SIGKILL included (`prctl(PR_SET_PDEATHSIG)`, kept across the exec of a binary
/// that is not set-user-ID). A parent already gone by the time the child sets it (the
/// child then belongs to another) ends the child before it runs anything.
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and calls only prctl, getppid
    // and _exit, which are async-signal-safe; it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// The pids whose parent is `pid` (from /proc).
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| parent_of(*p) == Some(pid))
        .collect()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces; fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid we started; a pid that has exited yields ESRCH, ignored.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Stops `child`: its children (plugin processes) first, then the server with SIGTERM, and
/// SIGKILL for anything still alive after `bound`.
pub fn stop(child: &mut Child, bound: Duration) {
    let pid = child.id();
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let plugins = children_of(pid);
    for p in &plugins {
        signal(*p, libc::SIGTERM);
    }
    signal(pid, libc::SIGTERM);
    let deadline = Instant::now() + bound;
    loop {
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        if Instant::now() >= deadline {
            for p in children_of(pid) {
                signal(p, libc::SIGKILL);
            }
            signal(pid, libc::SIGKILL);
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for p in plugins {
        if std::path::Path::new(&format!("/proc/{p}")).exists() {
            signal(p, libc::SIGKILL);
        }
    }
}

/// Kills `child` and its children (plugin processes) at once with SIGKILL, and reaps it.
pub fn kill_now(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let pid = child.id();
    let plugins = children_of(pid);
    signal(pid, libc::SIGKILL);
    for p in plugins {
        signal(p, libc::SIGKILL);
    }
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_log_that_cannot_open_keeps_the_io_error() {
        let log = std::path::Path::new("/nonexistent/dir/server.log");
        let err = super::spawn_logged(&mut std::process::Command::new("true"), log).unwrap_err();
        assert_eq!(err.message, "opening /nonexistent/dir/server.log");
        let source = std::error::Error::source(&err).expect("the io error is kept");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
    }
}
