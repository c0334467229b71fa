//! The custody-signer mount's API: accounts, config (chain id, frozen) and nonce counters.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::addr::Addr;
use super::client::{NodeError, NodeResult, Vault, data_of};

/// What a signature is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    Tx,
    Message,
    TypedData,
}

impl Signing {
    pub fn leaf(self) -> &'static str {
        match self {
            Signing::Tx => "sign-tx",
            Signing::Message => "sign-message",
            Signing::TypedData => "sign-typed-data",
        }
    }
}

/// The signer plugin mounted at `mount` (for example `ethereum`).
pub struct SignerMount<'a> {
    vault: &'a Vault,
    mount: &'a str,
}

impl Vault {
    pub fn signer<'a>(&'a self, mount: &'a str) -> SignerMount<'a> {
        SignerMount { vault: self, mount }
    }
}

impl SignerMount<'_> {
    fn path(&self, rest: &str) -> String {
        format!("{}/{rest}", self.mount)
    }

    /// The keys listed under `rest`; none when there are none yet (the server's 404).
    async fn keys(&self, addr: &Addr, rest: &str) -> NodeResult<Vec<String>> {
        match self.vault.list(addr, &self.path(rest)).await {
            Ok(v) => Ok(data_of(v)["keys"]
                .as_array()
                .map(|keys| {
                    keys.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()),
            Err(NodeError::Api { status: 404, .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The account names; none when the mount has no accounts yet.
    pub async fn account_names(&self, addr: &Addr) -> NodeResult<Vec<String>> {
        self.keys(addr, "accounts").await
    }

    /// One account as the plugin shows it: address, public key, next nonce, rules.
    pub async fn account(&self, addr: &Addr, name: &str) -> NodeResult<Value> {
        Ok(data_of(
            self.vault
                .get(addr, &self.path(&format!("accounts/{name}")))
                .await?,
        ))
    }

    /// Every account's address, by name.
    pub async fn addresses(&self, addr: &Addr) -> NodeResult<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for name in self.account_names(addr).await? {
            let account = self.account(addr, &name).await?;
            let address = account["address"]
                .as_str()
                .ok_or_else(|| NodeError::Decode(format!("account {name} has no address")))?
                .to_owned();
            out.insert(name, address);
        }
        Ok(out)
    }

    /// Creates an account; the plugin checks every field before it makes a key.
    pub async fn create_account(&self, addr: &Addr, name: &str, body: &Value) -> NodeResult<Value> {
        Ok(data_of(
            self.vault
                .post(addr, &self.path(&format!("accounts/{name}")), body)
                .await?,
        ))
    }

    /// Binds an account made without an allow-list to `allowed_calls` (CONTRACT:SIGNATURE), once;
    /// a path the signer policy does not grant.
    pub async fn bind(
        &self,
        addr: &Addr,
        name: &str,
        allowed_calls: &[String],
    ) -> NodeResult<Value> {
        Ok(data_of(
            self.vault
                .post(
                    addr,
                    &self.path(&format!("accounts/{name}/bind")),
                    &json!({ "allowed_calls": allowed_calls }),
                )
                .await?,
        ))
    }

    pub async fn config(&self, addr: &Addr) -> NodeResult<Value> {
        Ok(data_of(self.vault.get(addr, &self.path("config")).await?))
    }

    pub async fn pin_chain_id(&self, addr: &Addr, chain_id: u64) -> NodeResult<()> {
        self.vault
            .post(addr, &self.path("config"), &json!({ "chain_id": chain_id }))
            .await
            .map(|_| ())
    }

    /// Freezes (every signature in progress finishes first) or unfreezes signing.
    pub async fn set_frozen(&self, addr: &Addr, frozen: bool) -> NodeResult<()> {
        self.vault
            .post(addr, &self.path("config"), &json!({ "frozen": frozen }))
            .await
            .map(|_| ())
    }

    pub async fn next_nonce(&self, addr: &Addr, name: &str) -> NodeResult<u64> {
        let v = data_of(
            self.vault
                .get(addr, &self.path(&format!("accounts/{name}/nonce")))
                .await?,
        );
        v["next_nonce"]
            .as_u64()
            .ok_or_else(|| NodeError::Decode(format!("{name}'s next_nonce is not a number: {v}")))
    }

    /// A signature by `name` on `what` (`sign-tx`, `sign-message` or `sign-typed-data`): the
    /// plugin's answer (`signed_tx`, `nonce`, ... or `signature`, `hash`, ...).
    pub async fn sign(
        &self,
        addr: &Addr,
        name: &str,
        what: Signing,
        body: &Value,
    ) -> NodeResult<Value> {
        Ok(data_of(
            self.vault
                .post(
                    addr,
                    &self.path(&format!("accounts/{name}/{}", what.leaf())),
                    body,
                )
                .await?,
        ))
    }

    /// Raises the counter (a lower value is refused by the plugin without force). Setting it to
    /// its own value counts, on a restored mount, as a counter set since the restore.
    pub async fn raise_next_nonce(&self, addr: &Addr, name: &str, next: u64) -> NodeResult<()> {
        self.vault
            .post(
                addr,
                &self.path(&format!("accounts/{name}/nonce")),
                &json!({ "next_nonce": next }),
            )
            .await
            .map(|_| ())
    }
}

/// A signer mount as `sys/mounts` lists it, with its config (chain id, frozen and why).
#[derive(Debug, Clone)]
pub struct SignerMountInfo {
    pub mount: String,
    pub config: Value,
}

impl Vault {
    /// Every mount that runs the custody-signer plugin: external secrets mounts (a running
    /// sha256) whose `config` answers with the signer's `frozen` flag.
    pub async fn signer_mounts(&self, addr: &Addr) -> NodeResult<Vec<SignerMountInfo>> {
        let mounts = self.mounts(addr).await?;
        let mut out = Vec::new();
        let Some(entries) = mounts.as_object() else {
            return Ok(out);
        };
        for (path, entry) in entries {
            let external = entry["running_sha256"]
                .as_str()
                .is_some_and(|s| !s.is_empty());
            if !external {
                continue;
            }
            let mount = path.trim_end_matches('/');
            // Another plugin's mount answers its own way, or not at all: not a signer.
            if let Ok(config) = self.signer(mount).config(addr).await
                && config.get("frozen").is_some_and(Value::is_boolean)
            {
                out.push(SignerMountInfo {
                    mount: mount.to_owned(),
                    config,
                });
            }
        }
        Ok(out)
    }
}

impl SignerMount<'_> {
    /// Writes the restore fence `id`: a plugin that starts on storage holding it comes up
    /// frozen as restored (the running one ignores it).
    pub async fn write_fence(&self, addr: &Addr, id: &str, note: &str) -> NodeResult<Value> {
        Ok(data_of(
            self.vault
                .post(
                    addr,
                    &self.path(&format!("restore-fence/{id}")),
                    &json!({ "note": note }),
                )
                .await?,
        ))
    }

    /// Removes the restore fence `id` (nothing happens when it is gone already).
    pub async fn delete_fence(&self, addr: &Addr, id: &str) -> NodeResult<()> {
        self.vault
            .delete(addr, &self.path(&format!("restore-fence/{id}")))
            .await
            .map(|_| ())
    }

    /// The ids of the restore fences in the mount's storage.
    pub async fn fences(&self, addr: &Addr) -> NodeResult<Vec<String>> {
        self.keys(addr, "restore-fence").await
    }
}
