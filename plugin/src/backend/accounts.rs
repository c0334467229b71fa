//! `accounts/`, `accounts/NAME`, `accounts/NAME/nonce`: accounts whose key is generated inside
//! the plugin and never leaves it, with the constraints every signature is checked against.

use std::sync::Arc;

use serde_json::json;

use super::SignerBackend;
use super::fields::{Fields, field_err};
use super::model::{ACCOUNTS_PREFIX, Account, AccountRecord, NONCE_PREFIX, NonceRecord};
use super::reply::{HandlerResult, Reply, invalid, reply_text};
use crate::eth;

const CREATE_FIELDS: &[&str] = &[
    "allowed_to",
    "allowed_calls",
    "max_value_wei",
    "max_fee_per_gas_wei",
    "max_gas_price_wei",
    "deletable",
];

impl SignerBackend {
    /// The decoded account, from the cache or storage; `NotFound` when there is none.
    pub(super) async fn account(&self, name: &str) -> Result<Arc<Account>, Reply> {
        if let Some(a) = self.accounts.lock().ok().and_then(|m| m.get(name).cloned()) {
            return Ok(a);
        }
        let Some(bytes) = self
            .store()?
            .get(&format!("{ACCOUNTS_PREFIX}{name}"))
            .await?
        else {
            return Err(Reply::NotFound);
        };
        let record: AccountRecord = serde_json::from_slice(&bytes).map_err(|e| {
            Reply::Coded(
                500,
                format!("account {name}: the stored record is damaged: {e}"),
            )
        })?;
        let next = self.load_nonce(name).await?;
        let account =
            Arc::new(Account::decode(name, &record, next).map_err(|e| Reply::Coded(500, e))?);
        if let Ok(mut m) = self.accounts.lock() {
            return Ok(m.entry(name.to_owned()).or_insert(account).clone());
        }
        Ok(account)
    }

    /// The stored next nonce (0 for a new account).
    pub(super) async fn load_nonce(&self, name: &str) -> Result<u64, Reply> {
        match self.store()?.get(&format!("{NONCE_PREFIX}{name}")).await? {
            None => Ok(0),
            Some(bytes) => serde_json::from_slice::<NonceRecord>(&bytes)
                .map(|r| r.next_nonce)
                .map_err(|e| {
                    Reply::Coded(
                        500,
                        format!("account {name}: the stored nonce is damaged: {e}"),
                    )
                }),
        }
    }

    pub(super) async fn store_nonce(&self, name: &str, next: u64) -> Result<(), Reply> {
        let bytes = serde_json::to_vec(&NonceRecord { next_nonce: next })
            .map_err(|e| Reply::Coded(500, e.to_string()))?;
        self.store()?
            .put(&format!("{NONCE_PREFIX}{name}"), bytes)
            .await?;
        Ok(())
    }

    pub(super) async fn list_accounts(&self) -> HandlerResult {
        let mut keys: Vec<String> = self
            .store()?
            .list(ACCOUNTS_PREFIX)
            .await?
            .into_iter()
            .filter(|k| !k.ends_with('/'))
            .collect();
        keys.sort();
        Ok(Reply::Data(json!({ "keys": keys })))
    }

    pub(super) async fn read_account(&self, name: &str) -> HandlerResult {
        let account = self.account(name).await?;
        Ok(Reply::Data(account.view(account.nonce.next().await)))
    }

    pub(super) async fn create_account(&self, name: &str, f: &Fields) -> HandlerResult {
        f.only(CREATE_FIELDS)?;
        let allowed_to = f.list("allowed_to")?.unwrap_or_default();
        for a in &allowed_to {
            eth::parse_address("allowed_to", a).map_err(field_err)?;
        }
        let allowed_calls = f.list("allowed_calls")?.unwrap_or_default();
        for c in &allowed_calls {
            eth::parse_allowed_call(c)
                .map_err(|e| invalid(format!("field 'allowed_calls': {e}")))?;
        }
        let max_value_wei = match f.value("max_value_wei") {
            Some(v) => Some(
                eth::parse_u256("max_value_wei", v)
                    .map_err(field_err)?
                    .to_string(),
            ),
            None => None,
        };
        let max_fee_per_gas_wei = match f.value("max_fee_per_gas_wei") {
            Some(v) => Some(
                eth::parse_u128("max_fee_per_gas_wei", v)
                    .map_err(field_err)?
                    .to_string(),
            ),
            None => None,
        };
        let max_gas_price_wei = match f.value("max_gas_price_wei") {
            Some(v) => Some(
                eth::parse_u128("max_gas_price_wei", v)
                    .map_err(field_err)?
                    .to_string(),
            ),
            None => None,
        };
        let deletable = f.bool("deletable")?.unwrap_or(false);
        if self.account(name).await.is_ok() {
            return Err(invalid(format!(
                "account {name} exists; its key and constraints never change"
            )));
        }

        let key = eth::AccountKey::generate().map_err(|e| Reply::Coded(500, e))?;
        let record = AccountRecord {
            private_key: hex::encode(&key.to_bytes()[..]),
            address: eth::checksum(&key.address()),
            public_key: key.public_key_hex(),
            allowed_to,
            allowed_calls,
            max_value_wei,
            max_fee_per_gas_wei,
            max_gas_price_wei,
            deletable,
        };
        let bytes = zeroize::Zeroizing::new(
            serde_json::to_vec(&record).map_err(|e| Reply::Coded(500, e.to_string()))?,
        );
        // The nonce first: an account never exists without its counter.
        self.store_nonce(name, 0).await?;
        self.store()?
            .put(&format!("{ACCOUNTS_PREFIX}{name}"), bytes.to_vec())
            .await?;
        let account = Account::decode(name, &record, 0).map_err(|e| Reply::Coded(500, e))?;
        let view = account.view(0);
        if let Ok(mut m) = self.accounts.lock() {
            m.insert(name.to_owned(), Arc::new(account));
        }
        Ok(Reply::Data(view))
    }

    pub(super) async fn delete_account(&self, name: &str) -> HandlerResult {
        let account = match self.account(name).await {
            Ok(a) => a,
            Err(Reply::NotFound) => return Ok(Reply::NotFound),
            Err(e) => return Err(e),
        };
        if !account.deletable {
            return Err(invalid(format!(
                "account {name} was created with deletable=false; its key cannot be deleted"
            )));
        }
        self.store()?
            .delete(&format!("{ACCOUNTS_PREFIX}{name}"))
            .await?;
        self.store()?
            .delete(&format!("{NONCE_PREFIX}{name}"))
            .await?;
        if let Ok(mut m) = self.accounts.lock() {
            m.remove(name);
        }
        Ok(Reply::Empty)
    }

    pub(super) async fn read_nonce(&self, name: &str) -> HandlerResult {
        let account = self.account(name).await?;
        Ok(Reply::Data(
            json!({ "next_nonce": account.nonce.next().await }),
        ))
    }

    pub(super) async fn write_nonce(&self, name: &str, f: &Fields) -> HandlerResult {
        f.only(&["next_nonce", "force"])?;
        let account = self.account(name).await?;
        let wanted = match f.value("next_nonce") {
            Some(v) => eth::parse_u64("next_nonce", v).map_err(field_err)?,
            None => return Err(invalid("field 'next_nonce' is required")),
        };
        let force = f.bool("force")?.unwrap_or(false);
        let current = account
            .nonce
            .set(wanted, force, |v| async move {
                self.store_nonce(name, v).await.map_err(reply_text)
            })
            .await
            .map_err(invalid)?;
        Ok(Reply::Data(
            json!({ "next_nonce": wanted, "previous": current }),
        ))
    }
}
