//! `custody status`: what every node says about itself, its audit devices beside what the
//! transcript recorded of them, and the signer mounts.

use serde_json::json;

use crate::error::{Error, Result};
use crate::flows::audit::{Recorded, RecordedDevice, describe_all, differences, recorded};
use crate::flows::freeze::{self, Signing};
use crate::flows::nodes::{NodeStatus, all_status, table};
use crate::flows::{Ctx, raft_peers};
use crate::vault::{Addr, HaRole, NodeError, NodeResult, Vault};

/// A signer mount as `status` shows it: whether it signs, and fences left in its storage.
struct SignerState {
    mount: String,
    config: serde_json::Value,
    signing: Signing,
    fences: Vec<String>,
    /// The accounting fields the mount's tuning leaves hashed in the audit log (none when it is
    /// tuned as `plugin install` tunes it); `None` when the tuning cannot be read.
    audit_keys_hashed: Option<Vec<String>>,
}

async fn signer_mounts(vault: &Vault, addr: &Addr) -> NodeResult<Vec<SignerState>> {
    let mut out = Vec::new();
    for m in vault.signer_mounts(addr).await? {
        let fences = vault
            .signer(&m.mount)
            .fences(addr)
            .await
            .unwrap_or_default();
        let audit_keys_hashed = vault
            .mount_tune(addr, &m.mount)
            .await
            .ok()
            .map(|t| crate::vault::audit::signer_keys_hashed(&t));
        out.push(SignerState {
            audit_keys_hashed,
            signing: Signing::of_config(&m.config),
            mount: m.mount,
            config: m.config,
            fences,
        });
    }
    Ok(out)
}

pub async fn run(ctx: &Ctx) -> Result<()> {
    let addrs = ctx.require_addrs()?;
    let vault = ctx.vault()?;
    let nodes = all_status(&vault, addrs).await;
    let active = nodes
        .iter()
        .zip(addrs)
        .find(|(n, _)| n.ha_role == Some(HaRole::Active))
        .map(|(_, a)| a);
    let raft = match (active, &ctx.token) {
        (Some(a), Some(_)) => Some(raft_peers::raft_health(&vault, a).await),
        _ => None,
    };
    let rotation = match (active, &ctx.token) {
        (Some(a), Some(_)) => Some(crate::flows::rotation::describe(&vault, a).await),
        _ => None,
    };
    let signers = match (active, &ctx.token) {
        (Some(a), Some(_)) => Some(signer_mounts(&vault, a).await),
        _ => None,
    };
    let audit = match &ctx.token {
        Some(_) => Some(audit_view(ctx, &vault, &nodes, addrs).await),
        None => None,
    };
    let mut text = table(&nodes);
    let claiming: Vec<String> = crate::flows::nodes::claiming_active(&nodes)
        .into_iter()
        .map(|i| addrs[i].to_string())
        .collect();
    if claiming.len() > 1 {
        text.push_str(&format!(
            "Active: {} ALL answer as the active node: all but one are deposed leaders that have \
             not stepped down, and may answer from stale state; custody's ceremonies refuse to \
             run until one alone is active (restart the node the others do not name in \
             sys/leader, then unseal it)\n",
            claiming.join(" and ")
        ));
    }
    match &raft {
        Some(Ok(h)) => text.push_str(&format!("Raft peers (autopilot):\n{}\n", h.describe())),
        Some(Err(e)) => text.push_str(&format!("Raft peers: cannot read autopilot's state: {e}\n")),
        None if active.is_some() => text.push_str(
            "Raft peers: give a token (VAULT_TOKEN or --token-file) to see each peer's role and \
             whether the cluster survives losing a node\n",
        ),
        None => {}
    }
    match &audit {
        Some(a) => text.push_str(&a.text()),
        None if active.is_some() => text.push_str(
            "Audit devices: give a token that may read sys/audit (the quorum's root token) to \
             see each node's\n",
        ),
        None => {}
    }
    match &rotation {
        Some(Ok(stage)) => text.push_str(&format!("Shares: {stage}\n")),
        Some(Err(e)) => text.push_str(&format!("Shares: cannot read the share rotation: {e}\n")),
        None => {}
    }
    match &signers {
        Some(Ok(mounts)) => {
            for m in mounts {
                text.push_str(&format!("Signer: {}\n", m.signing.describe(&m.mount)));
                if let Some(line) = freeze::leftover_fences(&m.mount, &m.fences) {
                    text.push_str(&format!("Signer: {line}\n"));
                }
                text.push_str(&format!("Signer: {}\n", tuning_line(m)));
            }
        }
        Some(Err(e)) => text.push_str(&format!(
            "Signer: cannot list the signer mounts: {}\n",
            crate::ui::escape(&e.to_string())
        )),
        None => {}
    }
    ctx.ui.result(
        &text,
        json!({
            "nodes": nodes,
            "raft": raft.as_ref().and_then(|r| r.as_ref().ok()),
            "raft_error": raft.as_ref().and_then(|r| r.as_ref().err()).map(ToString::to_string),
            "share_rotation": rotation.as_ref().and_then(|r| r.as_ref().ok()),
            "signer_mounts": signers.as_ref().and_then(|r| r.as_ref().ok()).map(|ms| ms
                .iter()
                .map(|m| json!({
                    "mount": m.mount,
                    "signing": m.signing.word(),
                    "config": m.config,
                    "restore_fences": m.fences,
                    "audit_keys_hashed": m.audit_keys_hashed,
                }))
                .collect::<Vec<_>>()),
            "audit": audit.as_ref().map(AuditView::json),
            "claiming_active": claiming,
        }),
    );
    let down = nodes.iter().filter(|n| !n.reachable).count();
    if down > 0 {
        return Err(Error::failed(format!(
            "{down} of {} nodes did not answer",
            nodes.len()
        )));
    }
    Ok(())
}

/// Whether the mount's tuning leaves what accounts for a signature in clear in the audit log.
fn tuning_line(m: &SignerState) -> String {
    let mount = crate::ui::escape(&m.mount);
    match &m.audit_keys_hashed {
        None => {
            format!("{mount}/: cannot read its tuning (which fields the audit log shows in clear)")
        }
        Some(h) if h.is_empty() => format!(
            "{mount}/ logs what accounts for a signature in clear (to, nonce, chain_id; tx_hash, \
             from)"
        ),
        Some(h) => format!(
            "{mount}/ HASHES in the audit log what accounts for a signature ({}): run plugin \
             install again to tune it",
            h.join(", ")
        ),
    }
}

/// One node's audit devices, or why they are not shown.
struct NodeAudit {
    addr: String,
    active: bool,
    devices: Option<Vec<RecordedDevice>>,
    /// Why `devices` is `None`.
    why_not: Option<String>,
    forbidden: bool,
}

/// Every node's audit devices beside the transcript's record of the cluster's.
struct AuditView {
    nodes: Vec<NodeAudit>,
    recorded: Option<Recorded>,
    recorded_error: Option<String>,
    /// How the active node's devices differ from the record (when both are known).
    differs: Option<Vec<String>>,
}

async fn audit_view(ctx: &Ctx, vault: &Vault, nodes: &[NodeStatus], addrs: &[Addr]) -> AuditView {
    let mut out = Vec::new();
    for (n, addr) in nodes.iter().zip(addrs) {
        let mut a = NodeAudit {
            addr: n.addr.clone(),
            active: n.ha_role == Some(HaRole::Active),
            devices: None,
            why_not: None,
            forbidden: false,
        };
        if !n.reachable {
            a.why_not = Some("not reachable".into());
        } else if n.sealed {
            a.why_not = Some("sealed".into());
        } else {
            match vault.audit_devices(addr).await {
                Ok(d) => a.devices = Some(d.iter().map(RecordedDevice::of).collect()),
                Err(NodeError::Api { status: 403, .. }) => {
                    a.forbidden = true;
                    a.why_not = Some("this token may not read sys/audit".into());
                }
                Err(e) => a.why_not = Some(e.to_string()),
            }
        }
        out.push(a);
    }
    let active = nodes
        .iter()
        .zip(&out)
        .find(|(n, _)| n.ha_role == Some(HaRole::Active));
    let (mut recorded_at, mut recorded_error, mut differs) = (None, None, None);
    if let Some((n, a)) = active {
        match ctx.recorded_lines() {
            Ok(entries) => recorded_at = recorded(&entries, &n.cluster_id),
            Err(e) => recorded_error = Some(e.to_string()),
        }
        if let (Some(r), Some(now)) = (&recorded_at, &a.devices) {
            differs = Some(differences(&r.devices, now));
        }
    }
    AuditView {
        nodes: out,
        recorded: recorded_at,
        recorded_error,
        differs,
    }
}

impl AuditView {
    fn text(&self) -> String {
        if self
            .nodes
            .iter()
            .all(|n| n.forbidden || n.devices.is_none())
            && self.nodes.iter().any(|n| n.forbidden)
        {
            return "Audit devices: this token may not read sys/audit (it takes sudo: the \
                    quorum's root token may), so they are not shown\n"
                .to_owned();
        }
        let mut text = String::from("Audit devices:\n");
        for n in &self.nodes {
            let what = match (&n.devices, &n.why_not) {
                (Some(d), _) if d.is_empty() => "NONE enabled".to_owned(),
                (Some(d), _) => describe_all(d),
                (None, Some(why)) => format!("- ({})", crate::ui::escape(why)),
                (None, None) => "-".to_owned(),
            };
            let role = if n.active { " (active)" } else { "" };
            text.push_str(&format!("  {}{role}  {what}\n", n.addr));
        }
        let seen: Vec<&Vec<RecordedDevice>> = self
            .nodes
            .iter()
            .filter_map(|n| n.devices.as_ref())
            .collect();
        if seen.windows(2).any(|w| w[0] != w[1]) {
            text.push_str(
                "Audit: the nodes do NOT list the same devices: every node must declare the same \
                 audit stanza (same path, same options), or a failover can refuse the signer\n",
            );
        }
        if seen.iter().any(|d| d.is_empty()) {
            text.push_str(
                "Audit: with no audit device nothing records who signs what; plugin install, \
                 wallet create and wallet bind refuse such a cluster without --accept-no-audit\n",
            );
        }
        match (&self.recorded, &self.differs) {
            (Some(r), Some(d)) if d.is_empty() && r.devices.is_empty() => text.push_str(&format!(
                "Audit: the transcript records the Authority let onto this cluster without an \
                 audit device (line {}, {}, --accept-no-audit)\n",
                r.line,
                crate::ui::escape(&r.step)
            )),
            (Some(r), Some(d)) if d.is_empty() => text.push_str(&format!(
                "Audit: the active node's devices are the ones the transcript recorded (line {}, {})\n",
                r.line,
                crate::ui::escape(&r.step)
            )),
            (Some(r), Some(d)) => text.push_str(&format!(
                "Audit: the active node's devices DIFFER from what the transcript recorded (line \
                 {}, {}: {}): {}. Every node must declare the stanza recorded; a changed stanza \
                 can keep a node from becoming active, and a snapshot restored elsewhere needs \
                 the same one\n",
                r.line,
                crate::ui::escape(&r.step),
                describe_all(&r.devices),
                d.join("; ")
            )),
            (Some(_), None) => {}
            (None, _) => match &self.recorded_error {
                Some(e) => text.push_str(&format!(
                    "Audit: cannot read the transcript's record of the devices: {}\n",
                    crate::ui::escape(e)
                )),
                None if self.nodes.iter().any(|n| n.active) => text.push_str(
                    "Audit: the transcript records no audit devices for this cluster (plugin \
                     install, wallet create and wallet bind record them)\n",
                ),
                None => {}
            },
        }
        text
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "nodes": self.nodes.iter().map(|n| json!({
                "addr": n.addr,
                "active": n.active,
                "devices": n.devices,
                "error": n.why_not,
                "token_may_not_read": n.forbidden,
            })).collect::<Vec<_>>(),
            "recorded": self.recorded,
            "recorded_error": self.recorded_error,
            "differs_from_recorded": self.differs,
        })
    }
}
