//! Black-box fuzzing of the signer through a real OpenBao 2.7.2 dev server: thousands of random
//! and mutated bodies on every path. Never a 5xx, the plugin process is never restarted, and no
//! account's nonce moves except by the signatures and counter changes the fuzz saw succeed.
//! The seed is printed; `CUSTODY_FUZZ_SEED=N` replays a run.

use custody_test_support as support;

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use support::plugin::{dev_server_with_plugin, plugin_pids};

const CHAIN: u64 = 31337;
const FRAMEWORK: &str = "0x1111111111111111111111111111111111111111";
const RECIPIENT: &str = "0x2222222222222222222222222222222222222222";
const BODIES: usize = 2400;

/// xorshift64*: small, seedable, enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn hex(&mut self, bytes: usize) -> String {
        (0..bytes)
            .map(|_| format!("{:02x}", self.next() as u8))
            .collect()
    }
}

/// A value the parsers must refuse or read exactly: numbers in every form, overflow, hex,
/// addresses good and bad, control characters, huge and deeply nested values.
fn nasty(rng: &mut Rng) -> Value {
    match rng.below(30) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(0),
        3 => json!(-1),
        4 => json!(1.5),
        5 => json!(1e308),
        6 => json!(u64::MAX),
        7 => json!("18446744073709551616"),
        8 => json!(format!("0x{}", "f".repeat(65))),
        9 => json!("0x"),
        10 => json!("-0x1"),
        11 => json!(" 1"),
        12 => json!(""),
        13 => json!("\u{0}\u{1b}[2J\r\n"),
        14 => json!("😀ÿ\u{202e}"),
        15 => json!("9".repeat(100_000)),
        16 => json!([]),
        17 => json!({}),
        18 => (0..64).fold(json!(1), |v, _| json!([v])),
        19 => (0..64).fold(json!(1), |v, _| json!({ "a": v })),
        20 => json!(format!("0x{}", rng.hex(20))),
        21 => json!(format!("0x{}", rng.hex(20).to_uppercase())),
        22 => {
            let n = rng.below(40);
            json!(format!("0xbaa47694{}", rng.hex(n)))
        }
        23 => json!((rng.next() % 1_000_000).to_string()),
        24 => json!(format!("{:#x}", rng.next())),
        25 => json!(rng.next() % 100_000),
        26 => {
            let n = rng.below(70);
            json!(format!("0x{}", rng.hex(n)))
        }
        27 => json!(["a", 1, null]),
        28 => json!(format!("{FRAMEWORK}:submitBlock(bytes32)")),
        _ => json!(format!("{}", rng.next() as i64)),
    }
}

/// Replaces, removes or adds something at a random place inside `v`.
fn mutate(rng: &mut Rng, v: &mut Value, depth: usize) {
    let descend = depth < 6 && rng.below(3) > 0;
    match v {
        Value::Object(map) if !map.is_empty() => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = keys[rng.below(keys.len())].clone();
            if descend {
                mutate(
                    rng,
                    map.get_mut(&key).expect("a key just listed"),
                    depth + 1,
                );
                return;
            }
            match rng.below(4) {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    map.insert(format!("{key}_"), nasty(rng));
                }
                _ => {
                    map.insert(key, nasty(rng));
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let i = rng.below(items.len());
            if descend {
                mutate(rng, &mut items[i], depth + 1);
            } else if rng.below(2) == 0 {
                items.remove(i);
            } else {
                items[i] = nasty(rng);
            }
        }
        other => *other = nasty(rng),
    }
}

fn permit(contract: &str) -> Value {
    json!({
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
            "Permit": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}, {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"}, {"name": "deadline", "type": "uint256"}]
        },
        "primaryType": "Permit",
        "domain": {"name": "Token", "chainId": CHAIN, "verifyingContract": contract},
        "message": {"owner": RECIPIENT, "spender": FRAMEWORK, "value": "1", "nonce": 0, "deadline": 1}
    })
}

/// (path suffix after `ethereum/`, a valid body to start from).
fn seeds(account: &str, new_name: &str) -> Vec<(String, Value)> {
    let acct = |p: &str| format!("accounts/{account}/{p}");
    vec![
        (
            "config".into(),
            json!({ "chain_id": CHAIN, "frozen": false }),
        ),
        (
            format!("accounts/{new_name}"),
            json!({ "allowed_to": [RECIPIENT], "allowed_calls": [format!("{FRAMEWORK}:submitBlock(bytes32)")],
                    "max_fee_per_gas_wei": "1000", "max_gas": 100000, "max_value_wei": "5",
                    "allow_sign_message": true, "allow_sign_typed_data": false, "deletable": true }),
        ),
        (
            acct("sign-tx"),
            json!({ "to": FRAMEWORK, "data": format!("0xbaa47694{}", "ab".repeat(32)), "gas": 100000,
                    "max_fee_per_gas": "1000", "max_priority_fee_per_gas": "1", "value": "0" }),
        ),
        (
            acct("sign-tx"),
            json!({ "type": "legacy", "to": RECIPIENT, "gas": 21000, "gas_price": "1000", "value": "1", "nonce": 0, "chain_id": CHAIN }),
        ),
        (
            acct("sign-message"),
            json!({ "message": "0xdeadbeef", "encoding": "hex" }),
        ),
        (
            acct("sign-typed-data"),
            json!({ "typed_data": permit(FRAMEWORK) }),
        ),
        (acct("nonce"), json!({ "next_nonce": 0, "force": false })),
    ]
}

#[test]
fn thousands_of_hostile_bodies_never_make_a_5xx_a_restart_or_a_lost_nonce() {
    let seed = std::env::var("CUSTODY_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 | 1)
                .unwrap_or(1)
        });
    eprintln!("fuzz seed {seed} (CUSTODY_FUZZ_SEED={seed} replays it)");
    let mut rng = Rng(seed);

    let (cluster, api) = dev_server_with_plugin("plugin-fuzz");
    api.ok(
        "POST",
        "ethereum/config",
        Some(json!({ "chain_id": CHAIN })),
    );
    let accounts = [
        (
            "authority",
            json!({ "allowed_calls": [format!("{FRAMEWORK}:submitBlock(bytes32)")], "max_fee_per_gas_wei": "2000", "max_gas": 200000, "max_value_wei": "0" }),
        ),
        (
            "open",
            json!({ "unrestricted": true, "allow_sign_message": true, "allow_sign_typed_data": true }),
        ),
        ("inert", json!({})),
    ];
    for (name, body) in &accounts {
        api.ok(
            "POST",
            &format!("ethereum/accounts/{name}"),
            Some(body.clone()),
        );
    }
    let mut expected: HashMap<&str, u64> = accounts.iter().map(|(n, _)| (*n, 0)).collect();
    let plugin_before = plugin_pids(&cluster, 0);
    assert_eq!(
        plugin_before.len(),
        1,
        "one plugin process: {plugin_before:?}"
    );

    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut per_path: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..BODIES {
        let (account, _) = accounts[rng.below(accounts.len())];
        let all = seeds(account, &format!("new{i}"));
        let (path, mut body) = all[rng.below(all.len())].clone();
        let mutations = 1 + rng.below(3);
        for _ in 0..mutations {
            mutate(&mut rng, &mut body, 0);
        }
        if rng.below(20) == 0 {
            body = nasty(&mut rng);
        }
        let method = ["POST", "POST", "POST", "PUT"][rng.below(4)];
        let full = format!("ethereum/{path}");
        let (status, reply) = api.call(method, &full, Some(body.clone()));
        *statuses.entry(status).or_default() += 1;
        let kind = path.rsplit('/').next().unwrap_or_default();
        let kind = if path.starts_with("accounts/new") {
            "create"
        } else {
            kind
        };
        *per_path.entry(kind.to_owned()).or_default() += 1;
        let shown: String = body.to_string().chars().take(300).collect();
        assert!(
            status < 500,
            "{method} {full} {shown}: HTTP {status} {reply} (seed {seed}, body {i})"
        );
        if status != 200 {
            continue;
        }
        let data = &reply["data"];
        match kind {
            "sign-tx" => {
                let nonce = data["nonce"].as_u64().expect("a signature names its nonce");
                let next = expected.get_mut(account).expect("a fuzzed account");
                assert!(
                    nonce >= *next,
                    "nonce {nonce} handed out again (next {next})"
                );
                *next = nonce + 1;
            }
            "nonce" => {
                *expected.get_mut(account).expect("a fuzzed account") =
                    data["next_nonce"].as_u64().expect("the new counter");
            }
            // A change that stuck: put the mount back, so signing stays possible.
            "config" => {
                api.ok(
                    "POST",
                    "ethereum/config",
                    Some(json!({ "chain_id": CHAIN, "frozen": false })),
                );
            }
            _ => {}
        }
    }

    for (name, want) in &expected {
        let got = api.ok("GET", &format!("ethereum/accounts/{name}/nonce"), None)["next_nonce"]
            .as_u64()
            .unwrap();
        assert_eq!(
            got, *want,
            "account {name}'s nonce moved without a signature or counter change (seed {seed})"
        );
    }
    assert_eq!(
        plugin_pids(&cluster, 0),
        plugin_before,
        "the plugin process was restarted (seed {seed})"
    );
    assert!(
        statuses.get(&400).copied().unwrap_or(0) > BODIES / 4,
        "most bodies should be refused: {statuses:?}"
    );
    eprintln!("fuzz: {BODIES} bodies, by path {per_path:?}, by status {statuses:?}");
}
