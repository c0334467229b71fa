//! HAProxy's runtime API over its admin socket: server states and sessions, and
//! `set server BACKEND/SERVER state ready|drain|maint`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Haproxy {
    pub socket: PathBuf,
}

/// One server line of `show stat`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServerStat {
    pub name: String,
    /// UP, DOWN, MAINT, DRAIN, NOLB, "no check"…
    pub status: String,
    /// Current sessions.
    pub sessions: u64,
    pub check_status: String,
    pub addr: String,
}

impl Haproxy {
    pub fn new(socket: &Path) -> Haproxy {
        Haproxy {
            socket: socket.to_owned(),
        }
    }

    /// One command, its whole answer (the socket closes after each command).
    pub fn command(&self, cmd: &str) -> Result<String> {
        let unreachable = |e: std::io::Error| {
            Error::precondition(format!(
                "HAProxy's runtime API at {} does not answer",
                self.socket.display()
            ))
            .caused_by(e)
        };
        let mut s = UnixStream::connect(&self.socket).map_err(unreachable)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(unreachable)?;
        s.write_all(format!("{cmd}\n").as_bytes())
            .map_err(unreachable)?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(unreachable)?;
        Ok(out)
    }

    /// The servers of `backend`, by name.
    pub fn servers(&self, backend: &str) -> Result<BTreeMap<String, ServerStat>> {
        let text = self.command("show stat")?;
        let mut lines = text.lines();
        let header = lines
            .next()
            .and_then(|h| h.strip_prefix("# "))
            .ok_or_else(|| Error::failed("HAProxy's `show stat` has no header"))?;
        let cols: Vec<&str> = header.split(',').collect();
        let col = |name: &str| cols.iter().position(|c| *c == name);
        let (px, sv, st, scur, chk, addr) = (
            col("pxname"),
            col("svname"),
            col("status"),
            col("scur"),
            col("check_status"),
            col("addr"),
        );
        let (Some(px), Some(sv), Some(st), Some(scur)) = (px, sv, st, scur) else {
            return Err(Error::failed(
                "HAProxy's `show stat` lacks pxname/svname/status/scur",
            ));
        };
        let mut out = BTreeMap::new();
        for line in lines {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() <= scur.max(st)
                || f[px] != backend
                || f[sv] == "BACKEND"
                || f[sv] == "FRONTEND"
            {
                continue;
            }
            let get = |i: Option<usize>| {
                i.and_then(|i| f.get(i))
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            };
            out.insert(
                f[sv].to_owned(),
                ServerStat {
                    name: f[sv].to_owned(),
                    status: f[st].to_owned(),
                    sessions: f[scur].parse().unwrap_or(0),
                    check_status: get(chk),
                    addr: get(addr),
                },
            );
        }
        if out.is_empty() && !text.lines().any(|l| l.starts_with(&format!("{backend},"))) {
            return Err(Error::precondition(format!(
                "HAProxy has no backend {backend:?}"
            )));
        }
        Ok(out)
    }

    pub fn set_state(&self, backend: &str, server: &str, state: &str) -> Result<()> {
        let answer = self.command(&format!("set server {backend}/{server} state {state}"))?;
        if !answer.trim().is_empty() {
            return Err(Error::failed(format!(
                "HAProxy refused `set server {backend}/{server} state {state}`: {}",
                answer.trim()
            )));
        }
        Ok(())
    }
}
