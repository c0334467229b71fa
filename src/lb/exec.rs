//! Any other balancer: an operator's command, run with `CUSTODY_LB_ACTION` set to
//! `ready-green`, `drain-blue`, `maint-blue` or `rollback`; it must exit 0.

use std::process::Command;

use crate::error::{Context, Error, Result};

#[derive(Debug, Clone)]
pub struct ExecLb {
    pub command: String,
}

impl ExecLb {
    pub fn run(&self, action: &str) -> Result<()> {
        let status = Command::new("/bin/sh")
            .arg("-c")
            .arg(&self.command)
            .env("CUSTODY_LB_ACTION", action)
            .status()
            .context(format!("running the balancer command for {action}"))?;
        if !status.success() {
            return Err(Error::failed(format!(
                "the balancer command failed for {action} ({status})"
            )));
        }
        Ok(())
    }
}
