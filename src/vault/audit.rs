//! Audit devices: the ones a node has enabled (`sys/audit`), a value hashed with a device's
//! salt (`sys/audit-hash`), and the signer mount's fields logged in clear (`sys/mounts/M/tune`).
//!
//! OpenBao declares audit devices in each server's configuration only; `sys/audit` refuses to
//! enable one through the API. A device's options come back as the server holds them (for the
//! file device, `file_path` and any `mode`, `format`, `prefix`, `hmac_accessor`, …): no secret.

use serde::Serialize;
use serde_json::{Value, json};

use super::addr::Addr;
use super::client::{NodeResult, Vault, data_of};

/// One enabled audit device as `sys/audit` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AuditDevice {
    /// The device's path, with its trailing slash (`file/`).
    pub path: String,
    /// `file`, `socket` or `syslog`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub local: bool,
    /// Every option, as strings, sorted by name.
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
}

impl AuditDevice {
    /// Where a file device writes (`file_path`, or the older `path`), if it is one.
    pub fn file_path(&self) -> Option<&str> {
        if self.kind != "file" {
            return None;
        }
        self.options
            .get("file_path")
            .or_else(|| self.options.get("path"))
            .map(String::as_str)
    }
}

/// The request and response fields of a signature that the signer mount logs in clear, so that
/// an audit log accounts for every signature: the account is in the request's path (never
/// hashed); `to`, `nonce`, `chain_id` in the request; `tx_hash`, `nonce`, `from` in the response.
pub const SIGNER_CLEAR_REQUEST_KEYS: &[&str] = &["to", "nonce", "chain_id"];
/// `sys/audit-hash` requests in flight at once in [`Vault::audit_hashes`].
pub const AUDIT_HASH_LANES: usize = 16;

pub const SIGNER_CLEAR_RESPONSE_KEYS: &[&str] = &["tx_hash", "nonce", "from", "chain_id"];

impl Vault {
    /// The audit devices this node has enabled, sorted by path (needs `read` on `sys/audit`,
    /// which takes `sudo`).
    pub async fn audit_devices(&self, addr: &Addr) -> NodeResult<Vec<AuditDevice>> {
        let data = data_of(self.get(addr, "sys/audit").await?);
        let mut devices = Vec::new();
        if let Value::Object(m) = data {
            for (path, d) in m {
                let mut d: AuditDevice = serde_json::from_value(normalize(d))
                    .map_err(super::client::NodeError::encoding)?;
                if d.path.is_empty() {
                    d.path = path;
                }
                devices.push(d);
            }
        }
        devices.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(devices)
    }

    /// `input` hashed as the device at `path` hashes values in its log (`hmac-sha256:…`).
    pub async fn audit_hash(&self, addr: &Addr, device: &str, input: &str) -> NodeResult<String> {
        let device = device.trim_end_matches('/');
        let v = self
            .post(
                addr,
                &format!("sys/audit-hash/{device}"),
                &json!({ "input": input }),
            )
            .await?;
        Ok(data_of(v)["hash"].as_str().unwrap_or_default().to_owned())
    }

    /// Each of `inputs` hashed by the device at `path`, in order, [`AUDIT_HASH_LANES`] requests
    /// in flight at once.
    pub async fn audit_hashes(
        &self,
        addr: &Addr,
        device: &str,
        inputs: std::sync::Arc<Vec<String>>,
    ) -> NodeResult<Vec<String>> {
        let mut set = tokio::task::JoinSet::new();
        for lane in 0..AUDIT_HASH_LANES.min(inputs.len()) {
            let (vault, addr, device, inputs) = (
                self.clone(),
                addr.clone(),
                device.to_owned(),
                inputs.clone(),
            );
            set.spawn(async move {
                let mut out = Vec::new();
                for i in (lane..inputs.len()).step_by(AUDIT_HASH_LANES) {
                    out.push((i, vault.audit_hash(&addr, &device, &inputs[i]).await?));
                }
                Ok::<_, super::client::NodeError>(out)
            });
        }
        let mut hashes = vec![String::new(); inputs.len()];
        while let Some(joined) = set.join_next().await {
            let lane = joined.map_err(|e| {
                super::client::NodeError::Decode(format!("an audit-hash task failed: {e}"))
            })??;
            for (i, h) in lane {
                hashes[i] = h;
            }
        }
        Ok(hashes)
    }

    /// The mount's tuning: among it `audit_non_hmac_request_keys` and
    /// `audit_non_hmac_response_keys`.
    pub async fn mount_tune(&self, addr: &Addr, mount: &str) -> NodeResult<Value> {
        Ok(data_of(
            self.get(addr, &format!("sys/mounts/{mount}/tune")).await?,
        ))
    }

    /// Tunes `mount` to log the signer's accounting fields in clear (adding to what it had).
    pub async fn tune_signer_audit_keys(&self, addr: &Addr, mount: &str) -> NodeResult<()> {
        let now = self.mount_tune(addr, mount).await?;
        let merged = |field: &str, want: &[&str]| {
            let mut keys: Vec<String> = strings(&now[field]);
            for k in want {
                if !keys.iter().any(|x| x == k) {
                    keys.push((*k).to_owned());
                }
            }
            keys
        };
        self.post(
            addr,
            &format!("sys/mounts/{mount}/tune"),
            &json!({
                "audit_non_hmac_request_keys": merged("audit_non_hmac_request_keys", SIGNER_CLEAR_REQUEST_KEYS),
                "audit_non_hmac_response_keys": merged("audit_non_hmac_response_keys", SIGNER_CLEAR_RESPONSE_KEYS),
            }),
        )
        .await
        .map(|_| ())
    }
}

/// The accounting fields `tune` (a mount's tuning) does not log in clear: empty when it is
/// tuned as [`Vault::tune_signer_audit_keys`] tunes it.
pub fn signer_keys_hashed(tune: &Value) -> Vec<String> {
    let missing = |field: &str, want: &[&str]| {
        let have = strings(&tune[field]);
        want.iter()
            .filter(|k| !have.iter().any(|h| h == *k))
            .map(|k| format!("{} {k}", field.trim_start_matches("audit_non_hmac_")))
            .collect::<Vec<_>>()
    };
    let mut out = missing("audit_non_hmac_request_keys", SIGNER_CLEAR_REQUEST_KEYS);
    out.extend(missing(
        "audit_non_hmac_response_keys",
        SIGNER_CLEAR_RESPONSE_KEYS,
    ));
    out
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Options as strings (the server may send a number or a boolean for one).
fn normalize(mut d: Value) -> Value {
    if let Some(Value::Object(opts)) = d.get_mut("options") {
        for v in opts.values_mut() {
            let text = match &*v {
                Value::String(_) => continue,
                Value::Null => String::new(),
                other => other.to_string(),
            };
            *v = Value::String(text);
        }
    } else if let Some(o) = d.as_object_mut() {
        o.insert("options".into(), json!({}));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tuned_mount_hashes_none_of_the_accounting_fields() {
        let tune = json!({
            "audit_non_hmac_request_keys": ["to", "nonce", "chain_id"],
            "audit_non_hmac_response_keys": ["tx_hash", "nonce", "from", "chain_id"],
        });
        assert!(signer_keys_hashed(&tune).is_empty());
        let half = json!({ "audit_non_hmac_request_keys": ["to"] });
        let missing = signer_keys_hashed(&half);
        assert!(
            missing.contains(&"request_keys nonce".to_owned()),
            "{missing:?}"
        );
        assert!(
            missing.contains(&"response_keys tx_hash".to_owned()),
            "{missing:?}"
        );
    }

    #[test]
    fn options_are_read_as_strings() {
        let d: AuditDevice = serde_json::from_value(normalize(json!({
            "type": "file", "path": "file/", "options": { "file_path": "audit.log", "mode": 384 }
        })))
        .unwrap();
        assert_eq!(d.file_path(), Some("audit.log"));
        assert_eq!(d.options["mode"], "384");
    }
}
