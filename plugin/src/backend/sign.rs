//! The signing paths. Each signature: the gate held shared (so a freeze waits for it), the
//! config ready (chain id, not frozen), every constraint checked, and for a transaction the
//! nonce reserved and stored before the signature is made, so no nonce is ever signed twice.

use alloy_primitives::{Address, U256};
use serde_json::{Value, json};

use super::SignerBackend;
use super::config::ready_to_sign;
use super::fields::{Fields, field_err};
use super::model::Account;
use super::reply::{HandlerResult, Reply, invalid, reply_text};
use crate::eth::{self, TxFields, TxKind};

const TX_FIELDS: &[&str] = &[
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
];

/// A transaction as asked for, before its nonce is known.
struct TxAsk {
    kind: TxKind,
    to: Address,
    value: U256,
    data: Vec<u8>,
    gas: u64,
    gas_price: Option<u128>,
    max_fee_per_gas: Option<u128>,
    max_priority_fee_per_gas: Option<u128>,
    nonce: Option<u64>,
}

fn opt_u128(f: &Fields, name: &str) -> Result<Option<u128>, Reply> {
    f.value(name)
        .map(|v| eth::parse_u128(name, v).map_err(field_err))
        .transpose()
}

fn parse_tx(f: &Fields, chain_id: u64) -> Result<TxAsk, Reply> {
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
    })
}

/// The account's constraints, all of them, on this transaction.
fn check_constraints(a: &Account, tx: &TxAsk) -> Result<(), Reply> {
    let restricted = !a.allowed_to.is_empty() || !a.allowed_calls.is_empty();
    if restricted {
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
            return Err(Reply::Coded(
                403,
                format!(
                    "account {}: {what} is not allowed (allowed_to / allowed_calls); nothing was signed",
                    a.name
                ),
            ));
        }
    }
    let limit = |what: &str, got: String, max: String| {
        Reply::Coded(
            403,
            format!(
                "account {}: {what} {got} is above its limit {max}; nothing was signed",
                a.name
            ),
        )
    };
    if let Some(max) = a.max_value_wei
        && tx.value > max
    {
        return Err(limit("value", tx.value.to_string(), max.to_string()));
    }
    if let (Some(max), Some(fee)) = (a.max_fee_per_gas_wei, tx.max_fee_per_gas)
        && fee > max
    {
        return Err(limit("max_fee_per_gas", fee.to_string(), max.to_string()));
    }
    if let (Some(max), Some(price)) = (a.max_gas_price_wei, tx.gas_price)
        && price > max
    {
        return Err(limit("gas_price", price.to_string(), max.to_string()));
    }
    Ok(())
}

fn signature_hex(sig: &[u8; 65]) -> String {
    format!("0x{}", hex::encode(sig))
}

impl SignerBackend {
    pub(super) async fn sign_tx(&self, name: &str, f: &Fields) -> HandlerResult {
        let _shared = self.gate.read().await;
        let chain_id = ready_to_sign(&self.config().await?)?;
        let account = self.account(name).await?;
        let ask = parse_tx(f, chain_id)?;
        check_constraints(&account, &ask)?;

        let nonce = account.nonce.reserve(ask.nonce).await.map_err(invalid)?;
        // Durable before the signature exists: a crash after this loses a nonce, never reuses one.
        account
            .nonce
            .make_durable(nonce, |v| async move {
                self.store_nonce(name, v).await.map_err(reply_text)
            })
            .await
            .map_err(|e| {
                Reply::Coded(
                    500,
                    format!("storing the nonce counter failed; nothing was signed: {e}"),
                )
            })?;
        let fields = TxFields {
            kind: ask.kind,
            chain_id,
            nonce,
            to: ask.to,
            value: ask.value,
            data: ask.data,
            gas: ask.gas,
            gas_price: ask.gas_price,
            max_fee_per_gas: ask.max_fee_per_gas,
            max_priority_fee_per_gas: ask.max_priority_fee_per_gas,
        };
        let signed = eth::sign_tx(&account.key, &fields).map_err(|e| Reply::Coded(500, e))?;
        Ok(Reply::Data(json!({
            "signed_tx": format!("0x{}", hex::encode(&signed.raw)),
            "tx_hash": format!("{:#x}", signed.hash),
            "from": eth::checksum(&account.address),
            "nonce": nonce,
            "chain_id": chain_id,
            "type": match ask.kind { TxKind::Legacy => "legacy", TxKind::Eip1559 => "eip1559" },
        })))
    }

    pub(super) async fn sign_message(&self, name: &str, f: &Fields) -> HandlerResult {
        f.only(&["message", "encoding"])?;
        let _shared = self.gate.read().await;
        ready_to_sign(&self.config().await?)?;
        let account = self.account(name).await?;
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
        ready_to_sign(&self.config().await?)?;
        let account = self.account(name).await?;
        let typed = match f.value("typed_data") {
            Some(Value::String(s)) => serde_json::from_str::<Value>(s)
                .map_err(|e| invalid(format!("field 'typed_data' is not JSON: {e}")))?,
            Some(v @ Value::Object(_)) => v.clone(),
            Some(_) => return Err(invalid("field 'typed_data' must be an EIP-712 JSON object")),
            None => return Err(invalid("field 'typed_data' is required")),
        };
        let (hash, sig) = eth::sign_typed_data(&account.key, &typed).map_err(field_err)?;
        Ok(Reply::Data(json!({
            "signature": signature_hex(&sig),
            "hash": format!("{hash:#x}"),
            "address": eth::checksum(&account.address),
        })))
    }
}
