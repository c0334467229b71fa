//! Where a local server runs: the address it binds and announces, and the network namespace its
//! process enters before it runs anything (none: the caller's own, on loopback).

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

use crate::error::{Context, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// The address the server listens on and gives its peers and clients.
    pub ip: IpAddr,
    /// A named network namespace (`ip netns add NAME`, so `/run/netns/NAME`) the server runs in.
    pub netns: Option<String>,
}

impl Host {
    /// 127.0.0.1 in the caller's own network namespace: every server custody starts by default.
    pub fn loopback() -> Host {
        Host {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            netns: None,
        }
    }

    /// Makes `cmd` run in this host's namespace, if it has one: the namespace is opened now
    /// (so a missing one fails here, naming it) and entered by the child before exec.
    pub fn enter(&self, cmd: &mut Command) -> Result<()> {
        let Some(name) = &self.netns else {
            return Ok(());
        };
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let path = format!("/run/netns/{name}");
        let ns =
            std::fs::File::open(&path).context(format!("opening the network namespace {path}"))?;
        // SAFETY: the closure runs in the forked child before exec and calls only setns(2),
        // which is async-signal-safe; it allocates nothing and takes no lock. The file (opened
        // close-on-exec) lives in the closure, so its descriptor is valid in the child.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(())
    }
}
