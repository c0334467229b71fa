//! Any other balancer: an operator's command, run with `CUSTODY_LB_ACTION` set to
//! `ready-green`, `drain-blue`, `maint-blue` or `rollback`; it must exit 0. Its words are run
//! directly (no shell) unless the operator asks for `/bin/sh -c`, in an environment that holds
//! nothing of custody's: no token reaches it.

use std::process::Command;

use crate::error::{Context, Error, Result};

/// The whole environment the command sees, besides `CUSTODY_LB_ACTION`.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone)]
pub struct ExecLb {
    pub command: String,
    /// Run through `/bin/sh -c` (--lb-shell).
    pub shell: bool,
}

impl ExecLb {
    /// The program and its arguments as they will run.
    pub fn argv(&self) -> Vec<String> {
        if self.shell {
            vec!["/bin/sh".into(), "-c".into(), self.command.clone()]
        } else {
            self.command.split_whitespace().map(str::to_owned).collect()
        }
    }

    pub fn run(&self, action: &str) -> Result<()> {
        let argv = self.argv();
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| Error::usage("--lb exec:COMMAND needs a command"))?;
        let status = Command::new(program)
            .args(args)
            .env_clear()
            .env("PATH", PATH)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_run_without_a_shell_and_see_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let script = dir.path().join("lb.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nenv > {}\necho \"$1\" >> {}\n",
                out.display(),
                out.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let lb = ExecLb {
            command: format!("{} ;echo", script.display()),
            shell: false,
        };
        lb.run("rollback").unwrap();
        let seen = std::fs::read_to_string(&out).unwrap();
        assert!(seen.contains("CUSTODY_LB_ACTION=rollback"), "{seen}");
        // Nothing of custody's environment (cargo sets CARGO_* and HOME for the test) is there.
        for name in ["CARGO", "HOME=", "VAULT_", "BAO_"] {
            assert!(!seen.contains(name), "{name} in {seen}");
        }
        // ";echo" reached the program as a word, not as a second command.
        assert!(seen.ends_with(";echo\n"), "{seen}");
        let shell = ExecLb {
            command: "exit 3".into(),
            shell: true,
        };
        assert!(
            shell
                .run("rollback")
                .unwrap_err()
                .message
                .contains("failed for rollback")
        );
        let direct = ExecLb {
            command: "exit 3".into(),
            shell: false,
        };
        assert!(
            direct
                .run("rollback")
                .unwrap_err()
                .message
                .contains("running the balancer command")
        );
    }
}
