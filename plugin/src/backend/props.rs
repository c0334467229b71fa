//! Property tests of every request parser: whatever arrives never panics, every refusal is a
//! 4xx, and every valid request signs with a signature that recovers to the account's address.

use alloy_consensus::{SignableTransaction, Signed, TxEip1559, TxLegacy};
use alloy_primitives::Signature;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::fields::Fields;
use super::reply::Reply;
use super::sign::{TX_FIELDS, parse_tx};
use crate::eth::{self, AccountKey, Address, B256, Sig, TxFields, TxKind};

const CHAIN: u64 = 31337;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any JSON, a few levels deep, with the strings and numbers parsers trip on.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        tricky_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(tricky_string(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Strings near what the parsers accept: numbers in every base and sign, hex, addresses,
/// huge digit runs, control characters, unicode.
fn tricky_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9]{0,90}",
        "-?0[xX][0-9a-fA-F]{0,70}",
        "0x[0-9a-fA-F]{40}",
        "[ \t]?[0-9.eE+-]{1,12}[ \t]?",
        "[a-zA-Z_$][a-zA-Z0-9_$]{0,12}(\\[[0-9]{0,3}\\]){0,3}",
        Just("0x".to_owned()),
        Just("\u{0}\u{1b}[2J".to_owned()),
    ]
}

fn key() -> AccountKey {
    AccountKey::from_bytes(&[0x46; 32]).expect("a valid test key")
}

/// Refusals are 4xx: `Invalid` is a 400; a `Coded` reply here would be a server error.
fn is_client_error(r: &Reply) -> bool {
    match r {
        Reply::Invalid(_) => true,
        Reply::Coded(code, _) => (400..500).contains(code),
        _ => false,
    }
}

fn fields(map: Map<String, Value>) -> Fields {
    Fields::parse(&Value::Object(map).to_string()).expect("an object parses")
}

fn recovered(raw: &[u8], kind: TxKind) -> (Address, TxFields) {
    fn decode<T>(raw: &[u8]) -> (Signed<T>, Address)
    where
        T: SignableTransaction<Signature> + alloy_consensus::transaction::RlpEcdsaDecodableTx,
    {
        let signed = Signed::<T>::eip2718_decode(&mut &raw[..]).expect("our own encoding decodes");
        let sig = signed.signature();
        let sig = Sig {
            r: sig.r(),
            s: sig.s(),
            y_parity: sig.v(),
        };
        let from = sig
            .recover_address(&signed.signature_hash())
            .expect("the signature recovers");
        (signed, from)
    }
    match kind {
        TxKind::Legacy => {
            let (s, from) = decode::<TxLegacy>(raw);
            let t = s.tx();
            (
                from,
                TxFields {
                    kind,
                    chain_id: t.chain_id.unwrap_or_default(),
                    nonce: t.nonce,
                    to: t.to.to().copied().unwrap_or_default(),
                    value: t.value,
                    data: t.input.to_vec(),
                    gas: t.gas_limit,
                    gas_price: Some(t.gas_price),
                    max_fee_per_gas: None,
                    max_priority_fee_per_gas: None,
                },
            )
        }
        TxKind::Eip1559 => {
            let (s, from) = decode::<TxEip1559>(raw);
            let t = s.tx();
            (
                from,
                TxFields {
                    kind,
                    chain_id: t.chain_id,
                    nonce: t.nonce,
                    to: t.to.to().copied().unwrap_or_default(),
                    value: t.value,
                    data: t.input.to_vec(),
                    gas: t.gas_limit,
                    gas_price: None,
                    max_fee_per_gas: Some(t.max_fee_per_gas),
                    max_priority_fee_per_gas: Some(t.max_priority_fee_per_gas),
                },
            )
        }
    }
}

/// A number as a client may write it: a JSON integer where it fits, decimal or hex text.
fn written(n: u128, style: u8) -> Value {
    match style % 3 {
        0 if n <= u64::MAX as u128 => json!(n as u64),
        1 => json!(format!("{n:#x}")),
        _ => json!(n.to_string()),
    }
}

/// A valid transaction request and the fields it must sign.
fn valid_tx() -> impl Strategy<Value = (Map<String, Value>, TxFields)> {
    (
        any::<bool>(),
        any::<[u8; 20]>(),
        any::<u128>(),
        prop::collection::vec(any::<u8>(), 0..200),
        21_000u64..30_000_000,
        (any::<u128>(), any::<u128>()),
        prop::option::of(0u64..u64::MAX - 1),
        any::<u8>(),
    )
        .prop_map(|(legacy, to, value, data, gas, (a, b), nonce, style)| {
            let to = Address::from(to);
            let (max_fee, tip) = (a.max(b), a.min(b));
            let mut m = Map::new();
            m.insert("to".into(), json!(eth::checksum(&to)));
            m.insert("value".into(), written(value, style));
            m.insert("data".into(), json!(format!("0x{}", hex::encode(&data))));
            m.insert("gas".into(), written(gas as u128, style / 3));
            if let Some(n) = nonce {
                m.insert("nonce".into(), written(n as u128, style / 9));
            }
            let kind = if legacy {
                m.insert("type".into(), json!("legacy"));
                m.insert("gas_price".into(), written(max_fee, style / 27));
                TxKind::Legacy
            } else {
                m.insert("max_fee_per_gas".into(), written(max_fee, style / 27));
                m.insert("max_priority_fee_per_gas".into(), written(tip, style / 81));
                TxKind::Eip1559
            };
            let f = TxFields {
                kind,
                chain_id: CHAIN,
                nonce: nonce.unwrap_or(0),
                to,
                value: eth::U256::from(value),
                data,
                gas,
                gas_price: legacy.then_some(max_fee),
                max_fee_per_gas: (!legacy).then_some(max_fee),
                max_priority_fee_per_gas: (!legacy).then_some(tip),
            };
            (m, f)
        })
}

/// Valid EIP-712 typed data: one struct of random elementary members and values.
fn valid_typed_data() -> impl Strategy<Value = Value> {
    let member = prop_oneof![
        any::<u64>().prop_map(|n| ("uint256", json!(n.to_string()))),
        any::<i32>().prop_map(|n| ("int32", json!(n))),
        any::<bool>().prop_map(|b| ("bool", json!(b))),
        any::<String>().prop_map(|s| ("string", json!(s))),
        any::<[u8; 20]>().prop_map(|a| ("address", json!(eth::checksum(&Address::from(a))))),
        any::<[u8; 32]>().prop_map(|b| ("bytes32", json!(format!("0x{}", hex::encode(b))))),
        prop::collection::vec(any::<u8>(), 0..40)
            .prop_map(|b| ("bytes", json!(format!("0x{}", hex::encode(b))))),
    ];
    (
        "[A-Z][a-zA-Z0-9_]{0,10}",
        prop::collection::vec(member, 1..6),
        "[ -~]{0,20}",
    )
        .prop_filter("a struct name that is not an elementary type", |(name, _, _)| {
            name != "EIP712Domain"
        })
        .prop_map(|(name, members, app)| {
            let types: Vec<Value> = members
                .iter()
                .enumerate()
                .map(|(i, (ty, _))| json!({"name": format!("m{i}"), "type": ty}))
                .collect();
            let message: Map<String, Value> = members
                .into_iter()
                .enumerate()
                .map(|(i, (_, v))| (format!("m{i}"), v))
                .collect();
            json!({
                "types": {
                    "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}],
                    name.clone(): types,
                },
                "primaryType": name,
                "domain": {"name": app, "chainId": CHAIN},
                "message": message,
            })
        })
}

fn recovers_to(hash: &B256, rsv: &[u8; 65], key: &AccountKey) -> bool {
    let sig = Sig {
        r: eth::U256::from_be_slice(&rsv[..32]),
        s: eth::U256::from_be_slice(&rsv[32..64]),
        y_parity: rsv[64] == 28,
    };
    sig.recover_address(hash) == Ok(key.address())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn request_bodies_never_panic(body in prop_oneof![any::<String>(), any_json().prop_map(|v| v.to_string())]) {
        if let Err(r) = Fields::parse(&body) {
            prop_assert!(is_client_error(&r), "{r:?}");
        }
    }

    #[test]
    fn number_byte_and_address_parsers_never_panic(v in any_json(), s in tricky_string()) {
        let _ = eth::parse_u64("n", &v);
        let _ = eth::parse_u128("n", &v);
        let _ = eth::parse_u256("n", &v);
        let _ = eth::parse_bytes("data", &v);
        let _ = eth::parse_address("to", &s);
        let _ = eth::parse_allowed_call(&s);
        let _ = eth::parse_u256("n", &Value::String(s));
    }

    #[test]
    fn tx_requests_are_signed_or_refused_with_a_4xx(
        picks in prop::collection::vec((0..TX_FIELDS.len(), any_json()), 0..12)
    ) {
        let map: Map<String, Value> = picks
            .into_iter()
            .map(|(i, v)| (TX_FIELDS[i].to_owned(), v))
            .collect();
        if let Err(r) = parse_tx(&fields(map), CHAIN) {
            prop_assert!(is_client_error(&r), "{r:?}");
        }
    }

    #[test]
    fn mutated_valid_tx_requests_never_panic(
        (map, _) in valid_tx(),
        field in 0..TX_FIELDS.len(),
        v in any_json(),
        drop in any::<bool>(),
    ) {
        let mut map = map;
        let name = TX_FIELDS[field];
        if drop { map.remove(name); } else { map.insert(name.to_owned(), v); }
        match parse_tx(&fields(map), CHAIN) {
            Err(r) => prop_assert!(is_client_error(&r), "{r:?}"),
            Ok(ask) => { let _ = eth::sign_tx(&key(), &ask.into_fields(CHAIN, 0)); }
        }
    }

    #[test]
    fn every_valid_tx_signs_and_recovers_to_the_account((map, want) in valid_tx()) {
        let ask = parse_tx(&fields(map), CHAIN).map_err(|r| TestCaseError::fail(format!("{r:?}")))?;
        let nonce = ask.nonce.unwrap_or(0);
        let signed = eth::sign_tx(&key(), &ask.into_fields(CHAIN, nonce))
            .map_err(TestCaseError::fail)?;
        let (from, got) = recovered(&signed.raw, want.kind);
        prop_assert_eq!(from, key().address());
        prop_assert_eq!(got, want);
    }

    #[test]
    fn every_message_signs_and_recovers_to_the_account(msg in prop::collection::vec(any::<u8>(), 0..300)) {
        let (hash, rsv) = eth::sign_message(&key(), &msg).map_err(TestCaseError::fail)?;
        prop_assert_eq!(hash, eth::personal_hash(&msg));
        prop_assert!(recovers_to(&hash, &rsv, &key()));
    }

    #[test]
    fn exact_json_reads_what_serde_json_reads_and_keeps_every_literal(v in any_json(), digits in "-?[1-9][0-9]{0,80}") {
        // Any document, pretty or compact, reads as serde_json reads it (a float's last bits
        // as serde_json's own parse makes them).
        for text in [v.to_string(), serde_json::to_string_pretty(&v).unwrap_or_default()] {
            let exact = eth::exact::Exact::parse(&text).map_err(TestCaseError::fail)?;
            let theirs: Value = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(exact.to_value(), theirs);
        }
        // A number literal of any length, anywhere, keeps its digits.
        let text = format!(r#"{{"a": [{v}, {digits}], "k": "{digits}"}}"#);
        let exact = eth::exact::Exact::parse(&text).map_err(TestCaseError::fail)?;
        let Some(eth::exact::Exact::Array(items)) = exact.get("a") else {
            return Err(TestCaseError::fail("no array"));
        };
        prop_assert!(matches!(&items[1], eth::exact::Exact::Number(l, _) if *l == digits));
    }

    #[test]
    fn typed_data_of_any_shape_never_panics(v in any_json(), types in any_json(), primary in tricky_string()) {
        let _ = eth::typed_data_hash(&v);
        let doc = json!({"types": types, "primaryType": primary, "domain": {"chainId": CHAIN}, "message": v});
        let _ = eth::typed_data_checked(&doc);
    }

    #[test]
    fn mutated_typed_data_never_panics(doc in valid_typed_data(), path in 0usize..6, v in any_json()) {
        let mut doc = doc;
        let primary = doc["primaryType"].as_str().unwrap_or_default().to_owned();
        match path {
            0 => doc["message"]["m0"] = v,
            1 => doc["types"][primary.as_str()][0]["type"] = v,
            2 => doc["types"][primary.as_str()][0]["name"] = v,
            3 => doc["domain"]["chainId"] = v,
            4 => doc["primaryType"] = v,
            _ => doc["types"] = v,
        }
        let _ = eth::typed_data_checked(&doc);
    }

    #[test]
    fn every_valid_typed_data_signs_and_recovers_to_the_account(doc in valid_typed_data()) {
        let checked = eth::typed_data_checked(&doc).map_err(TestCaseError::fail)?;
        prop_assert_eq!(checked.chain_id, Some(eth::U256::from(CHAIN)));
        let (hash, rsv) = eth::sign_typed_data(&key(), &doc).map_err(TestCaseError::fail)?;
        prop_assert_eq!(hash, checked.hash);
        prop_assert!(recovers_to(&hash, &rsv, &key()));
    }
}
