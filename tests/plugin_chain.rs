//! Transactions the plugin signs are mined by a real chain (anvil): a legacy (EIP-155) transfer
//! and an EIP-1559 allowed call, both with receipt status 1; a call outside `allowed_calls` is
//! refused before anything is signed.

use custody_test_support as support;

use serde_json::json;

use support::plugin::{Anvil, dev_server_with_plugin};

const CHAIN: u64 = 31337;
const CONTRACT: &str = "0x1111111111111111111111111111111111111111";
const RECIPIENT: &str = "0x2222222222222222222222222222222222222222";

#[test]
fn plugin_signed_transactions_are_mined_by_anvil() {
    let anvil = Anvil::start(CHAIN);
    let (_cluster, api) = dev_server_with_plugin("plugin-chain");
    api.ok(
        "POST",
        "ethereum/config",
        Some(json!({ "chain_id": CHAIN })),
    );
    let account = api.ok(
        "POST",
        "ethereum/accounts/authority",
        Some(json!({ "allowed_to": [RECIPIENT], "allowed_calls": [format!("{CONTRACT}:submitBlock(bytes32)")] })),
    );
    let address = account["address"].as_str().unwrap().to_owned();
    anvil.rpc("anvil_setBalance", json!([address, "0x56BC75E2D63100000"]));

    let mined = |raw: &serde_json::Value| {
        let hash = anvil.rpc("eth_sendRawTransaction", json!([raw]));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let receipt = loop {
            let r = anvil.rpc("eth_getTransactionReceipt", json!([hash]));
            if !r.is_null() {
                break r;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "transaction {hash} was never mined"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        assert_eq!(receipt["status"], "0x1", "receipt: {receipt}");
        assert_eq!(
            receipt["from"].as_str().unwrap().to_lowercase(),
            address.to_lowercase()
        );
        hash
    };
    let legacy = api.ok(
        "POST",
        "ethereum/accounts/authority/sign-tx",
        Some(json!({ "type": "legacy", "to": RECIPIENT, "value": "12345", "gas": 21000, "gas_price": "3000000000" })),
    );
    assert_eq!(mined(&legacy["signed_tx"]), legacy["tx_hash"]);
    let call = format!("0xbaa47694{}", "cd".repeat(32));
    let dynamic = api.ok(
        "POST",
        "ethereum/accounts/authority/sign-tx",
        Some(json!({ "to": CONTRACT, "data": call, "gas": 100000, "max_fee_per_gas": "4000000000", "max_priority_fee_per_gas": "1000000000" })),
    );
    assert_eq!(mined(&dynamic["signed_tx"]), dynamic["tx_hash"]);
    assert_eq!(
        anvil.rpc("eth_getBalance", json!([RECIPIENT, "latest"])),
        "0x3039"
    );

    let (status, v) = api.write(
        "ethereum/accounts/authority/sign-tx",
        json!({ "to": CONTRACT, "data": "0xa9059cbb", "gas": 100000, "max_fee_per_gas": "4000000000", "max_priority_fee_per_gas": "1000000000" }),
    );
    assert_eq!(status, 403, "{v}");
    assert_eq!(
        api.ok("GET", "ethereum/accounts/authority/nonce", None)["next_nonce"],
        2
    );
    assert_eq!(
        anvil.rpc("eth_getTransactionCount", json!([address, "latest"])),
        "0x2"
    );
}
