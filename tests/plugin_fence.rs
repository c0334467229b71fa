//! The restore fence on a real (non-dev) OpenBao Raft server: a running plugin ignores a fence
//! and keeps signing; a plugin that starts on storage holding one (killed and started again by
//! the server, or after a seal and unseal) comes up frozen as restored, refuses every signing
//! path with a retryable 503, and unfreezes only once every account's counter has been set.

use custody_test_support as support;

use serde_json::{Value, json};

use support::plugin::{Api, init_plain_cluster, kill_plugins, plugin_bin, unseal_plain};
use support::*;

const TO: &str = "0x2222222222222222222222222222222222222222";

fn tx() -> Value {
    json!({ "to": TO, "gas": 21000, "max_fee_per_gas": "2", "max_priority_fee_per_gas": "1" })
}

fn typed() -> Value {
    json!({ "typed_data": {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}],
            "Block": [{"name": "root", "type": "bytes32"}]
        },
        "primaryType": "Block",
        "domain": {"name": "custody", "chainId": 1337},
        "message": {"root": format!("0x{}", "11".repeat(32))}
    }})
}

/// Every signing path of `account` answers 503 "frozen … restored", and its counter stays `next`.
fn refuses_every_signature(api: &Api, account: &str, next: u64) {
    for (leaf, body) in [
        ("sign-tx", tx()),
        ("sign-message", json!({ "message": "restored" })),
        ("sign-typed-data", typed()),
    ] {
        let (status, v) = api.write(&format!("ethereum/accounts/{account}/{leaf}"), body);
        assert_eq!(status, 503, "{leaf} on a restored mount: {v}");
        let text = v.to_string();
        assert!(
            text.contains("frozen") && text.contains("restored from a snapshot"),
            "{leaf}: {text}"
        );
    }
    let nonce = api.ok("GET", &format!("ethereum/accounts/{account}/nonce"), None);
    assert_eq!(
        nonce["next_nonce"], next,
        "a refused signature used no nonce"
    );
}

#[test]
fn a_plugin_started_on_a_fence_comes_up_frozen_until_its_counters_are_set() {
    let (c, _root, keys, api) = init_plain_cluster(ClusterSpec {
        plugins: vec![plugin_bin()],
        ..ClusterSpec::raft("plugin-fence", 1, bao_bin())
    });
    api.register_and_enable(&plugin_bin());
    api.ok("POST", "ethereum/config", Some(json!({ "chain_id": 1337 })));
    let everything =
        json!({ "unrestricted": true, "allow_sign_message": true, "allow_sign_typed_data": true });
    for name in ["authority", "second"] {
        api.ok(
            "POST",
            &format!("ethereum/accounts/{name}"),
            Some(everything.clone()),
        );
    }
    let signed = api.ok("POST", "ethereum/accounts/authority/sign-tx", Some(tx()));
    assert_eq!(signed["nonce"], 0);

    step_a_running_plugin_ignores_a_fence(&api);
    step_restarted_inside_the_window_comes_up_frozen(&c, &api);
    step_unfreezes_only_once_every_counter_is_set(&api);
    step_a_seal_and_unseal_on_a_fence_freezes_too(&c, &api, &keys);
    step_bad_fences_are_refused(&api);
}

/// A fence in storage changes nothing for the process that is running: it signs.
fn step_a_running_plugin_ignores_a_fence(api: &Api) {
    let fence = api.ok(
        "POST",
        "ethereum/restore-fence/snap-1",
        Some(json!({ "note": "custody snapshot save blue.snap" })),
    );
    assert_eq!(fence["id"], "snap-1");
    assert_eq!(
        api.ok("LIST", "ethereum/restore-fence", None)["keys"],
        json!(["snap-1"])
    );
    let signed = api.ok("POST", "ethereum/accounts/authority/sign-tx", Some(tx()));
    assert_eq!(signed["nonce"], 1, "the running plugin keeps signing");
    let config = api.ok("GET", "ethereum/config", None);
    assert_eq!(config["frozen"], false, "{config}");
}

/// The server starts the plugin again after a SIGKILL: the new process finds the fence, records
/// the mount restored and frozen, and removes the fence.
fn step_restarted_inside_the_window_comes_up_frozen(c: &TestCluster, api: &Api) {
    assert!(!kill_plugins(c, 0).is_empty(), "no plugin process to kill");
    let config = api.read_when_ready("ethereum/config", 30);
    assert_eq!(config["frozen"], true, "{config}");
    assert_eq!(config["frozen_reason"], "restored", "{config}");
    assert_eq!(config["restored"]["fences"][0]["id"], "snap-1", "{config}");
    assert_eq!(
        config["restored"]["fences"][0]["note"],
        "custody snapshot save blue.snap"
    );
    assert_eq!(
        api.read("ethereum/restore-fence").0,
        404,
        "the fence is consumed"
    );
    refuses_every_signature(api, "authority", 2);
    // Reads still work.
    let account = api.ok("GET", "ethereum/accounts/authority", None);
    assert_eq!(account["next_nonce"], 2);
}

/// `frozen=false` is refused while any account's counter is unset; a counter only rises; once
/// every counter is set, the mount unfreezes and signs the raised nonce.
fn step_unfreezes_only_once_every_counter_is_set(api: &Api) {
    let (status, v) = api.write("ethereum/config", json!({ "frozen": false }));
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("authority, second"), "{v}");
    let (status, v) = api.write(
        "ethereum/accounts/authority/nonce",
        json!({ "next_nonce": 1, "force": true }),
    );
    assert_eq!(
        status, 400,
        "a restored (frozen) counter never goes down: {v}"
    );
    api.ok(
        "POST",
        "ethereum/accounts/authority/nonce",
        Some(json!({ "next_nonce": 7 })),
    );
    let config = api.ok("GET", "ethereum/config", None);
    assert_eq!(config["restored"]["counters_set"], json!(["authority"]));
    let (status, v) = api.write("ethereum/config", json!({ "frozen": false }));
    assert_eq!(status, 400, "second's counter is still unset: {v}");
    assert!(v.to_string().contains("second") && !v.to_string().contains("authority,"));
    refuses_every_signature(api, "authority", 7);
    // Setting a counter to its own value counts: nothing was signed on this copy.
    api.ok(
        "POST",
        "ethereum/accounts/second/nonce",
        Some(json!({ "next_nonce": 0 })),
    );
    let config = api.ok("POST", "ethereum/config", Some(json!({ "frozen": false })));
    assert_eq!(config["frozen"], false, "{config}");
    assert_eq!(config["restored"], Value::Null, "{config}");
    let signed = api.ok("POST", "ethereum/accounts/authority/sign-tx", Some(tx()));
    assert_eq!(signed["nonce"], 7, "the first nonce after the raise");
}

/// A seal and unseal starts the mount again (`Initialize`): a fence there freezes it too.
fn step_a_seal_and_unseal_on_a_fence_freezes_too(c: &TestCluster, api: &Api, keys: &[String]) {
    api.ok("POST", "ethereum/restore-fence/snap-2", Some(json!({})));
    api.ok("POST", "sys/seal", None);
    unseal_plain(c, keys);
    let config = api.read_when_ready("ethereum/config", 30);
    assert_eq!(config["frozen_reason"], "restored", "{config}");
    assert_eq!(config["restored"]["fences"][0]["id"], "snap-2");
    assert_eq!(config["restored"]["counters_set"], json!([]));
    refuses_every_signature(api, "authority", 8);
    // Frozen again by a cutover's freeze: still restored, still refused until the counters.
    api.ok("POST", "ethereum/config", Some(json!({ "frozen": true })));
    assert_eq!(
        api.ok("GET", "ethereum/config", None)["frozen_reason"],
        "restored"
    );
    for name in ["authority", "second"] {
        let next = api.ok("GET", &format!("ethereum/accounts/{name}/nonce"), None)["next_nonce"]
            .as_u64()
            .unwrap();
        api.ok(
            "POST",
            &format!("ethereum/accounts/{name}/nonce"),
            Some(json!({ "next_nonce": next })),
        );
    }
    api.ok("POST", "ethereum/config", Some(json!({ "frozen": false })));
    assert_eq!(
        api.ok("POST", "ethereum/accounts/authority/sign-tx", Some(tx()))["nonce"],
        8
    );
}

fn step_bad_fences_are_refused(api: &Api) {
    let (status, v) = api.write("ethereum/restore-fence/-bad", json!({}));
    assert_eq!(status, 400, "{v}");
    let (status, v) = api.write(
        "ethereum/restore-fence/ok",
        json!({ "note": "line\nbreak" }),
    );
    assert_eq!(status, 400, "{v}");
    let (status, v) = api.write("ethereum/restore-fence/ok", json!({ "other": 1 }));
    assert_eq!(status, 400, "{v}");
    assert_eq!(api.read("ethereum/restore-fence").0, 404, "nothing written");
}
