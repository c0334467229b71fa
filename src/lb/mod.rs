//! Load-balancer drivers for the blue-green cutover: HAProxy's runtime API, or an operator's
//! command for any other balancer.

pub mod exec;
pub mod haproxy;

use std::path::PathBuf;

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub enum Lb {
    Haproxy(haproxy::Haproxy),
    Exec(exec::ExecLb),
}

impl Lb {
    /// `haproxy:SOCKET` or `exec:COMMAND` (run through `/bin/sh -c` only with `shell`).
    pub fn parse(spec: &str, shell: bool) -> Result<Lb> {
        if let Some(socket) = spec.strip_prefix("haproxy:") {
            if socket.is_empty() {
                return Err(Error::usage(
                    "--lb haproxy:SOCKET needs the runtime API socket's path",
                ));
            }
            return Ok(Lb::Haproxy(haproxy::Haproxy::new(&PathBuf::from(socket))));
        }
        if let Some(cmd) = spec.strip_prefix("exec:") {
            if cmd.trim().is_empty() {
                return Err(Error::usage("--lb exec:COMMAND needs a command"));
            }
            return Ok(Lb::Exec(exec::ExecLb {
                command: cmd.to_owned(),
                shell,
            }));
        }
        Err(Error::usage(format!(
            "--lb {spec:?}: give haproxy:SOCKET or exec:COMMAND"
        )))
    }
}
