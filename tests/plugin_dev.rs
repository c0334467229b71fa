//! The custody-signer plugin inside a real OpenBao 2.7.2 dev server (`-dev-plugin-dir`): every
//! path, every signature type checked by eth-account, every refusal with its status.

use custody_test_support as support;

use std::collections::BTreeSet;

use serde_json::{Value, json};

use support::TestCluster;
use support::plugin::{Api, dev_server_with_plugin, eth_check, kill_plugins, plugin_bin};

const CHAIN: u64 = 31337;
const CONTRACT: &str = "0x1111111111111111111111111111111111111111";
const RECIPIENT: &str = "0x2222222222222222222222222222222222222222";

const SIGN: &str = "ethereum/accounts/authority/sign-tx";

/// A legacy transfer of 1 wei to the allowed recipient: what the refusals change one field of.
fn base_tx() -> Value {
    json!({ "type": "legacy", "to": RECIPIENT, "value": "1", "gas": 21000, "gas_price": "1000000000" })
}

/// [`base_tx`] with `k` set to `v`.
fn with(k: &str, v: Value) -> Value {
    let mut b = base_tx();
    b[k] = v;
    b
}

/// [`base_tx`] without `k`.
fn without(k: &str) -> Value {
    let mut b = base_tx();
    b.as_object_mut().unwrap().remove(k);
    b
}

/// The EIP-712 "Mail" example, bound to this mount's chain and the Authority's contract.
fn mail_typed_data() -> Value {
    json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}
            ],
            "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
            "Mail": [{"name": "from", "type": "Person"}, {"name": "to", "type": "Person"}, {"name": "contents", "type": "string"}]
        },
        "primaryType": "Mail",
        "domain": {"name": "Ether Mail", "version": "1", "chainId": CHAIN, "verifyingContract": CONTRACT},
        "message": {
            "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
            "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
            "contents": "Hello, Bob!"
        }
    })
}

#[test]
fn plugin_run_by_hand_explains_itself() {
    let out = std::process::Command::new(plugin_bin())
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("plugin"));
}

#[test]
fn plugin_signs_every_type_and_refuses_what_it_must() {
    let (cluster, api) = dev_server_with_plugin("plugin-dev");
    let free = step_nothing_signed_before_a_chain_id(&api);
    let (authority, address) = step_the_authority_constrained(&api);
    step_legacy_transfer(&api, &address);
    step_eip1559_call_on_the_allowed_contract(&api, &address);
    step_messages_and_typed_data(&api, &address);
    // Every bad input and every constraint, refused with its status, nothing signed.
    step_bad_transaction_fields_refused(&api, &address);
    step_constraints_refused(&api);
    step_bad_requests_refused_and_no_nonce_used(&api);
    step_deletion_only_of_a_deletable_account(&api, &free, &authority);
    step_frozen_refuses_every_signing_path(&api);
    step_nonce_counter_raised_freely_lowered_with_force(&api);
    step_64_concurrent_signatures_get_consecutive_nonces(&api);
    step_killed_plugin_restarts_with_keys_and_nonces(&cluster, &api, &address);
}

/// Before a chain id, nothing is signed; the chain id set. The deletable account "free".
fn step_nothing_signed_before_a_chain_id(api: &Api) -> Value {
    assert_eq!(
        api.ok("GET", "ethereum/config", None),
        json!({ "chain_id": null, "frozen": false, "frozen_reason": null, "restored": null })
    );
    let free = api.ok(
        "POST",
        "ethereum/accounts/free",
        Some(json!({ "deletable": true })),
    );
    api.refused(
        "ethereum/accounts/free/sign-message",
        json!({ "message": "hi" }),
        400,
        "chain_id",
    );
    api.ok(
        "POST",
        "ethereum/config",
        Some(json!({ "chain_id": CHAIN.to_string() })),
    );
    assert_eq!(api.ok("GET", "ethereum/config", None)["chain_id"], CHAIN);

    free
}

/// The Authority, constrained: created, read back without its key, listed, never changed.
fn step_the_authority_constrained(api: &Api) -> (Value, String) {
    let authority = api.ok(
        "POST",
        "ethereum/accounts/authority",
        Some(json!({
            "allowed_to": [RECIPIENT],
            "allowed_calls": [format!("{CONTRACT}:submitBlock(bytes32)")],
            "max_value_wei": "1000000000000000000",
            "max_fee_per_gas_wei": "100000000000",
            "max_gas_price_wei": "100000000000",
            "allow_sign_message": true,
            "allow_sign_typed_data": true,
        })),
    );
    let address = authority["address"].as_str().unwrap().to_owned();
    assert_eq!(address.len(), 42);
    assert_eq!(authority["next_nonce"], 0);
    assert_eq!(authority["deletable"], false);
    assert!(
        authority["public_key"]
            .as_str()
            .unwrap()
            .starts_with("0x04")
    );
    let read = api.ok("GET", "ethereum/accounts/authority", None);
    assert_eq!(read["address"], address.as_str());
    assert_eq!(
        read["allowed_calls"][0],
        format!("{CONTRACT}:submitBlock(bytes32)")
    );
    assert!(read.get("private_key").is_none());
    let list = api.ok("LIST", "ethereum/accounts", None);
    assert_eq!(list["keys"], json!(["authority", "free"]));
    api.refused(
        "ethereum/accounts/authority",
        json!({ "max_value_wei": "1" }),
        400,
        "never change",
    );

    (authority, address)
}

/// A legacy transfer (EIP-155) to the allowed recipient.
fn step_legacy_transfer(api: &Api, address: &str) {
    let tx = api.ok(
        "POST",
        "ethereum/accounts/authority/sign-tx",
        Some(json!({ "type": "legacy", "to": RECIPIENT, "value": "1000", "gas": 21000, "gas_price": "1000000000" })),
    );
    let check = eth_check(json!({ "kind": "tx", "raw": tx["signed_tx"] }));
    assert_eq!(check["from"], address);
    assert_eq!(
        (
            check["type"].as_u64(),
            check["nonce"].as_u64(),
            check["chain_id"].as_u64()
        ),
        (Some(0), Some(0), Some(CHAIN))
    );
    assert_eq!(check["hash"], tx["tx_hash"]);
    assert_eq!(tx["from"], address);
    assert_eq!(tx["nonce"], 0);
}

/// An EIP-1559 submitBlock(bytes32) call on the allowed contract.
fn step_eip1559_call_on_the_allowed_contract(api: &Api, address: &str) {
    // keccak256("submitBlock(bytes32)")[..4], as eth-utils computes it:
    // tools/venv/bin/python -c "from eth_utils import keccak; print(keccak(text='submitBlock(bytes32)')[:4].hex())"
    let selector = "0xbaa47694";
    let data = format!("{selector}{}", "ab".repeat(32));
    let tx = api.ok(
        "POST",
        "ethereum/accounts/authority/sign-tx",
        Some(json!({ "to": CONTRACT, "data": data, "gas": "0x186a0", "max_fee_per_gas": "2000000000", "max_priority_fee_per_gas": "1000000000" })),
    );
    let check = eth_check(json!({ "kind": "tx", "raw": tx["signed_tx"] }));
    assert_eq!(
        (check["type"].as_u64(), check["nonce"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(check["from"], address);
}

/// EIP-191 (utf8 and hex) and EIP-712.
fn step_messages_and_typed_data(api: &Api, address: &str) {
    for (message, encoding) in [("custody says hello", "utf8"), ("0xdeadbeef", "hex")] {
        let s = api.ok(
            "POST",
            "ethereum/accounts/authority/sign-message",
            Some(json!({ "message": message, "encoding": encoding })),
        );
        assert_eq!(s["address"], address);
        let v = eth_check(
            json!({ "kind": "message", "message": message, "encoding": encoding, "signature": s["signature"] }),
        );
        assert_eq!(v["from"], address, "{encoding}");
    }
    let s = api.ok(
        "POST",
        "ethereum/accounts/authority/sign-typed-data",
        Some(json!({ "typed_data": mail_typed_data() })),
    );
    let v = eth_check(
        json!({ "kind": "typed_data", "typed_data": mail_typed_data(), "signature": s["signature"] }),
    );
    assert_eq!(v["from"], address);
}

/// Malformed transaction fields: 400, naming the field.
fn step_bad_transaction_fields_refused(api: &Api, address: &str) {
    let sign = SIGN;
    api.refused(sign, with("value", json!("12abc")), 400, "value");
    api.refused(sign, with("value", json!("-1")), 400, "value");
    api.refused(
        sign,
        with("value", json!(format!("1{}", "0".repeat(78)))),
        400,
        "value",
    );
    api.refused(sign, with("value", json!(1.5)), 400, "value");
    api.refused(sign, with("gas", json!("0x")), 400, "gas");
    api.refused(sign, with("gas", json!("18446744073709551616")), 400, "gas");
    api.refused(sign, without("gas"), 400, "'gas' is required");
    api.refused(sign, without("to"), 400, "'to' is required");
    api.refused(sign, with("to", json!("")), 400, "'to' is required");
    api.refused(sign, with("to", json!("0x12")), 400, "to");
    api.refused(
        sign,
        with("to", json!("0xzz22222222222222222222222222222222222222")),
        400,
        "to",
    );
    let mut bad_checksum = address.to_owned();
    let flip = bad_checksum
        .char_indices()
        .skip(2)
        .find(|(_, c)| c.is_ascii_alphabetic())
        .unwrap()
        .0;
    let c = bad_checksum.as_bytes()[flip] as char;
    bad_checksum.replace_range(
        flip..flip + 1,
        &if c.is_ascii_uppercase() {
            c.to_ascii_lowercase()
        } else {
            c.to_ascii_uppercase()
        }
        .to_string(),
    );
    api.refused(sign, with("to", json!(bad_checksum)), 400, "checksum");
    api.refused(
        sign,
        with("tpye", json!("legacy")),
        400,
        "unknown field 'tpye'",
    );
    api.refused(sign, with("type", json!("eip2930")), 400, "type");
    api.refused(sign, with("chain_id", json!(1)), 400, "chain id");
    api.refused(sign, without("gas_price"), 400, "gas_price");
    api.refused(sign, with("max_fee_per_gas", json!("1")), 400, "legacy");
    api.refused(sign, with("nonce", json!(0)), 400, "below next_nonce");
}

/// The account's constraints: 403 (a legacy fee rule 400), naming the rule.
fn step_constraints_refused(api: &Api) {
    let sign = SIGN;
    api.refused(
        sign,
        with("to", json!("0x3333333333333333333333333333333333333333")),
        403,
        "not allowed",
    );
    api.refused(sign,
        json!({ "to": CONTRACT, "data": "0xa9059cbb00", "gas": 60000, "max_fee_per_gas": "1", "max_priority_fee_per_gas": "1" }),
        403,
        "not allowed",
    );
    api.refused(
        sign,
        with("value", json!("1000000000000000001")),
        403,
        "is above max_value_wei",
    );
    api.refused(
        sign,
        with("gas_price", json!("100000000001")),
        403,
        "is above max_fee_per_gas_wei",
    );
    api.refused(sign,
        json!({ "to": RECIPIENT, "gas": 21000, "max_fee_per_gas": "100000000001", "max_priority_fee_per_gas": "1" }),
        403,
        "is above max_fee_per_gas_wei",
    );
    api.refused(sign,
        json!({ "to": RECIPIENT, "gas": 21000, "max_fee_per_gas": "1", "max_priority_fee_per_gas": "2" }),
        400,
        "above",
    );
}

/// Bad messages, typed data, paths, config and account writes; then no refused request used
/// a nonce.
fn step_bad_requests_refused_and_no_nonce_used(api: &Api) {
    let base = base_tx();
    api.refused(
        "ethereum/accounts/authority/sign-message",
        json!({ "message": "0xabc", "encoding": "hex" }),
        400,
        "message",
    );
    api.refused(
        "ethereum/accounts/authority/sign-message",
        json!({ "message": "x", "encoding": "utf16" }),
        400,
        "encoding",
    );
    api.refused(
        "ethereum/accounts/authority/sign-typed-data",
        json!({ "typed_data": {"types": {}} }),
        400,
        "domain",
    );
    api.refused(
        "ethereum/accounts/Bad!/sign-tx",
        base.clone(),
        400,
        "account name",
    );
    api.refused(
        "ethereum/config",
        json!({ "chain_id": "abc" }),
        400,
        "chain_id",
    );
    api.refused(
        "ethereum/config",
        json!({ "frozen": "maybe" }),
        400,
        "frozen",
    );
    api.refused(
        "ethereum/accounts/x1",
        json!({ "allowed_calls": ["0x1111111111111111111111111111111111111111:transfer"] }),
        400,
        "allowed_calls",
    );
    api.refused(
        "ethereum/accounts/x2",
        json!({ "allowed_to": ["0x1234"] }),
        400,
        "allowed_to",
    );
    api.refused(
        "ethereum/accounts/x3",
        json!({ "max_value_wei": "-5" }),
        400,
        "max_value_wei",
    );
    api.refused(
        "ethereum/accounts/x4",
        json!({ "alowed_to": [] }),
        400,
        "unknown field",
    );
    api.refused(
        "ethereum/accounts/nope/sign-tx",
        base.clone(),
        404,
        "does not exist",
    );
    api.refused(
        "ethereum/accounts/authority/bogus",
        json!({}),
        404,
        "unsupported path",
    );
    assert_eq!(api.read("ethereum/accounts/nope").0, 404);
    assert_eq!(api.read("ethereum/nowhere").0, 404);
    assert_eq!(api.call("DELETE", "ethereum/config", None).0, 405);
    let after = api.ok("GET", "ethereum/accounts/authority", None);
    assert_eq!(after["next_nonce"], 2, "no refused request used a nonce");
}

/// Deletion only of a deletable account.
fn step_deletion_only_of_a_deletable_account(api: &Api, free: &Value, authority: &Value) {
    api.refused(
        "ethereum/accounts/authority",
        json!({}),
        400,
        "never change",
    );
    let (status, v) = api.call("DELETE", "ethereum/accounts/authority", None);
    assert_eq!(status, 400, "{v}");
    assert_eq!(api.call("DELETE", "ethereum/accounts/free", None).0, 204);
    assert_eq!(api.read("ethereum/accounts/free").0, 404);
    assert_ne!(free["address"], authority["address"]);
}

/// Frozen: every signing path refuses (retryable 503), reads still work; unfreezing restores.
fn step_frozen_refuses_every_signing_path(api: &Api) {
    let (sign, base) = (SIGN, base_tx());
    api.ok("POST", "ethereum/config", Some(json!({ "frozen": true })));
    api.refused(sign, base.clone(), 503, "frozen");
    api.refused(
        "ethereum/accounts/authority/sign-message",
        json!({ "message": "x" }),
        503,
        "frozen",
    );
    api.refused(
        "ethereum/accounts/authority/sign-typed-data",
        json!({ "typed_data": mail_typed_data() }),
        503,
        "frozen",
    );
    assert_eq!(
        api.ok("GET", "ethereum/accounts/authority/nonce", None)["next_nonce"],
        2
    );
    api.ok(
        "POST",
        "ethereum/config",
        Some(json!({ "frozen": "false" })),
    );
    assert_eq!(api.ok("POST", sign, Some(base.clone()))["nonce"], 2);
}

/// The nonce counter: raise freely, lower only with force.
fn step_nonce_counter_raised_freely_lowered_with_force(api: &Api) {
    api.refused(
        "ethereum/accounts/authority/nonce",
        json!({ "next_nonce": 1 }),
        400,
        "force=true",
    );
    assert_eq!(
        api.ok(
            "POST",
            "ethereum/accounts/authority/nonce",
            Some(json!({ "next_nonce": 10 }))
        )["next_nonce"],
        10
    );
    assert_eq!(
        api.ok(
            "POST",
            "ethereum/accounts/authority/nonce",
            Some(json!({ "next_nonce": 3, "force": true }))
        )["next_nonce"],
        3
    );
}

/// 64 concurrent signatures on one account: 64 distinct, consecutive nonces.
fn step_64_concurrent_signatures_get_consecutive_nonces(api: &Api) {
    let (sign, base) = (SIGN, base_tx());
    let calls = (0..64)
        .map(|_| ("POST".to_owned(), sign.to_owned(), Some(base.clone())))
        .collect();
    let results = api.concurrent(calls);
    let nonces: BTreeSet<u64> = results
        .iter()
        .map(|(s, v)| {
            assert_eq!(*s, 200, "{v}");
            v["data"]["nonce"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(nonces, (3..67).collect::<BTreeSet<u64>>());
}

/// Kill the plugin process: OpenBao starts it again; the keys and nonces are intact.
fn step_killed_plugin_restarts_with_keys_and_nonces(
    cluster: &TestCluster,
    api: &Api,
    address: &str,
) {
    let (sign, base) = (SIGN, base_tx());
    assert!(
        !kill_plugins(cluster, 0).is_empty(),
        "no plugin process under the server"
    );
    let after = api.read_when_ready("ethereum/accounts/authority", 30);
    assert_eq!(after["address"], address);
    assert_eq!(after["next_nonce"], 67);
    assert_eq!(api.ok("POST", sign, Some(base))["nonce"], 67);
}
