//! `accounts/`, `accounts/NAME`, `accounts/NAME/nonce`, `accounts/NAME/bind`: accounts whose key
//! is generated inside the plugin and never leaves it, with the constraints every signature is
//! checked against.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::json;

use super::SignerBackend;
use super::fields::{Fields, field_err};
use super::model::{ACCOUNTS_PREFIX, Account, AccountRecord, NONCE_PREFIX, NonceRecord};
use super::nonce::NonceCounter;
use super::reply::{HandlerResult, Reply, invalid, reply_text};
use super::requests::Bound;
use super::storage::Store;
use crate::eth;

const CREATE_FIELDS: &[&str] = &[
    "allowed_to",
    "allowed_calls",
    "unrestricted",
    "allow_sign_message",
    "allow_sign_typed_data",
    "max_value_wei",
    "max_fee_per_gas_wei",
    "max_gas_price_wei",
    "max_gas",
    "deletable",
];

/// The gas of the simplest transaction: a gas cap below it would refuse everything.
const MIN_GAS: u64 = 21_000;

impl SignerBackend {
    /// The decoded account, from the cache or storage; `NotFound` when there is none. A cached
    /// account that storage changed under is read again, keeping its nonce counter, which only
    /// ever rises to what storage says.
    pub(super) async fn account(&self, name: &str) -> Result<Arc<Account>, Reply> {
        let cached = self.accounts.lock().ok().and_then(|m| m.get(name).cloned());
        if let Some(a) = &cached
            && !a.stale.load(Ordering::SeqCst)
        {
            return Ok(a.clone());
        }
        let Some(record) = self.read_record(name).await? else {
            if let Ok(mut m) = self.accounts.lock() {
                m.remove(name);
            }
            return Err(Reply::NotFound);
        };
        let stored = self.load_nonce(name).await?;
        let counter = match &cached {
            Some(old) if eth::checksum(&old.address) == record.address => {
                old.nonce
                    .observe_stored(stored.next_nonce, stored.requests)
                    .await;
                old.nonce.clone()
            }
            _ => Arc::new(NonceCounter::new(stored.next_nonce, stored.requests)),
        };
        let account =
            Arc::new(Account::decode(name, &record, counter).map_err(|e| Reply::Coded(500, e))?);
        let Ok(mut m) = self.accounts.lock() else {
            return Ok(account);
        };
        if cached.is_some() {
            m.insert(name.to_owned(), account.clone());
            return Ok(account);
        }
        // Another request may have cached it first: one counter serves the account.
        Ok(m.entry(name.to_owned()).or_insert(account).clone())
    }

    async fn read_record(&self, name: &str) -> Result<Option<AccountRecord>, Reply> {
        let Some(bytes) = self
            .store()?
            .get(&format!("{ACCOUNTS_PREFIX}{name}"))
            .await?
        else {
            return Ok(None);
        };
        let bytes = zeroize::Zeroizing::new(bytes);
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Reply::Coded(
                500,
                format!("account {name}: the stored record is damaged: {e}"),
            )
        })
    }

    pub(super) async fn load_nonce(&self, name: &str) -> Result<NonceRecord, Reply> {
        match self.store()?.get(&format!("{NONCE_PREFIX}{name}")).await? {
            None => Ok(NonceRecord {
                next_nonce: 0,
                requests: Vec::new(),
            }),
            Some(bytes) => serde_json::from_slice::<NonceRecord>(&bytes).map_err(|e| {
                Reply::Coded(
                    500,
                    format!("account {name}: the stored nonce is damaged: {e}"),
                )
            }),
        }
    }

    pub(super) async fn store_nonce(
        &self,
        name: &str,
        next: u64,
        requests: Vec<Bound>,
    ) -> Result<(), Reply> {
        put_nonce(self.store()?, name, next, requests)
            .await
            .map_err(|e| Reply::Coded(503, format!("{e}; retry")))
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
        let mut record = parse_create(f)?;
        // One create at a time, deciding from storage, never from the cache: exactly one of
        // racing creates wins, and an existing account's key and nonce are never touched.
        let _one_create = self.create_lock.lock().await;
        if self.read_record(name).await?.is_some() {
            return Err(invalid(format!(
                "account {name} exists; its key and constraints never change (create another account)"
            )));
        }
        let key = eth::AccountKey::generate().map_err(|e| Reply::Coded(500, e))?;
        record.private_key = hex::encode(&key.to_bytes()[..]);
        record.address = eth::checksum(&key.address());
        record.public_key = key.public_key_hex();
        let bytes = zeroize::Zeroizing::new(
            serde_json::to_vec(&record).map_err(|e| Reply::Coded(500, e.to_string()))?,
        );
        // The nonce first: an account never exists without its counter.
        self.store_nonce(name, 0, Vec::new()).await?;
        self.store()?
            .put(&format!("{ACCOUNTS_PREFIX}{name}"), bytes.to_vec())
            .await?;
        let account = Account::decode(name, &record, Arc::new(NonceCounter::new(0, Vec::new())))
            .map_err(|e| Reply::Coded(500, e))?;
        let view = account.view(0);
        if let Ok(mut m) = self.accounts.lock() {
            m.insert(name.to_owned(), Arc::new(account));
        }
        Ok(Reply::Data(view))
    }

    /// Binds an account created without an allow-list (so it signs no transaction) to the calls
    /// it may make, once: the Authority is created first, its address given out, the contract
    /// deployed with it, and only then bound. A second bind to the same calls changes nothing;
    /// to other calls, or of an unrestricted account, it is refused.
    pub(super) async fn bind_account(&self, name: &str, f: &Fields) -> HandlerResult {
        f.only(&["allowed_calls"])?;
        let calls = f.list("allowed_calls")?.unwrap_or_default();
        if calls.is_empty() {
            return Err(invalid(
                "field 'allowed_calls': give the calls to bind the account to",
            ));
        }
        let mut wanted = Vec::new();
        for c in &calls {
            wanted.push(
                eth::parse_allowed_call(c)
                    .map_err(|e| invalid(format!("field 'allowed_calls': {e}")))?,
            );
        }
        // No signature in flight while the rules change, and no create or delete racing it.
        let _exclusive = self.gate.write().await;
        let _one_create = self.create_lock.lock().await;
        let Some(mut record) = self.read_record(name).await? else {
            return Ok(Reply::NotFound);
        };
        if record.unrestricted {
            return Err(invalid(format!(
                "account {name} was created unrestricted; only an account created without an \
                 allow-list can be bound"
            )));
        }
        if !record.allowed_to.is_empty() || !record.allowed_calls.is_empty() {
            let bound: Result<Vec<_>, _> = record
                .allowed_calls
                .iter()
                .map(|c| eth::parse_allowed_call(c))
                .collect();
            if record.allowed_to.is_empty() && bound.as_ref().ok() == Some(&wanted) {
                let account = self.account(name).await?;
                let mut view = account.view(account.nonce.next().await);
                view["already_bound"] = json!(true);
                return Ok(Reply::Data(view));
            }
            return Err(invalid(format!(
                "account {name} is already bound (allowed_to {:?}, allowed_calls {:?}); an \
                 allow-list never changes once set",
                record.allowed_to, record.allowed_calls
            )));
        }
        record.allowed_calls = calls;
        let bytes = zeroize::Zeroizing::new(
            serde_json::to_vec(&record).map_err(|e| Reply::Coded(500, e.to_string()))?,
        );
        self.store()?
            .put(&format!("{ACCOUNTS_PREFIX}{name}"), bytes.to_vec())
            .await?;
        let counter = match self.accounts.lock().ok().and_then(|m| m.get(name).cloned()) {
            Some(old) => old.nonce.clone(),
            None => {
                let stored = self.load_nonce(name).await?;
                Arc::new(NonceCounter::new(stored.next_nonce, stored.requests))
            }
        };
        let account =
            Arc::new(Account::decode(name, &record, counter).map_err(|e| Reply::Coded(500, e))?);
        let view = account.view(account.nonce.next().await);
        if let Ok(mut m) = self.accounts.lock() {
            m.insert(name.to_owned(), account);
        }
        Ok(Reply::Data(view))
    }

    pub(super) async fn delete_account(&self, name: &str) -> HandlerResult {
        // No signature in flight on a key being deleted, and no create racing the delete.
        let _exclusive = self.gate.write().await;
        let _one_create = self.create_lock.lock().await;
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
        let wanted = match f.value("next_nonce") {
            Some(v) => eth::parse_u64("next_nonce", v).map_err(field_err)?,
            None => return Err(invalid("field 'next_nonce' is required")),
        };
        let force = f.bool("force")?.unwrap_or(false);
        // Like a freeze, a counter change waits for every signature in progress.
        let _exclusive = self.gate.write().await;
        let mut cfg = self.config().await?;
        let account = self.account(name).await?;
        let current = account
            .nonce
            .set(wanted, force, cfg.frozen, |v, requests| async move {
                self.store_nonce(name, v, requests)
                    .await
                    .map_err(reply_text)
            })
            .await
            .map_err(invalid)?;
        // A restored mount counts the counters set since (it unfreezes once all are).
        if let Some(restored) = cfg.restored.as_mut()
            && restored.counters_set.insert(name.to_owned())
        {
            self.put_config(&cfg).await?;
        }
        Ok(Reply::Data(
            json!({ "next_nonce": wanted, "previous": current }),
        ))
    }
}

/// The record a create asks for, every field checked; the key is filled in by the caller.
fn parse_create(f: &Fields) -> Result<AccountRecord, Reply> {
    f.only(CREATE_FIELDS)?;
    let allowed_to = f.list("allowed_to")?.unwrap_or_default();
    for a in &allowed_to {
        eth::parse_address("allowed_to", a).map_err(field_err)?;
    }
    let allowed_calls = f.list("allowed_calls")?.unwrap_or_default();
    for c in &allowed_calls {
        eth::parse_allowed_call(c).map_err(|e| invalid(format!("field 'allowed_calls': {e}")))?;
    }
    let unrestricted = f.bool("unrestricted")?.unwrap_or(false);
    if unrestricted && !(allowed_to.is_empty() && allowed_calls.is_empty()) {
        return Err(invalid(
            "field 'unrestricted': an account with allowed_to or allowed_calls is restricted to them; \
             give unrestricted=true only without an allow-list",
        ));
    }
    let wei_cap = |field: &str| -> Result<Option<String>, Reply> {
        let Some(v) = f.value(field) else {
            return Ok(None);
        };
        let n = eth::parse_u128(field, v).map_err(field_err)?;
        if n == 0 {
            return Err(invalid(format!(
                "field '{field}': 0 would refuse every transaction"
            )));
        }
        Ok(Some(n.to_string()))
    };
    let max_fee_per_gas_wei = wei_cap("max_fee_per_gas_wei")?;
    let max_gas_price_wei = wei_cap("max_gas_price_wei")?;
    let max_value_wei = f
        .value("max_value_wei")
        .map(|v| eth::parse_u256("max_value_wei", v).map(|n| n.to_string()))
        .transpose()
        .map_err(field_err)?;
    let max_gas = match f.value("max_gas") {
        None => None,
        Some(v) => {
            let n = eth::parse_u64("max_gas", v).map_err(field_err)?;
            if n < MIN_GAS {
                return Err(invalid(format!(
                    "field 'max_gas': {n} is below {MIN_GAS}, the gas of the simplest transaction"
                )));
            }
            Some(n.to_string())
        }
    };
    Ok(AccountRecord {
        private_key: String::new(),
        address: String::new(),
        public_key: String::new(),
        allowed_to,
        allowed_calls,
        max_value_wei,
        max_fee_per_gas_wei,
        max_gas_price_wei,
        max_gas,
        allow_sign_message: f.bool("allow_sign_message")?.unwrap_or(false),
        allow_sign_typed_data: f.bool("allow_sign_typed_data")?.unwrap_or(false),
        unrestricted,
        deletable: f.bool("deletable")?.unwrap_or(false),
    })
}

/// Writes the stored counter of account `name`, with the request ids bound below it.
pub(super) async fn put_nonce(
    store: &Store,
    name: &str,
    next: u64,
    requests: Vec<Bound>,
) -> Result<(), String> {
    let bytes = serde_json::to_vec(&NonceRecord {
        next_nonce: next,
        requests,
    })
    .map_err(|e| e.to_string())?;
    store
        .put(&format!("{NONCE_PREFIX}{name}"), bytes)
        .await
        .map_err(|e| e.0)
}
