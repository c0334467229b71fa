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

impl ServerStat {
    /// HAProxy has settled on this server: up (or draining) with a passing check, or down; not
    /// in a transition ("UP 1/3", "DRAIN 2/3") nor still in its first check ("INI").
    pub fn classified(&self) -> bool {
        if self.status.contains('/') {
            return false;
        }
        let serving = self.status == "UP" || self.status == "DRAIN";
        (serving && self.check_status.starts_with("L7OK")) || self.status == "DOWN"
    }
}

/// The server lines of `backend` in `show stat`'s CSV; a line too short for a column gives an
/// empty field, never an index past its end.
fn parse_stat(text: &str, backend: &str) -> Result<BTreeMap<String, ServerStat>> {
    let mut lines = text.lines();
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .ok_or_else(|| Error::failed("HAProxy's `show stat` has no header"))?;
    let cols: Vec<&str> = header.split(',').collect();
    let col = |name: &str| cols.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(st), Some(scur)) =
        (col("pxname"), col("svname"), col("status"), col("scur"))
    else {
        return Err(Error::failed(
            "HAProxy's `show stat` lacks pxname/svname/status/scur",
        ));
    };
    let (chk, addr) = (col("check_status"), col("addr"));
    let mut out = BTreeMap::new();
    let mut backend_seen = false;
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let get = |i: Option<usize>| i.and_then(|i| f.get(i)).copied().unwrap_or_default();
        if get(Some(px)) != backend {
            continue;
        }
        backend_seen = true;
        let name = get(Some(sv));
        if name.is_empty() || name == "BACKEND" || name == "FRONTEND" {
            continue;
        }
        out.insert(
            name.to_owned(),
            ServerStat {
                name: name.to_owned(),
                status: get(Some(st)).to_owned(),
                sessions: get(Some(scur)).parse().unwrap_or(0),
                check_status: get(chk).to_owned(),
                addr: get(addr).to_owned(),
            },
        );
    }
    if !backend_seen {
        return Err(Error::precondition(format!(
            "HAProxy has no backend {:?}",
            crate::ui::escape(backend)
        )));
    }
    Ok(out)
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
        parse_stat(&text, backend)
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

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "# pxname,svname,qcur,scur,status,check_status,addr\n";

    #[test]
    fn short_and_foreign_lines_never_index_past_their_end() {
        let text = format!(
            "{HEAD}vault,g1,0,3,UP,L7OK,127.0.0.1:1\nvault,g2\nother,x,0,1,UP,L7OK,a\nvault,BACKEND,0,0,UP,,\n"
        );
        let servers = parse_stat(&text, "vault").unwrap();
        assert_eq!(servers["g1"].sessions, 3);
        assert_eq!(servers["g2"].status, "");
        assert!(!servers.contains_key("x"));
        assert!(parse_stat(&text, "none").is_err());
        assert!(parse_stat("garbage", "vault").is_err());
        assert!(parse_stat("# a,b\n", "vault").is_err());
    }

    #[test]
    fn a_server_is_classified_only_once_settled() {
        let s = |status: &str, check: &str| ServerStat {
            name: "g".into(),
            status: status.into(),
            sessions: 0,
            check_status: check.into(),
            addr: String::new(),
        };
        assert!(s("UP", "L7OK").classified());
        assert!(s("DRAIN", "L7OK").classified());
        assert!(s("DOWN", "L7STS").classified());
        assert!(!s("DRAIN 1/3", "INI").classified());
        assert!(!s("UP 2/3", "L7STS").classified());
        assert!(!s("DOWN 1/2", "L7OK").classified());
        assert!(!s("MAINT", "").classified());
        assert!(!s("UP", "L4CON").classified());
    }
}
