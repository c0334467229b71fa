//! The audit trail the Authority needs: `plugin install`, `wallet create` and `wallet bind`
//! refuse a cluster with no enabled audit device (unless the operator accepts it, recorded), and
//! record the devices; `status` compares a cluster's devices with what the transcript recorded.
//!
//! A line records each device's type, path and file path only: a device's other options may
//! hold a secret (an HTTP device's headers), and the stanza is the operator's to show.

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::vault::{Addr, AuditDevice, NodeError, Vault};

/// The flag that lets the Authority onto a cluster without an audit trail.
pub const ACCEPT_FLAG: &str = "--accept-no-audit";

/// An audit device as a transcript line records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedDevice {
    #[serde(rename = "type")]
    pub kind: String,
    pub path: String,
    pub file_path: Option<String>,
}

impl RecordedDevice {
    pub fn of(d: &AuditDevice) -> RecordedDevice {
        RecordedDevice {
            kind: d.kind.clone(),
            path: d.path.clone(),
            file_path: d.file_path().map(str::to_owned),
        }
    }

    fn from_fact(v: &Value) -> RecordedDevice {
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        RecordedDevice {
            kind: text("type"),
            path: text("path"),
            file_path: v["file_path"].as_str().map(str::to_owned),
        }
    }

    /// `file/ (file → audit.log)`, server text escaped.
    pub fn describe(&self) -> String {
        let target = match &self.file_path {
            Some(p) => format!(" → {}", crate::ui::escape(p)),
            None => String::new(),
        };
        format!(
            "{} ({}{target})",
            crate::ui::escape(&self.path),
            crate::ui::escape(&self.kind)
        )
    }
}

pub fn describe_all(devices: &[RecordedDevice]) -> String {
    if devices.is_empty() {
        return "none".to_owned();
    }
    devices
        .iter()
        .map(RecordedDevice::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a command found of the cluster's audit trail before it changed anything: the `audit`
/// fact of its transcript line.
#[derive(Debug, Clone, Serialize)]
pub struct AuditFact {
    /// The cluster as its active node names itself (`sys/seal-status`).
    pub cluster_id: String,
    /// The node the devices were read from.
    pub addr: String,
    pub devices: Vec<RecordedDevice>,
    /// The operator went on without an audit device (`--accept-no-audit`).
    pub accepted_no_audit: bool,
    /// Why the devices could not be read, when they could not (accepted only with the flag).
    pub unread: Option<String>,
}

impl AuditFact {
    pub fn json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The enabled audit devices of the cluster at `addr` (its active node), or the refusal
/// (exit 4) of a cluster without one: `what` is the command, which has changed nothing yet.
/// With `accept`, a cluster without a device (or whose devices cannot be read) is let through,
/// and the fact says so.
pub async fn require(vault: &Vault, addr: &Addr, what: &str, accept: bool) -> Result<AuditFact> {
    let cluster_id = vault
        .seal_status(addr)
        .await
        .map(|s| s.cluster_id)
        .unwrap_or_default();
    let mut fact = AuditFact {
        cluster_id,
        addr: addr.to_string(),
        devices: Vec::new(),
        accepted_no_audit: false,
        unread: None,
    };
    match vault.audit_devices(addr).await {
        Ok(devices) if !devices.is_empty() => {
            fact.devices = devices.iter().map(RecordedDevice::of).collect();
            Ok(fact)
        }
        Ok(_) if accept => {
            fact.accepted_no_audit = true;
            Ok(fact)
        }
        Ok(_) => Err(Error::precondition(format!(
            "{what}: the cluster at {addr} has no enabled audit device, so nothing would record \
             who signed what with the Authority; nothing was changed"
        ))
        .hint(stanza_hint())),
        Err(e) if accept => {
            fact.accepted_no_audit = true;
            fact.unread = Some(e.to_string());
            Ok(fact)
        }
        Err(e) => {
            let why = match &e {
                NodeError::Api { status: 403, .. } => {
                    " (reading sys/audit takes sudo: use the quorum's root token)"
                }
                _ => "",
            };
            Err(super::node_error(
                &format!("{what}: reading the cluster's audit devices{why}; nothing was changed"),
                e,
            )
            .hint(format!(
                "give {ACCEPT_FLAG} only to go on without knowing of an audit trail (recorded)"
            )))
        }
    }
}

fn stanza_hint() -> String {
    format!(
        "declare an audit device in every node's configuration, the same stanza on each (README, \
         \"The audit trail\"), restart the nodes and unseal them; or give {ACCEPT_FLAG} to go on \
         without one (recorded, and shown red in the report)"
    )
}

/// The devices a transcript line recorded for a cluster, and which line.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    /// 1-based.
    pub line: usize,
    pub step: String,
    pub devices: Vec<RecordedDevice>,
}

/// The newest line that records the audit devices of cluster `cluster_id` (the `audit` fact
/// `plugin install`, `wallet create` and `wallet bind` write).
pub fn recorded(entries: &[Value], cluster_id: &str) -> Option<Recorded> {
    entries.iter().enumerate().rev().find_map(|(i, e)| {
        let a = &e["facts"]["audit"];
        let devices = a["devices"].as_array()?;
        if cluster_id.is_empty() || a["cluster_id"].as_str() != Some(cluster_id) {
            return None;
        }
        Some(Recorded {
            line: i + 1,
            step: e["step"].as_str().unwrap_or_default().to_owned(),
            devices: devices.iter().map(RecordedDevice::from_fact).collect(),
        })
    })
}

/// How `now` differs from `then`: one phrase per device missing, added or changed; empty when
/// they are the same.
pub fn differences(then: &[RecordedDevice], now: &[RecordedDevice]) -> Vec<String> {
    let mut out = Vec::new();
    for t in then {
        match now.iter().find(|n| n.path == t.path) {
            None => out.push(format!("{} is gone", t.describe())),
            Some(n) if n != t => out.push(format!("{} is now {}", t.describe(), n.describe())),
            Some(_) => {}
        }
    }
    for n in now
        .iter()
        .filter(|n| !then.iter().any(|t| t.path == n.path))
    {
        out.push(format!("{} was not there", n.describe()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dev(path: &str, file: Option<&str>) -> RecordedDevice {
        RecordedDevice {
            kind: "file".into(),
            path: path.into(),
            file_path: file.map(str::to_owned),
        }
    }

    #[test]
    fn the_newest_line_of_the_cluster_is_the_record() {
        let line = |cluster: &str, path: &str| {
            json!({ "step": "wallet-create", "facts": { "audit": {
                "cluster_id": cluster,
                "devices": [{ "type": "file", "path": path, "file_path": "audit.log" }],
            } } })
        };
        let entries = vec![
            line("blue", "file/"),
            json!({ "step": "status", "facts": {} }),
            line("blue", "second/"),
            line("green", "other/"),
        ];
        let r = recorded(&entries, "blue").unwrap();
        assert_eq!((r.line, r.devices[0].path.as_str()), (3, "second/"));
        assert!(recorded(&entries, "red").is_none());
        assert!(recorded(&entries, "").is_none());
    }

    #[test]
    fn differences_name_each_device() {
        let then = [dev("file/", Some("audit.log")), dev("two/", Some("b.log"))];
        assert!(differences(&then, &then).is_empty());
        let now = [dev("file/", Some("node1.log")), dev("three/", None)];
        let d = differences(&then, &now);
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(
            d[0].contains("audit.log") && d[0].contains("node1.log"),
            "{d:?}"
        );
        assert!(
            d[1].starts_with("two/") && d[1].ends_with("is gone"),
            "{d:?}"
        );
        assert!(d[2].starts_with("three/"), "{d:?}");
    }
}
