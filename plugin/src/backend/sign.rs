//! The signing paths. Each signature: the gate held shared (so a freeze waits for it), the
//! config ready (chain id, not frozen), every constraint checked, and for a transaction the
//! nonce reserved and stored before the signature is made, so no nonce is ever signed twice.

use std::sync::Arc;

use alloy_primitives::{Address, U256};
use serde_json::{Value, json};

use super::SignerBackend;
use super::accounts::put_nonce;
use super::config::ready_to_sign;
use super::fields::{Fields, field_err};
use super::model::Account;
use super::reply::{HandlerResult, Reply, invalid};
use super::requests::{Binding, valid_id};
use super::storage::Store;
use crate::eth::{self, CheckedTypedData, TxFields, TxKind};

pub(super) const TX_FIELDS: &[&str] = &[
    "type",
    "to",
    "value",
    "data",
    "gas",
    "gas_price",
    "max_fee_per_gas",
    "max_priority_fee_per_gas",
    "nonce",
    "chain_id",
    "request_id",
];

/// A transaction as asked for, before its nonce is known.
pub(super) struct TxAsk {
    kind: TxKind,
    to: Address,
    value: U256,
    data: Vec<u8>,
    gas: u64,
    gas_price: Option<u128>,
    max_fee_per_gas: Option<u128>,
    max_priority_fee_per_gas: Option<u128>,
    pub(super) nonce: Option<u64>,
    /// The client's name for this transaction: its retries get the same nonce (`requests`).
    pub(super) request_id: Option<String>,
}

impl TxAsk {
    /// The request id bound to a digest of everything asked for (the nonce too, if asked).
    fn binding(&self, chain_id: u64) -> Option<Binding> {
        let id = self.request_id.clone()?;
        let text = format!(
            "{}|{chain_id}|{:#x}|{}|0x{}|{}|{:?}|{:?}|{:?}|{:?}",
            kind_name(self.kind),
            self.to,
            self.value,
            hex::encode(&self.data),
            self.gas,
            self.gas_price,
            self.max_fee_per_gas,
            self.max_priority_fee_per_gas,
            self.nonce,
        );
        Some(Binding {
            id,
            digest: format!("{:x}", eth::keccak256(text.as_bytes())),
        })
    }

    pub(super) fn into_fields(self, chain_id: u64, nonce: u64) -> TxFields {
        TxFields {
            kind: self.kind,
            chain_id,
            nonce,
            to: self.to,
            value: self.value,
            data: self.data,
            gas: self.gas,
            gas_price: self.gas_price,
            max_fee_per_gas: self.max_fee_per_gas,
            max_priority_fee_per_gas: self.max_priority_fee_per_gas,
        }
    }
}

fn kind_name(kind: TxKind) -> &'static str {
    match kind {
        TxKind::Legacy => "legacy",
        TxKind::Eip1559 => "eip1559",
    }
}

fn opt_u128(f: &Fields, name: &str) -> Result<Option<u128>, Reply> {
    f.value(name)
        .map(|v| eth::parse_u128(name, v).map_err(field_err))
        .transpose()
}

pub(super) fn parse_tx(f: &Fields, chain_id: u64) -> Result<TxAsk, Reply> {
    f.only(TX_FIELDS)?;
    let kind = match f.str("type")?.unwrap_or("eip1559") {
        "eip1559" => TxKind::Eip1559,
        "legacy" => TxKind::Legacy,
        other => {
            return Err(invalid(format!(
                "field 'type': {other:?} is not eip1559 or legacy"
            )));
        }
    };
    let to = match f.str("to")? {
        Some(s) if !s.is_empty() => eth::parse_address("to", s).map_err(field_err)?,
        _ => {
            return Err(invalid(
                "field 'to' is required: an empty address is never taken as the zero address (contract creation is not signed)",
            ));
        }
    };
    let value = f
        .value("value")
        .map(|v| eth::parse_u256("value", v))
        .transpose()
        .map_err(field_err)?
        .unwrap_or(U256::ZERO);
    let data = f
        .value("data")
        .map(|v| eth::parse_bytes("data", v))
        .transpose()
        .map_err(field_err)?
        .unwrap_or_default();
    let gas = match f.value("gas") {
        Some(v) => eth::parse_u64("gas", v).map_err(field_err)?,
        None => return Err(invalid("field 'gas' is required")),
    };
    if let Some(v) = f.value("chain_id") {
        let asked = eth::parse_u64("chain_id", v).map_err(field_err)?;
        if asked != chain_id {
            return Err(invalid(format!(
                "field 'chain_id': {asked} is not this mount's chain id {chain_id}"
            )));
        }
    }
    let nonce = f
        .value("nonce")
        .map(|v| eth::parse_u64("nonce", v))
        .transpose()
        .map_err(field_err)?;
    let request_id = match f.str("request_id")? {
        None => None,
        Some(id) if valid_id(id) => Some(id.to_owned()),
        Some(id) => {
            return Err(invalid(format!(
                "field 'request_id': {id:?} is not 1 to 128 of A-Z a-z 0-9 - _ . :"
            )));
        }
    };
    let gas_price = opt_u128(f, "gas_price")?;
    let max_fee_per_gas = opt_u128(f, "max_fee_per_gas")?;
    let max_priority_fee_per_gas = opt_u128(f, "max_priority_fee_per_gas")?;
    match kind {
        TxKind::Legacy => {
            if gas_price.is_none() {
                return Err(invalid(
                    "field 'gas_price' is required for a legacy transaction",
                ));
            }
            if max_fee_per_gas.is_some() || max_priority_fee_per_gas.is_some() {
                return Err(invalid(
                    "a legacy transaction takes gas_price, not max_fee_per_gas/max_priority_fee_per_gas",
                ));
            }
        }
        TxKind::Eip1559 => {
            if gas_price.is_some() {
                return Err(invalid(
                    "an eip1559 transaction takes max_fee_per_gas and max_priority_fee_per_gas, not gas_price",
                ));
            }
            match (max_fee_per_gas, max_priority_fee_per_gas) {
                (Some(max), Some(tip)) if tip > max => {
                    return Err(invalid(format!(
                        "max_priority_fee_per_gas {tip} is above max_fee_per_gas {max}"
                    )));
                }
                (Some(_), Some(_)) => {}
                _ => {
                    return Err(invalid(
                        "fields 'max_fee_per_gas' and 'max_priority_fee_per_gas' are required for an eip1559 transaction",
                    ));
                }
            }
        }
    }
    Ok(TxAsk {
        kind,
        to,
        value,
        data,
        gas,
        gas_price,
        max_fee_per_gas,
        max_priority_fee_per_gas,
        nonce,
        request_id,
    })
}

/// A request the account's rules refuse (403).
fn refused(a: &Account, what: impl std::fmt::Display) -> Reply {
    Reply::Coded(
        403,
        format!("account {}: {what}; nothing was signed", a.name),
    )
}

/// The account's constraints, all of them, on this transaction.
fn check_constraints(a: &Account, tx: &TxAsk) -> Result<(), Reply> {
    let refuse = |what: String| refused(a, what);
    if !a.signs_transactions() {
        return Err(refuse(
            "it has no allow-list (allowed_to / allowed_calls) and was not created unrestricted, \
             so it signs no transaction until it is bound to its contract"
                .into(),
        ));
    }
    if !a.unrestricted {
        let to_ok = a.allowed_to.contains(&tx.to);
        let call_ok = tx.data.len() >= 4
            && a.allowed_calls
                .iter()
                .any(|(c, sel)| *c == tx.to && tx.data[..4] == sel[..]);
        if !to_ok && !call_ok {
            let what = if tx.data.len() >= 4 {
                format!(
                    "a call of 0x{} on {}",
                    hex::encode(&tx.data[..4]),
                    eth::checksum(&tx.to)
                )
            } else {
                format!("a transaction to {}", eth::checksum(&tx.to))
            };
            return Err(refuse(format!(
                "{what} is not allowed (allowed_to / allowed_calls)"
            )));
        }
    }
    let limit = |field: &str, got: String, cap: &str, max: String| {
        refuse(format!("field '{field}': {got} is above {cap} {max}"))
    };
    if let Some(max) = a.max_value_wei
        && tx.value > max
    {
        return Err(limit(
            "value",
            tx.value.to_string(),
            "max_value_wei",
            max.to_string(),
        ));
    }
    if let Some(max) = a.max_gas
        && tx.gas > max
    {
        return Err(limit("gas", tx.gas.to_string(), "max_gas", max.to_string()));
    }
    // What the account may pay per gas, whatever the type: max_fee_per_gas of EIP-1559 (the
    // tip is below it, checked when parsed) and gas_price of legacy.
    let (fee_field, fee) = match tx.kind {
        TxKind::Legacy => ("gas_price", tx.gas_price),
        TxKind::Eip1559 => ("max_fee_per_gas", tx.max_fee_per_gas),
    };
    if let (Some(max), Some(fee)) = (a.max_fee_per_gas_wei, fee)
        && fee > max
    {
        return Err(limit(
            fee_field,
            fee.to_string(),
            "max_fee_per_gas_wei",
            max.to_string(),
        ));
    }
    if let (Some(max), Some(price)) = (a.max_gas_price_wei, tx.gas_price)
        && price > max
    {
        return Err(limit(
            "gas_price",
            price.to_string(),
            "max_gas_price_wei",
            max.to_string(),
        ));
    }
    Ok(())
}

/// Reserves the nonce, stores the counter past it, and signs. Run as a task of its own, so a
/// request dropped half-way (a client gone, a cancelled call) still finishes or gives its
/// reservation back, never leaving a reserved nonce unaccounted for.
async fn sign_with_nonce(
    account: Arc<Account>,
    store: Store,
    ask: TxAsk,
    chain_id: u64,
) -> HandlerResult {
    let binding = ask.binding(chain_id);
    let reservation = account
        .nonce
        .reserve(ask.nonce, binding)
        .await
        .map_err(invalid)?;
    // Durable before the signature exists (with the request id bound to the nonce): a crash
    // after this loses a nonce until the request is retried, never reuses one.
    account
        .nonce
        .make_durable(&reservation, |v, requests| {
            put_nonce(&store, &account.name, v, requests)
        })
        .await
        .map_err(|e| {
            Reply::Coded(
                503,
                format!("storing the nonce counter failed; nothing was signed, retry: {e}"),
            )
        })?;
    let nonce = reservation.nonce;
    let kind = ask.kind;
    let request_id = ask.request_id.clone();
    let fields = ask.into_fields(chain_id, nonce);
    let signed = eth::sign_tx(&account.key, &fields).map_err(|e| Reply::Coded(500, e))?;
    let mut data = json!({
        "signed_tx": format!("0x{}", hex::encode(&signed.raw)),
        "tx_hash": format!("{:#x}", signed.hash),
        "from": eth::checksum(&account.address),
        "nonce": nonce,
        "chain_id": chain_id,
        "type": kind_name(kind),
    });
    if let Some(id) = request_id {
        data["request_id"] = json!(id);
        // The identical transaction an earlier attempt of this request was signed as.
        data["repeated"] = json!(reservation.repeated);
    }
    Ok(Reply::Data(data))
}

/// The rules typed data must meet beyond its form: the mount's chain, and when the account has
/// an allow-list, a verifying contract on it (an account with no allow-list signs typed data
/// only when it was created unrestricted: [`SignerBackend::sign_typed_data`]).
fn check_typed_domain(a: &Account, typed: &CheckedTypedData, chain_id: u64) -> Result<(), Reply> {
    match typed.chain_id {
        None => {
            return Err(invalid(format!(
                "typed data field 'domain.chainId' is required: this mount signs for chain {chain_id} only"
            )));
        }
        Some(id) if id != U256::from(chain_id) => {
            return Err(invalid(format!(
                "typed data field 'domain.chainId': {id} is not this mount's chain id {chain_id}"
            )));
        }
        Some(_) => {}
    }
    if a.allowed_to.is_empty() && a.allowed_calls.is_empty() {
        return Ok(());
    }
    let Some(contract) = typed.verifying_contract else {
        return Err(invalid(format!(
            "typed data field 'domain.verifyingContract' is required: account {} signs only for \
             the contracts of its allow-list",
            a.name
        )));
    };
    if !a.allowed_contracts().any(|c| *c == contract) {
        return Err(refused(
            a,
            format_args!(
                "typed data field 'domain.verifyingContract' {} is not on its allow-list \
                 (allowed_to / allowed_calls)",
                eth::checksum(&contract)
            ),
        ));
    }
    Ok(())
}

fn not_allowed(a: &Account, path: &str, field: &str) -> Reply {
    Reply::Coded(
        403,
        format!(
            "account {} does not allow {path} (it was created without {field}=true); nothing was signed",
            a.name
        ),
    )
}

fn signature_hex(sig: &[u8; 65]) -> String {
    format!("0x{}", hex::encode(sig))
}

impl SignerBackend {
    pub(super) async fn sign_tx(&self, name: &str, f: &Fields) -> HandlerResult {
        let shared = self.gate.clone().read_owned().await;
        let chain_id = ready_to_sign(&self.config().await?)?;
        let account = self.account(name).await?;
        let ask = parse_tx(f, chain_id)?;
        check_constraints(&account, &ask)?;
        let store = self.store()?.clone();
        tokio::spawn(async move {
            let _shared = shared;
            sign_with_nonce(account, store, ask, chain_id).await
        })
        .await
        .map_err(|e| Reply::Coded(500, format!("the signature task failed: {e}")))?
    }

    pub(super) async fn sign_message(&self, name: &str, f: &Fields) -> HandlerResult {
        f.only(&["message", "encoding"])?;
        let _shared = self.gate.read().await;
        ready_to_sign(&self.config().await?)?;
        let account = self.account(name).await?;
        if !account.allow_sign_message {
            return Err(not_allowed(&account, "sign-message", "allow_sign_message"));
        }
        let message = f
            .str("message")?
            .ok_or_else(|| invalid("field 'message' is required"))?;
        let bytes = match f.str("encoding")?.unwrap_or("utf8") {
            "utf8" => message.as_bytes().to_vec(),
            "hex" => eth::parse_bytes("message", &Value::String(message.to_owned()))
                .map_err(field_err)?,
            other => {
                return Err(invalid(format!(
                    "field 'encoding': {other:?} is not utf8 or hex"
                )));
            }
        };
        let (hash, sig) =
            eth::sign_message(&account.key, &bytes).map_err(|e| Reply::Coded(500, e))?;
        Ok(Reply::Data(json!({
            "signature": signature_hex(&sig),
            "hash": format!("{hash:#x}"),
            "address": eth::checksum(&account.address),
        })))
    }

    pub(super) async fn sign_typed_data(&self, name: &str, f: &Fields) -> HandlerResult {
        f.only(&["typed_data"])?;
        let _shared = self.gate.read().await;
        let chain_id = ready_to_sign(&self.config().await?)?;
        let account = self.account(name).await?;
        if !account.allow_sign_typed_data {
            return Err(not_allowed(
                &account,
                "sign-typed-data",
                "allow_sign_typed_data",
            ));
        }
        if !account.signs_transactions() {
            return Err(refused(
                &account,
                "it has no allow-list (allowed_to / allowed_calls) and was not created \
                 unrestricted, so it signs no typed data until it is bound to its contract",
            ));
        }
        let checked = match f.value("typed_data") {
            Some(Value::String(s)) => eth::typed_data_checked_text(s),
            Some(Value::Object(_)) => match f.exact("typed_data")? {
                Some(exact) => eth::typed_data_checked_exact(&exact),
                None => return Err(invalid("field 'typed_data' is required")),
            },
            Some(_) => return Err(invalid("field 'typed_data' must be an EIP-712 JSON object")),
            None => return Err(invalid("field 'typed_data' is required")),
        }
        .map_err(field_err)?;
        check_typed_domain(&account, &checked, chain_id)?;
        let hash = checked.hash;
        let sig = account
            .key
            .sign_hash(&hash)
            .map_err(|e| Reply::Coded(500, e))?
            .to_rsv();
        Ok(Reply::Data(json!({
            "signature": signature_hex(&sig),
            "hash": format!("{hash:#x}"),
            "address": eth::checksum(&account.address),
        })))
    }
}
