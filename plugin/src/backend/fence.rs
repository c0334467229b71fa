//! `restore-fence/ID`: the mark that a copy restored from a snapshot must not sign.
//!
//! `custody snapshot save` writes a fence into every signer mount just before it takes the
//! snapshot and deletes it right after. A running plugin never looks at it, so the cluster in
//! service keeps signing. A plugin that *starts* on storage holding a fence — a cluster restored
//! from that snapshot, or this cluster's own plugin restarted inside that window (the safe
//! failure) — records the mount restored and frozen, then removes the fence: signing stays frozen
//! until every account's counter has been set since (`config` refuses to unfreeze before).

use std::sync::atomic::Ordering;

use serde_json::json;

use super::SignerBackend;
use super::fields::Fields;
use super::model::{FENCE_PREFIX, Fence, Restored, valid_name};
use super::reply::{HandlerResult, Reply, invalid};
use crate::log;

/// The longest note a fence carries.
const MAX_NOTE: usize = 200;

pub(super) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn fence_key(id: &str) -> String {
    format!("{FENCE_PREFIX}{id}")
}

fn valid_id(id: &str) -> Result<(), Reply> {
    if valid_name(id) {
        Ok(())
    } else {
        Err(invalid(format!(
            "{id:?} is not a fence id: 1 to 64 of A-Z a-z 0-9 _ -, starting with a letter or digit"
        )))
    }
}

impl SignerBackend {
    pub(super) async fn write_fence(&self, id: &str, f: &Fields) -> HandlerResult {
        valid_id(id)?;
        f.only(&["note"])?;
        let note = f.str("note")?.unwrap_or_default();
        if note.chars().count() > MAX_NOTE || note.chars().any(char::is_control) {
            return Err(invalid(format!(
                "field 'note': at most {MAX_NOTE} characters, none of them control characters"
            )));
        }
        let fence = Fence {
            id: id.to_owned(),
            written_at: now_unix(),
            note: note.to_owned(),
        };
        let bytes = serde_json::to_vec(&fence).map_err(|e| Reply::Coded(500, e.to_string()))?;
        self.store()?.put(&fence_key(id), bytes).await?;
        Ok(Reply::Data(json!(fence)))
    }

    pub(super) async fn read_fence(&self, id: &str) -> HandlerResult {
        valid_id(id)?;
        match self.store()?.get(&fence_key(id)).await? {
            Some(bytes) => Ok(Reply::Data(
                serde_json::from_slice(&bytes)
                    .map_err(|e| Reply::Coded(500, format!("fence {id} is damaged: {e}")))?,
            )),
            None => Err(Reply::NotFound),
        }
    }

    pub(super) async fn delete_fence(&self, id: &str) -> HandlerResult {
        valid_id(id)?;
        self.store()?.delete(&fence_key(id)).await?;
        Ok(Reply::Empty)
    }

    pub(super) async fn list_fences(&self) -> HandlerResult {
        let keys = self.store()?.list(FENCE_PREFIX).await?;
        if keys.is_empty() {
            return Err(Reply::NotFound);
        }
        Ok(Reply::Data(json!({ "keys": keys })))
    }

    /// Once per plugin process, before anything else is served: a fence in storage means this
    /// process started on a restored copy (or inside a snapshot's window), so the mount is
    /// recorded restored and frozen, and the fences are removed. Until the check has succeeded
    /// every request fails (503, retryable), so nothing signs on an unchecked start.
    pub(super) async fn check_fences_once(&self) -> Result<(), Reply> {
        if self.fence_checked.load(Ordering::SeqCst) {
            return Ok(());
        }
        let _one = self.fence_check.lock().await;
        if self.fence_checked.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Like a freeze: no signature is in progress while the config changes.
        let _exclusive = self.gate.write().await;
        let unavailable = |e: super::storage::StoreError| {
            Reply::Coded(
                503,
                format!(
                    "the plugin could not check its storage for a restore fence ({}); nothing \
                     was signed: retry",
                    e.0
                ),
            )
        };
        let store = self.store()?;
        let ids = store.list(FENCE_PREFIX).await.map_err(unavailable)?;
        let mut fences = Vec::new();
        for id in &ids {
            if let Some(bytes) = store.get(&fence_key(id)).await.map_err(unavailable)? {
                // A damaged fence still fences.
                fences.push(serde_json::from_slice(&bytes).unwrap_or(Fence {
                    id: id.clone(),
                    ..Fence::default()
                }));
            }
        }
        if fences.is_empty() {
            log::info("started: no restore fence in storage");
        } else {
            let mut cfg = self.config().await?;
            cfg.frozen = true;
            cfg.restored = Some(Restored {
                fences: fences.clone(),
                noticed_at: now_unix(),
                counters_set: Default::default(),
            });
            self.put_config(&cfg).await?;
            for fence in &fences {
                store
                    .delete(&fence_key(&fence.id))
                    .await
                    .map_err(unavailable)?;
            }
            log::info(&format!(
                "started on storage holding restore fence(s) {}: this mount was restored from a \
                 snapshot (or restarted while one was taken); signing is frozen until every \
                 account's counter is raised",
                fences
                    .iter()
                    .map(|f| f.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        self.fence_checked.store(true, Ordering::SeqCst);
        Ok(())
    }
}
