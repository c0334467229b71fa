//! The plugin catalog and mounts: registering a secrets plugin by sha256, mounting it, pointing
//! a mount at a version and reloading it.

use reqwest::Method;
use serde_json::{Value, json};

use super::addr::Addr;
use super::client::{NodeResult, Vault, data_of};

impl Vault {
    /// The catalog's entries for the external secrets plugin `name` (every registered version).
    pub async fn secret_plugin_entries(&self, addr: &Addr, name: &str) -> NodeResult<Vec<Value>> {
        let v = self.get(addr, "sys/plugins/catalog").await?;
        Ok(data_of(v)["detailed"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["type"] == "secret" && e["name"] == name && e["builtin"] != true)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Registers the binary `command` (in every node's plugin directory) as `name`, by sha256.
    pub async fn register_secret_plugin(
        &self,
        addr: &Addr,
        name: &str,
        sha256: &str,
        command: &str,
    ) -> NodeResult<()> {
        self.post(
            addr,
            &format!("sys/plugins/catalog/secret/{name}"),
            &json!({ "sha256": sha256, "command": command }),
        )
        .await
        .map(|_| ())
    }

    /// Every mount the token can see (a ceremony token must see none).
    pub async fn mounts(&self, addr: &Addr) -> NodeResult<Value> {
        Ok(data_of(self.get(addr, "sys/mounts").await?))
    }

    /// The mount at `mount/`: its type, plugin version and running sha256.
    pub async fn mount_info(&self, addr: &Addr, mount: &str) -> NodeResult<Value> {
        Ok(data_of(
            self.get(addr, &format!("sys/mounts/{mount}")).await?,
        ))
    }

    /// The sha256 of the plugin binary the mount runs ("" for a builtin).
    pub async fn running_sha256(&self, addr: &Addr, mount: &str) -> NodeResult<String> {
        Ok(self.mount_info(addr, mount).await?["running_sha256"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    pub async fn enable_mount(
        &self,
        addr: &Addr,
        mount: &str,
        plugin: &str,
        version: &str,
    ) -> NodeResult<()> {
        self.post(
            addr,
            &format!("sys/mounts/{mount}"),
            &json!({ "type": plugin, "plugin_version": version }),
        )
        .await
        .map(|_| ())
    }

    pub async fn tune_plugin_version(
        &self,
        addr: &Addr,
        mount: &str,
        version: &str,
    ) -> NodeResult<()> {
        self.post(
            addr,
            &format!("sys/mounts/{mount}/tune"),
            &json!({ "plugin_version": version }),
        )
        .await
        .map(|_| ())
    }

    /// Restarts the mount's plugin (with the version the mount now names).
    pub async fn reload_mount(&self, addr: &Addr, mount: &str) -> NodeResult<()> {
        self.json(
            Method::PUT,
            addr,
            "sys/plugins/reload/backend",
            Some(&json!({ "mounts": [mount] })),
            None,
        )
        .await
        .map(|_| ())
    }
}
