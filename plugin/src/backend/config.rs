//! `config`: the chain id every signature is pinned to, and `frozen`, which stops all signing
//! (the blue-green cutover freezes the old cluster; a restored copy starts frozen, see `fence`).

use super::SignerBackend;
use super::fields::{Fields, field_err};
use super::model::{ACCOUNTS_PREFIX, CONFIG_KEY, Config};
use super::reply::{HandlerResult, Reply, invalid};
use crate::eth;

/// 2^53 - 1: OpenBao reads a plugin's JSON numbers as float64, exact only up to here.
const MAX_CHAIN_ID: u64 = (1 << 53) - 1;

impl SignerBackend {
    pub(super) async fn config(&self) -> Result<Config, Reply> {
        if let Some(c) = self.config.lock().ok().and_then(|c| c.clone()) {
            return Ok(c);
        }
        let cfg = match self.store()?.get(CONFIG_KEY).await? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Reply::Coded(500, format!("the stored config is damaged: {e}")))?,
            None => Config::default(),
        };
        if let Ok(mut c) = self.config.lock() {
            *c = Some(cfg.clone());
        }
        Ok(cfg)
    }

    pub(super) async fn read_config(&self) -> HandlerResult {
        Ok(Reply::Data(self.config().await?.view()))
    }

    pub(super) async fn write_config(&self, f: &Fields) -> HandlerResult {
        f.only(&["chain_id", "frozen"])?;
        let chain_id = match f.value("chain_id") {
            None => None,
            Some(v) => {
                let id = eth::parse_u64("chain_id", v).map_err(field_err)?;
                if id == 0 {
                    return Err(invalid("field 'chain_id': 0 is not a chain id"));
                }
                if id > MAX_CHAIN_ID {
                    return Err(invalid(format!(
                        "field 'chain_id': {id} is above {MAX_CHAIN_ID}, the largest chain id OpenBao's \
                         JSON (and every JavaScript wallet) carries exactly"
                    )));
                }
                Some(id)
            }
        };
        let frozen = f.bool("frozen")?;
        if chain_id.is_none() && frozen.is_none() {
            return Err(invalid("nothing to change: give chain_id and/or frozen"));
        }
        // Freezing waits for every signature in progress (they hold the gate shared).
        let _exclusive = self.gate.write().await;
        let mut cfg = self.config().await?;
        if let Some(id) = chain_id {
            cfg.chain_id = Some(id);
        }
        match frozen {
            Some(false) if cfg.restored.is_some() => {
                self.counters_all_set(&cfg).await?;
                cfg.restored = None;
                cfg.frozen = false;
            }
            Some(fr) => cfg.frozen = fr,
            None => {}
        }
        self.put_config(&cfg).await?;
        Ok(Reply::Data(cfg.view()))
    }

    /// Stores `cfg` and caches it.
    pub(super) async fn put_config(&self, cfg: &Config) -> Result<(), Reply> {
        let bytes = serde_json::to_vec(cfg).map_err(|e| Reply::Coded(500, e.to_string()))?;
        self.store()?.put(CONFIG_KEY, bytes).await?;
        if let Ok(mut c) = self.config.lock() {
            *c = Some(cfg.clone());
        }
        Ok(())
    }

    /// A restored mount unfreezes only once every account's counter has been set since the
    /// restore: the cutover's carry from the cluster in service, or `custody wallet unfreeze`.
    async fn counters_all_set(&self, cfg: &Config) -> Result<(), Reply> {
        let set = cfg
            .restored
            .as_ref()
            .map(|r| r.counters_set.clone())
            .unwrap_or_default();
        let mut missing: Vec<String> = self
            .store()?
            .list(ACCOUNTS_PREFIX)
            .await?
            .into_iter()
            .filter(|name| !set.contains(name))
            .collect();
        missing.sort();
        if missing.is_empty() {
            return Ok(());
        }
        Err(invalid(format!(
            "signing stays frozen: this mount was restored from a snapshot and the counters of {} \
             have not been set since, so it could sign nonces the cluster in service has used; \
             the cutover's carry sets them, or custody wallet unfreeze --nonce-floor-from-rpc URL \
             (or --nonce-floor N)",
            missing.join(", ")
        )))
    }
}

/// The config a signature needs: a chain id, and not frozen.
pub(super) fn ready_to_sign(cfg: &Config) -> Result<u64, Reply> {
    if cfg.frozen && cfg.restored.is_some() {
        return Err(Reply::Coded(
            503,
            "signing is frozen on this cluster: it was restored from a snapshot and its nonce \
             counters have not been raised to those of the cluster in service (the cutover's \
             carry does it, or custody wallet unfreeze); retry: the load balancer will send the \
             request to the cluster that signs"
                .into(),
        ));
    }
    if cfg.frozen {
        return Err(Reply::Coded(
            503,
            "signing is frozen on this cluster (a cutover is in progress); retry: the load balancer \
             will send the request to the cluster that signs"
                .into(),
        ));
    }
    cfg.chain_id
        .ok_or_else(|| invalid("the mount has no chain_id: write config chain_id=N before signing"))
}
