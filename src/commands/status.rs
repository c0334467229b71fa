//! `custody status`: what every node says about itself.

use serde_json::json;

use crate::error::{Error, Result};
use crate::flows::freeze::{self, Signing};
use crate::flows::nodes::{all_status, table};
use crate::flows::{Ctx, raft_peers};
use crate::vault::{Addr, HaRole, NodeResult, Vault};

/// A signer mount as `status` shows it: whether it signs, and fences left in its storage.
struct SignerState {
    mount: String,
    config: serde_json::Value,
    signing: Signing,
    fences: Vec<String>,
}

async fn signer_mounts(vault: &Vault, addr: &Addr) -> NodeResult<Vec<SignerState>> {
    let mut out = Vec::new();
    for m in vault.signer_mounts(addr).await? {
        let fences = vault
            .signer(&m.mount)
            .fences(addr)
            .await
            .unwrap_or_default();
        out.push(SignerState {
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
    let mut text = table(&nodes);
    match &raft {
        Some(Ok(h)) => text.push_str(&format!("Raft peers (autopilot):\n{}\n", h.describe())),
        Some(Err(e)) => text.push_str(&format!("Raft peers: cannot read autopilot's state: {e}\n")),
        None if active.is_some() => text.push_str(
            "Raft peers: give a token (VAULT_TOKEN or --token-file) to see each peer's role and \
             whether the cluster survives losing a node\n",
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
                }))
                .collect::<Vec<_>>()),
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
