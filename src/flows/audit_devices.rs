//! Blue's audit devices against another cluster's: what `snapshot restore` and the cutover's
//! pre-flight check, and the configuration stanza a node must declare for each device.
//!
//! OpenBao (internal/vault/audit.go `handleAuditLogSetup`) compares, on the active node after
//! every unseal, each device its configuration declares with the device at the same path in
//! storage: type, description, local and every option must be equal, or the post-unseal setup
//! fails ("modifications to audit devices are not allowed") and the node never becomes active.
//! A device in storage that the configuration does not declare is disabled, silently. A restore
//! puts the source's devices in the target's storage: the target must declare each of them as
//! the source did.

use crate::error::Result;
use crate::ui::escape;
use crate::vault::{Addr, AuditDevice, Vault};

use super::node_error;

/// How one of blue's devices stands on the other cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// The other cluster does not declare it: a restored active node disables it silently.
    Missing(AuditDevice),
    /// The other cluster declares a device at its path with other settings (each named).
    Differs {
        blue: AuditDevice,
        differences: Vec<String>,
    },
}

impl Difference {
    pub fn device(&self) -> &AuditDevice {
        match self {
            Difference::Missing(d) => d,
            Difference::Differs { blue, .. } => blue,
        }
    }

    /// One line naming the device and what differs, on `other` (green, the target).
    pub fn describe(&self, other: &str) -> String {
        match self {
            Difference::Missing(d) => {
                format!("{} ({}) is missing on {other}", escape(&d.path), summary(d))
            }
            Difference::Differs { blue, differences } => format!(
                "{} differs on {other}: {}",
                escape(&blue.path),
                differences.join("; ")
            ),
        }
    }
}

/// Each of `blue`'s devices that `other` does not hold exactly (same path, type, description,
/// local and options): empty when `other` holds every one. Devices only `other` has are not
/// differences: OpenBao adds a declared device that storage lacks.
pub fn compare(
    blue: &[AuditDevice],
    blue_name: &str,
    other: &[AuditDevice],
    other_name: &str,
) -> Vec<Difference> {
    let mut out = Vec::new();
    for b in blue {
        let Some(o) = other.iter().find(|o| same_path(&o.path, &b.path)) else {
            out.push(Difference::Missing(b.clone()));
            continue;
        };
        let mut differences = Vec::new();
        let mut differ = |what: &str, on_blue: &str, on_other: &str| {
            differences.push(format!(
                "{what} is {} on {other_name}, {} on {blue_name}",
                quoted(on_other),
                quoted(on_blue)
            ));
        };
        if o.kind != b.kind {
            differ("the type", &b.kind, &o.kind);
        }
        if o.description != b.description {
            differ("the description", &b.description, &o.description);
        }
        if o.local != b.local {
            differ("local", &b.local.to_string(), &o.local.to_string());
        }
        let keys: std::collections::BTreeSet<&String> =
            b.options.keys().chain(o.options.keys()).collect();
        for k in keys {
            match (b.options.get(k), o.options.get(k)) {
                (Some(bv), Some(ov)) if bv == ov => {}
                (bv, ov) => differ(
                    &format!("option {}", escape(k)),
                    bv.map_or("(not set)", String::as_str),
                    ov.map_or("(not set)", String::as_str),
                ),
            }
        }
        if !differences.is_empty() {
            out.push(Difference::Differs {
                blue: b.clone(),
                differences,
            });
        }
    }
    out
}

fn same_path(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

fn quoted(v: &str) -> String {
    if v == "(not set)" {
        v.to_owned()
    } else {
        format!("{:?}", escape(v))
    }
}

/// `file, file_path audit.log`: the device's type and options in one line, escaped.
pub fn summary(d: &AuditDevice) -> String {
    let mut parts = vec![escape(&d.kind)];
    parts.extend(
        d.options
            .iter()
            .map(|(k, v)| format!("{} {}", escape(k), escape(v))),
    );
    if d.local {
        parts.push("local".into());
    }
    parts.join(", ")
}

/// The devices in one line: `file/ (file, file_path audit.log)`, or `none`.
pub fn listing(devices: &[AuditDevice]) -> String {
    if devices.is_empty() {
        return "none".into();
    }
    devices
        .iter()
        .map(|d| format!("{} ({})", escape(&d.path), summary(d)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The server configuration stanza that declares `d` as it is: OpenBao's `audit "TYPE"
/// "PATH" { … }`, every string quoted as HCL reads it.
pub fn stanza(d: &AuditDevice) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let mut out = format!(
        "audit {} {} {{\n",
        q(&d.kind),
        q(d.path.trim_end_matches('/'))
    );
    if !d.description.is_empty() {
        out.push_str(&format!("  description = {}\n", q(&d.description)));
    }
    if d.local {
        out.push_str("  local = true\n");
    }
    out.push_str("  options {\n");
    for (k, v) in &d.options {
        let bare = k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let key = if bare { k.clone() } else { q(k) };
        out.push_str(&format!("    {key} = {}\n", q(v)));
    }
    out.push_str("  }\n}\n");
    out
}

/// Every device's stanza, one after the other.
pub fn stanzas(devices: &[AuditDevice]) -> String {
    devices.iter().map(stanza).collect::<Vec<_>>().join("")
}

/// The refusal's text for `diffs` on `other`: a line per device, then the stanzas of every one of
/// blue's devices (what each node of `other` must declare, the same on each).
pub fn explain(diffs: &[Difference], blue: &[AuditDevice], blue_name: &str, other: &str) -> String {
    let mut out = String::new();
    for d in diffs {
        out.push_str(&format!("\n  {}", d.describe(other)));
    }
    out.push_str(&format!(
        "\nDeclare {blue_name}'s audit devices in the configuration of every node of {other} (the \
         same stanzas on each node), restart them, and run again:\n{}",
        stanzas(blue)
    ));
    out
}

/// The devices `addr` has enabled; what custody was doing and whose node it is in the error
/// (a token without `sudo` on `sys/audit` is a precondition, exit 4).
pub async fn read(vault: &Vault, addr: &Addr, whose: &str) -> Result<Vec<AuditDevice>> {
    vault.audit_devices(addr).await.map_err(|e| {
        node_error(
            &format!(
                "reading {whose}'s audit devices (sys/audit on {addr}; the token needs sudo there)"
            ),
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, file_path: &str) -> AuditDevice {
        AuditDevice {
            path: path.into(),
            kind: "file".into(),
            description: String::new(),
            local: false,
            options: [("file_path".to_owned(), file_path.to_owned())].into(),
        }
    }

    #[test]
    fn the_same_devices_do_not_differ_and_extra_ones_on_the_other_side_are_fine() {
        let blue = vec![file("file/", "audit.log")];
        let mut green = blue.clone();
        green.push(file("more/", "more.log"));
        assert!(compare(&blue, "blue", &green, "green").is_empty());
        assert!(compare(&[], "blue", &green, "green").is_empty());
    }

    #[test]
    fn a_missing_device_and_every_differing_setting_are_named() {
        let blue = vec![
            file("file/", "audit.log"),
            file("second/", "/var/log/b.log"),
        ];
        let mut other = file("file/", "green.log");
        other.local = true;
        other.options.insert("mode".into(), "0600".into());
        let diffs = compare(&blue, "blue", &[other], "green");
        assert_eq!(diffs.len(), 2, "{diffs:?}");
        let first = diffs[0].describe("green");
        assert!(first.contains("file/ differs on green"), "{first}");
        assert!(
            first.contains(r#"option file_path is "green.log" on green, "audit.log" on blue"#),
            "{first}"
        );
        assert!(first.contains("local is \"true\" on green"), "{first}");
        assert!(
            first.contains("option mode is \"0600\" on green, (not set) on blue"),
            "{first}"
        );
        assert_eq!(
            diffs[1].describe("green"),
            "second/ (file, file_path /var/log/b.log) is missing on green"
        );
        let text = explain(&diffs, &blue, "blue", "green");
        assert!(text.contains("audit \"file\" \"second\" {"), "{text}");
    }

    #[test]
    fn a_stanza_declares_the_device_as_it_is() {
        let mut d = file("file/", "audit.log");
        assert_eq!(
            stanza(&d),
            "audit \"file\" \"file\" {\n  options {\n    file_path = \"audit.log\"\n  }\n}\n"
        );
        d.description = "say \"hi\"".into();
        d.local = true;
        let s = stanza(&d);
        assert!(s.contains("  description = \"say \\\"hi\\\"\"\n"), "{s}");
        assert!(s.contains("  local = true\n"), "{s}");
    }
}
