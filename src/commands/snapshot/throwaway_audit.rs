//! The audit stanzas of the restore test's throwaway server: the snapshot's own devices (from
//! its manifest), so that the restored server's post-unseal check of its configuration against
//! the restored devices passes; and only devices whose records stay in the throwaway's private
//! directory.
//!
//! A restored server opens every audit device its storage holds when it unseals (OpenBao
//! `setupAudits`; the file device creates its directories and appends to its `file_path`), on
//! this machine, whatever its configuration says. A relative `file_path` resolves in the
//! server's working directory, the throwaway's own; an absolute one is a file of this machine
//! (blue's own audit log, when the test runs on a blue host), a socket device's records go to
//! the source's collector, a syslog device's to this machine's syslog: the throwaway's records
//! would be mixed into a real audit trail. Those are refused before anything is started.

use std::path::{Component, Path};

use crate::error::{Error, Result};
use crate::flows::audit_devices::{listing, stanzas};
use crate::snapshot::Manifest;
use crate::ui::escape;
use crate::vault::AuditDevice;

/// The stanzas the throwaway declares: exactly the snapshot's devices. Refused (exit 4) when
/// the manifest does not record them, or one of them would write outside the throwaway.
pub(super) fn stanzas_for(manifest: &Manifest) -> Result<String> {
    let Some(devices) = &manifest.audit_devices else {
        return Err(Error::precondition(
            "the manifest does not record the snapshot's audit devices (saved by an older \
             custody, or by a token that could not read sys/audit): a restored server opens \
             every audit device in its storage on this machine, and custody cannot tell whether \
             one would append the throwaway's records to a real audit log here. Nothing was \
             started; save a new snapshot with a token that has sudo on sys/audit, or verify \
             this one without --restore-test",
        ));
    };
    let outside: Vec<String> = devices
        .iter()
        .filter_map(|d| outside_the_throwaway(d).map(|why| format!("{} {why}", escape(&d.path))))
        .collect();
    if !outside.is_empty() {
        return Err(Error::precondition(format!(
            "the restore test would write the throwaway server's audit records outside its \
             private directory: a restored server opens every audit device in its storage \
             (the snapshot's: {}), and {}. Those records would be mixed into a real audit \
             trail (on a blue host, blue's own). Nothing was started",
            listing(devices),
            outside.join("; ")
        ))
        .hint(
            "declare file devices with a relative file_path (it resolves in each server's \
             working directory, as custody's clusters do: file_path = \"audit.log\"), or \
             verify this snapshot without --restore-test",
        ));
    }
    Ok(stanzas(devices))
}

/// Why `d` would write outside the throwaway's directory, if it would.
fn outside_the_throwaway(d: &AuditDevice) -> Option<String> {
    match d.kind.as_str() {
        "file" => {
            let Some(path) = d.file_path() else {
                return Some("is a file device without a file_path".into());
            };
            if ["stdout", "discard"]
                .iter()
                .any(|s| path.eq_ignore_ascii_case(s))
                || path == "/dev/null"
            {
                return None;
            }
            let p = Path::new(path);
            if p.is_absolute() {
                return Some(format!("appends to {} on this machine", escape(path)));
            }
            if path.is_empty() || p.components().any(|c| c == Component::ParentDir) {
                return Some(format!(
                    "has the relative file_path {:?}, which climbs out of the server's \
                     directory",
                    escape(path)
                ));
            }
            None
        }
        "socket" => Some(format!(
            "sends its records to {} (the source's collector)",
            escape(
                d.options
                    .get("address")
                    .map_or("its address", String::as_str)
            )
        )),
        "syslog" => Some("writes to this machine's syslog".into()),
        other => Some(format!(
            "is of type {:?}, which custody does not know",
            escape(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(file_path: &str) -> AuditDevice {
        AuditDevice {
            path: "file/".into(),
            kind: "file".into(),
            description: String::new(),
            local: false,
            options: [("file_path".to_owned(), file_path.to_owned())].into(),
        }
    }

    #[test]
    fn only_devices_that_stay_in_the_throwaway_pass() {
        for ok in [
            "audit.log",
            "logs/audit.log",
            "stdout",
            "DISCARD",
            "/dev/null",
        ] {
            assert_eq!(outside_the_throwaway(&file(ok)), None, "{ok}");
        }
        for bad in [
            "/var/log/openbao/audit.log",
            "../audit.log",
            "a/../../b",
            "",
        ] {
            assert!(outside_the_throwaway(&file(bad)).is_some(), "{bad}");
        }
        let mut socket = file("x");
        socket.kind = "socket".into();
        socket
            .options
            .insert("address".into(), "10.0.0.5:9090".into());
        assert!(
            outside_the_throwaway(&socket)
                .unwrap()
                .contains("10.0.0.5:9090")
        );
    }
}
