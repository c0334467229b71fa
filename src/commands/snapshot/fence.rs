//! The restore fence around a snapshot: written into every signer mount just before the
//! snapshot is taken, removed right after. A cluster restored from the snapshot finds it when its
//! plugin starts and comes up frozen until its counters are raised; the cluster in service, whose
//! plugin is already running, keeps signing (`plugin/src/backend/fence.rs`).

use crate::error::{Error, Result};
use crate::flows::node_error;
use crate::snapshot::manifest::RestoreFence;
use crate::ui::escape;
use crate::vault::{Addr, Vault};

/// A fence id no other save shares: `snap-<unix seconds>-<8 random hex digits>`.
fn new_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut random = [0u8; 4];
    aws_lc_rs::rand::fill(&mut random).expect("the system RNG");
    format!("snap-{secs}-{}", hex::encode(random))
}

/// Writes one fence into every signer mount of the cluster. None when it has no signer mount.
/// When a mount cannot be fenced, the fences already written are removed and nothing is saved.
pub async fn raise(vault: &Vault, addr: &Addr, file: &str) -> Result<Option<RestoreFence>> {
    let mounts = vault.signer_mounts(addr).await.map_err(|e| {
        node_error("listing the signer mounts to fence the snapshot", e).hint(
            "snapshot save writes a restore fence into every signer mount, so that a copy \
             restored from the snapshot signs nothing before its counters are raised: it needs \
             a token that may list sys/mounts and write each mount's restore-fence/ (the \
             quorum's root token)",
        )
    })?;
    if mounts.is_empty() {
        return Ok(None);
    }
    let fence = RestoreFence {
        id: new_id(),
        mounts: mounts.into_iter().map(|m| m.mount).collect(),
    };
    let note = format!("custody snapshot save {file}");
    for (i, mount) in fence.mounts.iter().enumerate() {
        if let Err(e) = vault
            .signer(mount)
            .write_fence(addr, &fence.id, &note)
            .await
        {
            for written in &fence.mounts[..i] {
                let _ = vault.signer(written).delete_fence(addr, &fence.id).await;
            }
            return Err(Error::precondition(format!(
                "the restore fence could not be written into {}/, so a copy restored from this \
                 snapshot would sign; nothing was saved",
                escape(mount)
            ))
            .caused_by(e)
            .hint(
                "a plugin older than the restore fence answers 'unsupported path': upgrade it \
                 with custody plugin install --upgrade",
            ));
        }
    }
    Ok(Some(fence))
}

/// Removes the fence from every mount, and looks at what each plugin says now: the warnings to
/// show (a fence that stays, a plugin that restarted inside the window and came up frozen).
pub async fn lower(vault: &Vault, addr: &Addr, fence: &RestoreFence) -> Vec<String> {
    let mut warnings = Vec::new();
    for mount in &fence.mounts {
        let m = escape(mount);
        if let Err(e) = vault.signer(mount).delete_fence(addr, &fence.id).await {
            warnings.push(format!(
                "the restore fence {} stays in {m}/ ({}): the cluster keeps signing, but its \
                 plugin would come up frozen at its next start; remove it with `bao delete \
                 {m}/restore-fence/{}`",
                fence.id,
                escape(&e.to_string()),
                fence.id
            ));
        }
        match vault.signer(mount).config(addr).await {
            Ok(c) if c["frozen_reason"] == "restored" => warnings.push(format!(
                "the plugin of {m}/ started again while the snapshot was taken and came up frozen \
                 (the safe failure): this cluster signs nothing until `custody wallet unfreeze \
                 --mount {m} --nonce-floor N` (its own counters are right: give each account's \
                 next nonce, which custody wallet show prints)"
            )),
            Ok(_) => {}
            Err(e) => warnings.push(format!(
                "after the snapshot, {m}/config could not be read ({}): check with custody \
                 wallet show that the cluster still signs",
                escape(&e.to_string())
            )),
        }
    }
    warnings
}
