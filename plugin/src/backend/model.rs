//! What the plugin keeps in the mount's storage, and its decoded, cached form.
//!
//! Storage keys: `config`; `accounts/NAME` (the key and constraints, written once);
//! `nonce/NAME` (the next nonce, written before every transaction signature);
//! `restore-fence/ID` (written just before a snapshot and removed right after: a copy restored
//! from that snapshot finds it when its plugin starts, and freezes).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use alloy_primitives::{Address, U256};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::nonce::NonceCounter;
use crate::eth;

pub const CONFIG_KEY: &str = "config";
pub const ACCOUNTS_PREFIX: &str = "accounts/";
pub const NONCE_PREFIX: &str = "nonce/";
pub const FENCE_PREFIX: &str = "restore-fence/";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Config {
    pub chain_id: Option<u64>,
    pub frozen: bool,
    /// Set when the plugin started on storage that held a restore fence: this cluster was
    /// restored from a snapshot. Signing stays frozen until every account's counter has been
    /// set since (the cutover's carry, or `custody wallet unfreeze`).
    #[serde(default)]
    pub restored: Option<Restored>,
}

/// What the plugin saw of the snapshot it was restored from, and which counters were set since.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Restored {
    /// The fences found, as `snapshot save` wrote them.
    pub fences: Vec<Fence>,
    /// When this plugin found them (Unix seconds).
    pub noticed_at: u64,
    /// The accounts whose counter was set since.
    #[serde(default)]
    pub counters_set: BTreeSet<String>,
}

/// A restore fence: written into the mount's storage just before a snapshot, removed right after.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Fence {
    pub id: String,
    /// When the plugin stored it (Unix seconds).
    pub written_at: u64,
    /// What wrote it (for example "custody snapshot save blue.snap").
    #[serde(default)]
    pub note: String,
}

impl Config {
    pub fn view(&self) -> Value {
        json!({
            "chain_id": self.chain_id,
            "frozen": self.frozen,
            "frozen_reason": match (self.frozen, &self.restored) {
                (false, _) => None,
                (true, Some(_)) => Some("restored"),
                (true, None) => Some("frozen"),
            },
            "restored": self.restored.as_ref().map(|r| json!({
                "fences": r.fences,
                "noticed_at": r.noticed_at,
                "counters_set": r.counters_set,
            })),
        })
    }
}

/// The stored account. The private key is hex inside OpenBao's encrypted storage; it never
/// leaves the plugin otherwise.
#[derive(Serialize, Deserialize)]
pub struct AccountRecord {
    pub private_key: String,
    pub address: String,
    pub public_key: String,
    #[serde(default)]
    pub allowed_to: Vec<String>,
    #[serde(default)]
    pub allowed_calls: Vec<String>,
    pub max_value_wei: Option<String>,
    pub max_fee_per_gas_wei: Option<String>,
    pub max_gas_price_wei: Option<String>,
    #[serde(default)]
    pub max_gas: Option<String>,
    #[serde(default)]
    pub allow_sign_message: bool,
    #[serde(default)]
    pub allow_sign_typed_data: bool,
    /// Signs transactions to anyone: only when asked for at creation, never from an empty list.
    #[serde(default)]
    pub unrestricted: bool,
    #[serde(default)]
    pub deletable: bool,
}

impl Drop for AccountRecord {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.private_key);
    }
}

#[derive(Serialize, Deserialize)]
pub struct NonceRecord {
    pub next_nonce: u64,
    /// The request ids bound to nonces below `next_nonce`, written with it (`requests`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<super::requests::Bound>,
}

/// An account ready to sign: decoded key, parsed constraints.
pub struct Account {
    pub name: String,
    pub key: eth::AccountKey,
    pub address: Address,
    pub public_key: String,
    pub allowed_to: Vec<Address>,
    pub allowed_calls: Vec<(Address, [u8; 4])>,
    pub allowed_calls_text: Vec<String>,
    pub max_value_wei: Option<U256>,
    pub max_fee_per_gas_wei: Option<u128>,
    pub max_gas_price_wei: Option<u128>,
    pub max_gas: Option<u64>,
    pub allow_sign_message: bool,
    pub allow_sign_typed_data: bool,
    pub unrestricted: bool,
    pub deletable: bool,
    /// Shared by every decoded copy of this account, so a reload never resets it.
    pub nonce: Arc<NonceCounter>,
    /// Storage changed under the cache (an invalidation): reload before the next use.
    pub stale: AtomicBool,
}

impl Account {
    pub fn decode(
        name: &str,
        record: &AccountRecord,
        nonce: Arc<NonceCounter>,
    ) -> Result<Account, String> {
        let raw = zeroize::Zeroizing::new(
            hex::decode(record.private_key.trim_start_matches("0x"))
                .map_err(|_| format!("account {name}: the stored key is damaged"))?,
        );
        let key = eth::AccountKey::from_bytes(&raw)?;
        let address = key.address();
        let allowed_to = record
            .allowed_to
            .iter()
            .map(|a| eth::parse_address("allowed_to", a))
            .collect::<Result<_, _>>()?;
        let allowed_calls = record
            .allowed_calls
            .iter()
            .map(|c| eth::parse_allowed_call(c))
            .collect::<Result<_, _>>()?;
        // The stored caps are decimal text; each is read back with its field's own parser.
        fn cap<T>(
            field: &str,
            v: &Option<String>,
            parse: fn(&str, &Value) -> Result<T, String>,
        ) -> Result<Option<T>, String> {
            v.as_ref()
                .map(|s| parse(field, &Value::String(s.clone())))
                .transpose()
        }
        Ok(Account {
            name: name.to_owned(),
            address,
            public_key: key.public_key_hex(),
            key,
            allowed_to,
            allowed_calls,
            allowed_calls_text: record.allowed_calls.clone(),
            max_value_wei: cap("max_value_wei", &record.max_value_wei, eth::parse_u256)?,
            max_fee_per_gas_wei: cap(
                "max_fee_per_gas_wei",
                &record.max_fee_per_gas_wei,
                eth::parse_u128,
            )?,
            max_gas_price_wei: cap(
                "max_gas_price_wei",
                &record.max_gas_price_wei,
                eth::parse_u128,
            )?,
            max_gas: cap("max_gas", &record.max_gas, eth::parse_u64)?,
            allow_sign_message: record.allow_sign_message,
            allow_sign_typed_data: record.allow_sign_typed_data,
            unrestricted: record.unrestricted,
            deletable: record.deletable,
            nonce,
            stale: AtomicBool::new(false),
        })
    }

    pub fn view(&self, next_nonce: u64) -> Value {
        json!({
            "name": self.name,
            "address": eth::checksum(&self.address),
            "public_key": self.public_key,
            "next_nonce": next_nonce,
            "allowed_to": self.allowed_to.iter().map(eth::checksum).collect::<Vec<_>>(),
            "allowed_calls": self.allowed_calls_text,
            "max_value_wei": self.max_value_wei.map(|v| v.to_string()),
            "max_fee_per_gas_wei": self.max_fee_per_gas_wei.map(|v| v.to_string()),
            "max_gas_price_wei": self.max_gas_price_wei.map(|v| v.to_string()),
            "max_gas": self.max_gas.map(|v| v.to_string()),
            "allow_sign_message": self.allow_sign_message,
            "allow_sign_typed_data": self.allow_sign_typed_data,
            "unrestricted": self.unrestricted,
            "deletable": self.deletable,
        })
    }

    /// Whether the account signs any transaction at all: it has an allow-list, or was created
    /// unrestricted.
    pub fn signs_transactions(&self) -> bool {
        self.unrestricted || !self.allowed_to.is_empty() || !self.allowed_calls.is_empty()
    }

    /// Every address the allow-lists name.
    pub fn allowed_contracts(&self) -> impl Iterator<Item = &Address> {
        self.allowed_to
            .iter()
            .chain(self.allowed_calls.iter().map(|(a, _)| a))
    }
}

/// Account names: 1–64 of `A-Z a-z 0-9 _ -`, starting with a letter or digit.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
