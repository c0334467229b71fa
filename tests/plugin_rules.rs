//! The signer's rules, read as an attacker holding a signer token would read them, against a
//! real OpenBao 2.7.2 dev server: messages and typed data only where the account allows them
//! and only for its chain and contracts, typed data's integers signed exactly as written, no
//! transaction and no typed data from an account without an allow-list,
//! accounts created exactly once, nonces that never overflow or move on a refusal, frozen
//! counters that only rise, and fee and gas caps that hold across transaction types.

use custody_test_support as support;

use serde_json::{Value, json};

use support::plugin::{Api, dev_server_with_plugin, eth_check};

const CHAIN: u64 = 31337;
const FRAMEWORK: &str = "0x1111111111111111111111111111111111111111";
const RECIPIENT: &str = "0x2222222222222222222222222222222222222222";
const TOKEN: &str = "0x3333333333333333333333333333333333333333";

/// An ERC-2612 permit: what a stolen signer token would ask an Authority to sign.
fn permit(chain: Value, contract: Option<&str>) -> Value {
    let mut domain_types = vec![
        json!({"name": "name", "type": "string"}),
        json!({"name": "version", "type": "string"}),
    ];
    let mut domain = json!({"name": "Token", "version": "1"});
    if !chain.is_null() {
        domain_types.push(json!({"name": "chainId", "type": "uint256"}));
        domain["chainId"] = chain;
    }
    if let Some(c) = contract {
        domain_types.push(json!({"name": "verifyingContract", "type": "address"}));
        domain["verifyingContract"] = json!(c);
    }
    json!({
        "types": {
            "EIP712Domain": domain_types,
            "Permit": [
                {"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"}
            ]
        },
        "primaryType": "Permit",
        "domain": domain,
        "message": {
            "owner": RECIPIENT, "spender": TOKEN, "value": "1000000",
            "nonce": 0, "deadline": 4102444800u64
        }
    })
}

fn next_nonce(api: &Api, account: &str) -> u64 {
    api.ok("GET", &format!("ethereum/accounts/{account}/nonce"), None)["next_nonce"]
        .as_u64()
        .unwrap()
}

/// A plain transfer to `to`.
fn tx_to(to: &str) -> Value {
    json!({ "to": to, "gas": 21000, "max_fee_per_gas": "2", "max_priority_fee_per_gas": "1" })
}

fn submit_block() -> Value {
    json!({ "to": FRAMEWORK, "data": format!("0xbaa47694{}", "ab".repeat(32)), "gas": 100000,
            "max_fee_per_gas": "2000000000", "max_priority_fee_per_gas": "1" })
}

#[test]
fn every_signing_path_obeys_the_account() {
    let (_cluster, api) = dev_server_with_plugin("plugin-rules");
    api.ok(
        "POST",
        "ethereum/config",
        Some(json!({ "chain_id": CHAIN })),
    );
    step_the_authority_signs_only_its_call(&api);
    step_typed_data_only_for_this_chain_and_the_allowed_contracts(&api);
    step_typed_data_numbers_read_exactly_as_eth_account_reads_them(&api);
    step_no_allow_list_no_typed_data_unless_unrestricted(&api);
    step_messages_where_allowed_recovered_by_eth_account(&api);
    step_no_allow_list_no_transaction_unrestricted_only_on_request(&api);
    step_fee_gas_and_value_caps_hold_in_both_types(&api);
    step_nonces_never_past_the_last_and_frozen_counters_only_rise(&api);
    step_forced_counter_change_waits_for_signatures_in_flight(&api);
}

/// The Authority as the ceremony creates it: one call allowed, no messages, no typed data.
fn step_the_authority_signs_only_its_call(api: &Api) {
    let authority = api.ok(
        "POST",
        "ethereum/accounts/authority",
        Some(json!({ "allowed_calls": [format!("{FRAMEWORK}:submitBlock(bytes32)")] })),
    );
    for field in [
        "allow_sign_message",
        "allow_sign_typed_data",
        "unrestricted",
    ] {
        assert_eq!(authority[field], false, "{field}: {authority}");
    }
    let read = api.ok("GET", "ethereum/accounts/authority", None);
    assert_eq!(
        (&read["allow_sign_message"], &read["allow_sign_typed_data"]),
        (&json!(false), &json!(false))
    );
    api.refused(
        "ethereum/accounts/authority/sign-message",
        json!({ "message": "anything" }),
        403,
        "account authority does not allow sign-message",
    );
    for chain in [json!(1), json!(CHAIN)] {
        api.refused(
            "ethereum/accounts/authority/sign-typed-data",
            json!({ "typed_data": permit(chain, Some(FRAMEWORK)) }),
            403,
            "account authority does not allow sign-typed-data",
        );
    }
    api.ok(
        "POST",
        "ethereum/accounts/authority/sign-tx",
        Some(submit_block()),
    );
}

/// Typed data allowed: only this chain, only the allow-list's contracts.
fn step_typed_data_only_for_this_chain_and_the_allowed_contracts(api: &Api) {
    let typed = api.ok(
        "POST",
        "ethereum/accounts/typed",
        Some(json!({
            "allowed_calls": [format!("{FRAMEWORK}:submitBlock(bytes32)")],
            "allowed_to": [RECIPIENT],
            "allow_sign_typed_data": true,
        })),
    );
    let typed_path = "ethereum/accounts/typed/sign-typed-data";
    api.refused(
        typed_path,
        json!({ "typed_data": permit(json!(1), Some(FRAMEWORK)) }),
        400,
        "'domain.chainId': 1 is not this mount's chain id 31337",
    );
    api.refused(
        typed_path,
        json!({ "typed_data": permit(Value::Null, Some(FRAMEWORK)) }),
        400,
        "'domain.chainId' is required",
    );
    api.refused(
        typed_path,
        json!({ "typed_data": permit(json!(CHAIN), None) }),
        400,
        "'domain.verifyingContract' is required",
    );
    api.refused(
        typed_path,
        json!({ "typed_data": permit(json!(CHAIN), Some(TOKEN)) }),
        403,
        "is not on its allow-list",
    );
    let mut named_like_address = permit(json!(CHAIN), Some(FRAMEWORK));
    named_like_address["types"]["address"] = json!([{"name": "x", "type": "uint8"}]);
    api.refused(
        typed_path,
        json!({ "typed_data": named_like_address }),
        400,
        "a struct may not be named \\\"address\\\"",
    );
    let mut bad_member = permit(json!(CHAIN), Some(FRAMEWORK));
    bad_member["types"]["Permit"][0]["name"] = json!("own-er");
    api.refused(
        typed_path,
        json!({ "typed_data": bad_member }),
        400,
        "is not a member name",
    );
    api.refused(
        "ethereum/accounts/typed/sign-message",
        json!({ "message": "x" }),
        403,
        "does not allow sign-message",
    );
    for contract in [FRAMEWORK, RECIPIENT] {
        let body = permit(json!(CHAIN.to_string()), Some(contract));
        let s = api.ok(
            "POST",
            typed_path,
            Some(json!({ "typed_data": body.clone() })),
        );
        let v = eth_check(
            json!({ "kind": "typed_data", "typed_data": body, "signature": s["signature"] }),
        );
        assert_eq!(v["from"], typed["address"]);
    }
}

/// An order whose integers are JSON numbers beyond 64 bits (10^30, 2^255, int256 negatives),
/// in nested structs and arrays: JSON text, since a serde_json `Value` would round them.
fn big_numbers_order(contract: &str, amount: &str) -> String {
    format!(
        r#"{{"types": {{
            "EIP712Domain": [{{"name": "name", "type": "string"}}, {{"name": "chainId", "type": "uint256"}},
                             {{"name": "verifyingContract", "type": "address"}}],
            "Order": [{{"name": "amount", "type": "uint256"}}, {{"name": "top", "type": "uint256"}},
                      {{"name": "delta", "type": "int256"}}, {{"name": "legs", "type": "Leg[]"}}],
            "Leg": [{{"name": "sizes", "type": "uint256[2]"}}, {{"name": "shift", "type": "int128"}}]}},
          "primaryType": "Order",
          "domain": {{"name": "Big", "chainId": {CHAIN}, "verifyingContract": "{contract}"}},
          "message": {{"amount": {amount},
                      "top": 57896044618658097711785492504343953926634992332820282019728792003956564819968,
                      "delta": -57896044618658097711785492504343953926634992332820282019728792003956564819968,
                      "legs": [{{"sizes": [1000000000000000000000000000001, 18446744073709551616],
                                 "shift": -170141183460469231731687303715884105728}},
                               {{"sizes": [0, 7], "shift": -1}}]}}}}"#
    )
}

/// Integers in typed data are signed as written, in the object form (the request's own JSON,
/// which OpenBao passes on digit for digit) and in the string form alike, and the hash is
/// eth-account's; a number in exponent or fraction form is refused, never rounded.
fn step_typed_data_numbers_read_exactly_as_eth_account_reads_them(api: &Api) {
    let path = "ethereum/accounts/typed/sign-typed-data";
    let address = api.ok("GET", "ethereum/accounts/typed", None)["address"].clone();
    let order = big_numbers_order(FRAMEWORK, "1000000000000000000000000000000");
    let (status, as_object) = api.write_text(path, &format!(r#"{{"typed_data": {order}}}"#));
    assert_eq!(status, 200, "{as_object}");
    let as_object = &as_object["data"];
    let as_string = api.ok("POST", path, Some(json!({ "typed_data": order })));
    assert_eq!(as_object, &as_string, "one typed data, one signature");
    let v = eth_check(
        json!({ "kind": "typed_data", "typed_data": order, "signature": as_object["signature"] }),
    );
    assert_eq!((&v["from"], &v["hash"]), (&address, &as_object["hash"]));

    let before = next_nonce(api, "typed");
    for (amount, literal) in [("1e30", "1e30"), ("1.0", "1.0"), ("1E+30", "1E+30")] {
        let text = big_numbers_order(FRAMEWORK, amount);
        let (status, v) = api.write_text(path, &format!(r#"{{"typed_data": {text}}}"#));
        assert_eq!(status, 400, "{amount}: {v}");
        let needle = format!(
            "typed data field 'message.amount': the JSON number {literal} is not an integer"
        );
        assert!(v.to_string().contains(&needle), "{v}");
        api.refused(path, json!({ "typed_data": text }), 400, &needle);
    }
    assert_eq!(next_nonce(api, "typed"), before);
}

/// An account allowed typed data but bound to nothing signs none, whatever its domain; created
/// unrestricted, it signs typed data for this chain.
fn step_no_allow_list_no_typed_data_unless_unrestricted(api: &Api) {
    api.ok(
        "POST",
        "ethereum/accounts/unbound",
        Some(json!({ "allow_sign_typed_data": true })),
    );
    let refusal = "account unbound: it has no allow-list (allowed_to / allowed_calls) and was not \
                   created unrestricted, so it signs no typed data until it is bound to its contract";
    for contract in [Some(FRAMEWORK), Some(TOKEN), None] {
        api.refused(
            "ethereum/accounts/unbound/sign-typed-data",
            json!({ "typed_data": permit(json!(CHAIN), contract) }),
            403,
            refusal,
        );
    }
    let (status, v) = api.write_text(
        "ethereum/accounts/unbound/sign-typed-data",
        &format!(r#"{{"typed_data": {}}}"#, big_numbers_order(TOKEN, "1")),
    );
    assert_eq!(status, 403, "{v}");

    let loose = api.ok(
        "POST",
        "ethereum/accounts/loose",
        Some(json!({ "unrestricted": true, "allow_sign_typed_data": true })),
    );
    let body = permit(json!(CHAIN), Some(TOKEN));
    let s = api.ok(
        "POST",
        "ethereum/accounts/loose/sign-typed-data",
        Some(json!({ "typed_data": body.clone() })),
    );
    let v =
        eth_check(json!({ "kind": "typed_data", "typed_data": body, "signature": s["signature"] }));
    assert_eq!(v["from"], loose["address"]);
}

/// Messages allowed: signed, recovered by eth-account.
fn step_messages_where_allowed_recovered_by_eth_account(api: &Api) {
    let talker = api.ok(
        "POST",
        "ethereum/accounts/talker",
        Some(json!({ "allow_sign_message": true })),
    );
    let s = api.ok(
        "POST",
        "ethereum/accounts/talker/sign-message",
        Some(json!({ "message": "hello" })),
    );
    let v = eth_check(
        json!({ "kind": "message", "message": "hello", "encoding": "utf8", "signature": s["signature"] }),
    );
    assert_eq!(v["from"], talker["address"]);
}

/// No allow-list and not unrestricted: no transaction at all. Unrestricted only on request,
/// and never together with an allow-list.
fn step_no_allow_list_no_transaction_unrestricted_only_on_request(api: &Api) {
    api.refused(
        "ethereum/accounts/talker/sign-tx",
        tx_to(RECIPIENT),
        403,
        "signs no transaction until it is bound to its contract",
    );
    api.refused(
        "ethereum/accounts/both",
        json!({ "unrestricted": true, "allowed_to": [RECIPIENT] }),
        400,
        "field 'unrestricted'",
    );
    assert_eq!(api.read("ethereum/accounts/both").0, 404);
    api.ok(
        "POST",
        "ethereum/accounts/open",
        Some(json!({ "unrestricted": "true" })),
    );
    for to in [RECIPIENT, TOKEN] {
        api.ok("POST", "ethereum/accounts/open/sign-tx", Some(tx_to(to)));
    }
    assert_eq!(
        api.ok("GET", "ethereum/accounts/open", None)["unrestricted"],
        true
    );
}

/// Fee, gas and value caps, in both transaction types, at the cap and one above.
fn step_fee_gas_and_value_caps_hold_in_both_types(api: &Api) {
    api.ok(
        "POST",
        "ethereum/accounts/capped",
        Some(json!({
            "allowed_to": [RECIPIENT],
            "max_fee_per_gas_wei": "100",
            "max_gas": 50000,
            "max_value_wei": "10",
        })),
    );
    let capped = "ethereum/accounts/capped/sign-tx";
    let legacy = |price: &str, gas: u64, value: &str| json!({ "type": "legacy", "to": RECIPIENT, "gas_price": price, "gas": gas, "value": value });
    let dynamic = |max: &str, tip: &str, gas: u64| json!({ "to": RECIPIENT, "max_fee_per_gas": max, "max_priority_fee_per_gas": tip, "gas": gas });
    api.refused(
        capped,
        legacy("101", 21000, "0"),
        403,
        "field 'gas_price': 101 is above max_fee_per_gas_wei 100",
    );
    api.refused(
        capped,
        dynamic("101", "1", 21000),
        403,
        "field 'max_fee_per_gas': 101 is above max_fee_per_gas_wei 100",
    );
    api.refused(
        capped,
        dynamic("100", "101", 21000),
        400,
        "above max_fee_per_gas",
    );
    api.refused(
        capped,
        legacy("1", 50001, "0"),
        403,
        "field 'gas': 50001 is above max_gas 50000",
    );
    api.refused(capped, dynamic("1", "1", 50001), 403, "is above max_gas");
    api.refused(
        capped,
        legacy("1", 21000, "11"),
        403,
        "field 'value': 11 is above max_value_wei 10",
    );
    assert_eq!(next_nonce(api, "capped"), 0, "a refusal used a nonce");
    api.ok("POST", capped, Some(legacy("100", 50000, "10")));
    api.ok("POST", capped, Some(dynamic("100", "100", 50000)));
    assert_eq!(next_nonce(api, "capped"), 2);
    for (body, needle) in [
        (json!({ "max_fee_per_gas_wei": "0" }), "max_fee_per_gas_wei"),
        (json!({ "max_gas": 20999 }), "field 'max_gas'"),
        (json!({ "max_gas": "lots" }), "max_gas"),
    ] {
        api.refused("ethereum/accounts/badcap", body, 400, needle);
    }
    assert_eq!(api.read("ethereum/accounts/badcap").0, 404);
}

/// Nonces: never past the last one (EIP-2681); while frozen, a counter only rises.
fn step_nonces_never_past_the_last_and_frozen_counters_only_rise(api: &Api) {
    api.refused("ethereum/accounts/open/sign-tx",
        json!({ "to": RECIPIENT, "gas": 21000, "max_fee_per_gas": "2", "max_priority_fee_per_gas": "1", "nonce": u64::MAX.to_string() }),
        400,
        "field 'nonce'",
    );
    api.refused(
        "ethereum/accounts/open/nonce",
        json!({ "next_nonce": u64::MAX.to_string() }),
        400,
        "field 'next_nonce'",
    );
    assert_eq!(next_nonce(api, "open"), 2);
    // The last nonce is 2^53 - 2: every counter and nonce then crosses OpenBao's float64 JSON
    // exactly. Past it, nothing is signed.
    let last: u64 = (1 << 53) - 2;
    api.ok(
        "POST",
        "ethereum/accounts/edge",
        Some(json!({ "unrestricted": true })),
    );
    let at = |nonce: u64| json!({ "to": RECIPIENT, "gas": 21000, "max_fee_per_gas": "2", "max_priority_fee_per_gas": "1", "nonce": nonce });
    api.refused(
        "ethereum/accounts/edge/sign-tx",
        at(last + 1),
        400,
        "field 'nonce'",
    );
    assert_eq!(
        api.ok("POST", "ethereum/accounts/edge/sign-tx", Some(at(last)))["nonce"],
        last
    );
    assert_eq!(next_nonce(api, "edge"), last + 1);
    api.refused(
        "ethereum/accounts/edge/sign-tx",
        tx_to(RECIPIENT),
        400,
        "nonces are spent",
    );
    api.refused(
        "ethereum/config",
        json!({ "chain_id": (1u64 << 53).to_string() }),
        400,
        "field 'chain_id'",
    );
    api.ok("POST", "ethereum/config", Some(json!({ "frozen": true })));
    api.refused(
        "ethereum/accounts/open/nonce",
        json!({ "next_nonce": 0, "force": true }),
        400,
        "may only be raised",
    );
    assert_eq!(
        api.ok(
            "POST",
            "ethereum/accounts/open/nonce",
            Some(json!({ "next_nonce": 9 }))
        )["previous"],
        2
    );
    api.ok("POST", "ethereum/config", Some(json!({ "frozen": false })));
    assert_eq!(
        api.ok(
            "POST",
            "ethereum/accounts/open/nonce",
            Some(json!({ "next_nonce": 4, "force": true }))
        )["previous"],
        9
    );
    assert_eq!(
        api.ok(
            "POST",
            "ethereum/accounts/open/sign-tx",
            Some(tx_to(RECIPIENT))
        )["nonce"],
        4
    );
    assert_eq!(next_nonce(api, "authority"), 1);
}

/// A forced counter change waits for the signatures in flight, like a freeze: none of them
/// is voided or signed twice; each got its nonce wholly before or wholly after the change.
fn step_forced_counter_change_waits_for_signatures_in_flight(api: &Api) {
    let mut calls: Vec<(String, String, Option<Value>)> = (0..24)
        .map(|_| {
            (
                "POST".to_owned(),
                "ethereum/accounts/open/sign-tx".to_owned(),
                Some(tx_to(RECIPIENT)),
            )
        })
        .collect();
    calls.insert(
        12,
        (
            "POST".to_owned(),
            "ethereum/accounts/open/nonce".to_owned(),
            Some(json!({ "next_nonce": 1000, "force": true })),
        ),
    );
    let results = api.concurrent(calls);
    let (status, change) = &results[12];
    assert_eq!(*status, 200, "{change}");
    let previous = change["data"]["previous"].as_u64().unwrap();
    let mut before = Vec::new();
    let mut after = Vec::new();
    for (i, (status, v)) in results.iter().enumerate() {
        if i == 12 {
            continue;
        }
        assert_eq!(*status, 200, "a signature beside the counter change: {v}");
        let n = v["data"]["nonce"].as_u64().unwrap();
        if n >= 1000 {
            after.push(n)
        } else {
            before.push(n)
        }
    }
    before.sort_unstable();
    after.sort_unstable();
    assert_eq!(before, (5..previous).collect::<Vec<_>>());
    assert_eq!(after, (1000..1000 + after.len() as u64).collect::<Vec<_>>());
}

#[test]
fn an_account_is_created_exactly_once() {
    let (_cluster, api) = dev_server_with_plugin("plugin-create-once");
    api.ok(
        "POST",
        "ethereum/config",
        Some(json!({ "chain_id": CHAIN })),
    );
    let body = json!({ "allowed_to": [RECIPIENT], "allow_sign_message": true });
    for round in 0..3 {
        let name = format!("race{round}");
        let path = format!("ethereum/accounts/{name}");
        let calls = (0..16)
            .map(|_| ("POST".to_owned(), path.clone(), Some(body.clone())))
            .collect();
        let results = api.concurrent(calls);
        let winners: Vec<&Value> = results
            .iter()
            .filter(|(s, _)| *s == 200)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(winners.len(), 1, "{name}: {results:?}");
        for (status, v) in &results {
            assert!(
                *status == 200 || (*status == 400 && v.to_string().contains("exists")),
                "{name}: HTTP {status}: {v}"
            );
        }
        let address = winners[0]["data"]["address"].clone();
        assert_eq!(api.ok("GET", &path, None)["address"], address);
        // The key that signs is the key whose address was returned and stored.
        let s = api.ok(
            "POST",
            &format!("{path}/sign-message"),
            Some(json!({ "message": "mine" })),
        );
        let v = eth_check(
            json!({ "kind": "message", "message": "mine", "encoding": "utf8", "signature": s["signature"] }),
        );
        assert_eq!(v["from"], address);
    }

    // A create on an existing account touches neither its key nor its nonce.
    let path = "ethereum/accounts/race0";
    let before = api.ok("GET", path, None);
    let tx = json!({ "to": RECIPIENT, "gas": 21000, "max_fee_per_gas": "2", "max_priority_fee_per_gas": "1" });
    for _ in 0..3 {
        api.ok("POST", &format!("{path}/sign-tx"), Some(tx.clone()));
    }
    let calls = (0..8)
        .map(|_| ("POST".to_owned(), path.to_owned(), Some(json!({}))))
        .collect();
    for (status, v) in api.concurrent(calls) {
        assert_eq!(status, 400, "{v}");
    }
    let after = api.ok("GET", path, None);
    assert_eq!(after["address"], before["address"]);
    assert_eq!(after["next_nonce"], 3);
}
