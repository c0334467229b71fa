//! Binding the Authority to its contract on a real chain (anvil): the Authority is created with
//! no allow-list, the contract is deployed with its address, and `custody wallet bind` writes the
//! one allowed call only once the chain shows the contract names the Authority. Every mismatch
//! is refused with nothing written; the bound Authority's submitBlock is mined; the signer token
//! cannot bind.

use custody_test_support as support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use support::plugin::{Anvil, Api, dev_server_with_plugin};
use support::*;

const CHAIN: u64 = 31337;

#[test]
fn the_test_contract_bytecode_is_what_solc_makes_of_its_source() {
    let solcjs = root().join("tools/npm/node_modules/solc/solc.js");
    assert!(
        solcjs.is_file(),
        "the test needs solc-js at {}: run scripts/setup",
        solcjs.display()
    );
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("node")
        .current_dir(root())
        .arg(&solcjs)
        .args(["--bin", "--optimize", "--base-path", "contracts", "-o"])
        .arg(out.path())
        .arg("contracts/PlasmaAuthority.sol")
        .status()
        .expect("node (Debian's nodejs; scripts/setup needs it for npm)");
    assert!(status.success());
    let made = std::fs::read_to_string(out.path().join("PlasmaAuthority_sol_PlasmaAuthority.bin"))
        .unwrap();
    let committed = std::fs::read_to_string(root().join("contracts/PlasmaAuthority.bin")).unwrap();
    assert_eq!(
        made.trim(),
        committed.trim(),
        "contracts/PlasmaAuthority.bin is stale: recompile it (see contracts/README.md)"
    );
}

/// The deployment of PlasmaAuthority naming `authority`, from anvil's first (unlocked) account:
/// the contract's address.
fn deploy(anvil: &Anvil, authority: &str) -> String {
    let code = std::fs::read_to_string(root().join("contracts/PlasmaAuthority.bin")).unwrap();
    let arg = format!("{:0>64}", authority.trim_start_matches("0x").to_lowercase());
    let from = anvil.rpc("eth_accounts", json!([]))[0].clone();
    let hash = anvil.rpc(
        "eth_sendTransaction",
        json!([{ "from": from, "data": format!("0x{}{arg}", code.trim()), "gas": "0x100000" }]),
    );
    mined(anvil, &hash)["contractAddress"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn mined(anvil: &Anvil, hash: &Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = anvil.rpc("eth_getTransactionReceipt", json!([hash]));
        if !r.is_null() {
            assert_eq!(r["status"], "0x1", "{r}");
            return r;
        }
        assert!(Instant::now() < deadline, "{hash} was never mined");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn bind(c: &Custody, rpc: &str, contract: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "--format",
        "json",
        "wallet",
        "bind",
        "authority",
        "--rpc",
        rpc,
        "--contract",
        contract,
    ];
    args.extend(extra);
    c.run(&args)
}

#[test]
fn the_authority_is_bound_only_to_the_contract_that_names_it() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let anvil = Anvil::start(CHAIN);
    let (cluster, api) = dev_server_with_plugin("bind");
    let root_file = dir.join("root.token");
    std::fs::write(&root_file, &api.token).unwrap();
    let c = Custody::for_cluster(dir, &cluster).with_token_file(&root_file);
    let wrap = dir.join("signer.wrap");
    let r = c.run(&[
        "--format",
        "json",
        "wallet",
        "create",
        "authority",
        "--chain-id",
        &CHAIN.to_string(),
        "--signer-token-out",
        wrap.to_str().unwrap(),
    ]);
    r.expect(0);
    let address = r.json()["wallet"]["address"].as_str().unwrap().to_owned();
    let contract = deploy(&anvil, &address);
    let unbound = |what: &str| {
        let a = api.ok("GET", "ethereum/accounts/authority", None);
        assert_eq!(a["allowed_calls"], json!([]), "{what}: {a}");
    };

    step_refusals_write_nothing(&anvil, &c, &address, &unbound);
    step_rpcs_are_checked_and_must_agree(&anvil, &c, &contract, dir, &unbound);
    step_bound_to_the_contract_that_names_it(&anvil, &c, &cluster, &contract, dir, &wrap, &address);
    step_the_rpc_url_s_secrets_stay_out_of_every_output(&anvil, &c, &contract, dir);
}

/// `wallet bind` of the contract with only the RPC arguments given (none: CUSTODY_RPC_URL).
fn bind_rpcs(c: &Custody, contract: &str, rpc_args: &[&str]) -> Run {
    let mut args = vec![
        "--format",
        "json",
        "wallet",
        "bind",
        "authority",
        "--contract",
        contract,
    ];
    args.extend(rpc_args);
    c.run(&args)
}

/// The same custody with CUSTODY_RPC_URL set to `urls`.
fn with_rpc_env(c: &Custody, urls: &str) -> Custody {
    let mut env = c.env.clone();
    env.push(("CUSTODY_RPC_URL".into(), urls.into()));
    Custody {
        cwd: c.cwd.clone(),
        base: c.base.clone(),
        env,
    }
}

fn transcript_lines(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("custody-transcript.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Only https:// or a loopback http:// URL is taken, refused before anything is read; two
/// nodes of the same chain that say different things at the same block (a fork of the chain
/// where the contract's code names someone else: a lying RPC), or an RPC that does not answer
/// beside one that does, are refused (exit 3) naming each; nothing is written.
fn step_rpcs_are_checked_and_must_agree(
    anvil: &Anvil,
    c: &Custody,
    contract: &str,
    dir: &Path,
    unbound: &dyn Fn(&str),
) {
    let lines = transcript_lines(dir);
    for url in [
        "http://10.0.0.1:8545",
        "http://rpc.example.org/v3/KEY",
        "ws://127.0.0.1:8545",
        "file:///etc/passwd",
        "ftp://127.0.0.1/",
    ] {
        bind_rpcs(c, contract, &["--rpc", url])
            .expect(2)
            .stderr_has("https://");
    }
    bind_rpcs(c, contract, &[])
        .expect(2)
        .stderr_has("CUSTODY_RPC_URL");
    with_rpc_env(c, "http://192.168.1.1:8545")
        .run(&["wallet", "bind", "authority", "--contract", contract])
        .expect(2)
        .stderr_has("CUSTODY_RPC_URL (#1)");
    unbound("refused URLs");

    let decoy = deploy(anvil, "0x2222222222222222222222222222222222222222");
    let fork = Anvil::fork(anvil, CHAIN);
    let decoy_code = anvil.rpc("eth_getCode", json!([decoy, "latest"]));
    fork.rpc("anvil_setCode", json!([contract, decoy_code]));
    let r = bind_rpcs(c, contract, &["--rpc", &anvil.url, "--rpc", &fork.url]);
    r.expect(3)
        .stderr_has("the RPCs disagree")
        .stderr_has("authority()")
        .stderr_has(&format!("RPC 1 ({}) says", anvil.url))
        .stderr_has(&format!("RPC 2 ({}) says", fork.url));
    assert!(
        !r.stderr().contains("hash: RPC"),
        "a fork at the same block agrees on the block's hash: {}",
        r.stderr()
    );
    unbound("two RPCs that disagree");
    drop(fork);

    let dead = format!("http://127.0.0.1:{}", closed_port());
    bind_rpcs(c, contract, &["--rpc", &anvil.url, "--rpc", &dead])
        .expect(3)
        .stderr_has(&format!("RPC 2 ({dead}) failed to answer"));
    unbound("an RPC that does not answer");
    assert_eq!(transcript_lines(dir), lines, "a refused bind wrote a line");
}

/// An RPC URL's user info, query and path (where providers keep an API key) reach the provider
/// (a gateway in front of anvil sees them) and nothing else: not stdout, stderr, the transcript,
/// `transcript show` or the report, whether the URL comes from CUSTODY_RPC_URL, --rpc-file or
/// argv (which is warned about), nor an error naming an RPC that does not answer. Two URLs of
/// the same chain (anvil, and anvil through the gateway) agree.
fn step_the_rpc_url_s_secrets_stay_out_of_every_output(
    anvil: &Anvil,
    c: &Custody,
    contract: &str,
    dir: &Path,
) {
    let gateway = support::gateway::KeyGateway::start(&anvil.url);
    let secrets = ["aliceuser", "hunter2pw", "0123abcdKEY", "QSECRETQ"];
    let keyed = |port: u16| {
        format!("http://aliceuser:hunter2pw@127.0.0.1:{port}/v3/0123abcdKEY?apikey=QSECRETQ")
    };
    let shown = format!("http://…@127.0.0.1:{}/…?…", gateway.port);
    let mut outputs = Vec::new();

    let r = bind_rpcs(
        &with_rpc_env(c, &format!("{}, {}", anvil.url, keyed(gateway.port))),
        contract,
        &[],
    );
    r.expect(0);
    assert_eq!(
        r.json()["bind"]["rpcs"],
        json!([anvil.url, shown]),
        "{}",
        r.stdout()
    );
    assert!(
        gateway.seen().iter().any(|s| s
            == "/v3/0123abcdKEY?apikey=QSECRETQ authorization=Basic YWxpY2V1c2VyOmh1bnRlcjJwdw=="),
        "the key never reached the provider: {:?}",
        gateway.seen()
    );
    outputs.push(("CUSTODY_RPC_URL", r.stdout() + &r.stderr()));

    let file = dir.join("rpc-urls");
    std::fs::write(&file, format!("# the provider\n{}\n", keyed(gateway.port))).unwrap();
    let r = bind_rpcs(c, contract, &["--rpc-file", file.to_str().unwrap()]);
    r.expect(0);
    assert_eq!(r.json()["bind"]["rpc"], shown.as_str());
    outputs.push(("--rpc-file", r.stdout() + &r.stderr()));

    let r = bind_rpcs(c, contract, &["--rpc", &keyed(gateway.port)]);
    r.expect(0)
        .stderr_has("every user of this machine can read the command line");
    outputs.push(("--rpc", r.stdout() + &r.stderr()));

    let lines = transcript_lines(dir);
    let r = bind_rpcs(&with_rpc_env(c, &keyed(closed_port())), contract, &[]);
    r.expect(4).stderr_has("does not answer");
    assert_eq!(transcript_lines(dir), lines);
    outputs.push(("an RPC that does not answer", r.stdout() + &r.stderr()));

    let transcript = dir.join("custody-transcript.jsonl");
    outputs.push((
        "the transcript",
        std::fs::read_to_string(&transcript).unwrap(),
    ));
    let show = c.run(&[
        "--format",
        "json",
        "transcript",
        "show",
        transcript.to_str().unwrap(),
    ]);
    show.expect(0);
    assert!(show.stdout().contains(&shown), "{}", show.stdout());
    outputs.push(("transcript show", show.stdout() + &show.stderr()));
    let report = dir.join("report.html");
    c.run(&[
        "transcript",
        "report",
        transcript.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ])
    .expect(0);
    outputs.push(("the report", std::fs::read_to_string(&report).unwrap()));
    for (what, text) in outputs {
        for secret in secrets {
            assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
        }
    }
}

fn step_refusals_write_nothing(anvil: &Anvil, c: &Custody, address: &str, unbound: &dyn Fn(&str)) {
    let decoy = deploy(anvil, "0x2222222222222222222222222222222222222222");
    bind(c, &anvil.url, &decoy, &[])
        .expect(3)
        .stderr_has("not authority");
    unbound("a contract naming someone else");
    bind(
        c,
        &anvil.url,
        "0x3333333333333333333333333333333333333333",
        &[],
    )
    .expect(3)
    .stderr_has("no contract code");
    unbound("an address without code");
    let other = Anvil::start(5);
    let there = deploy(&other, address);
    bind(c, &other.url, &there, &[])
        .expect(3)
        .stderr_has("serves chain 5");
    unbound("another chain");
    bind(c, &anvil.url, "0x12", &[]).expect(2);
    bind(c, &anvil.url, &decoy, &["--call", "submit Block(bytes32)"]).expect(2);
    unbound("bad arguments");
}

fn step_bound_to_the_contract_that_names_it(
    anvil: &Anvil,
    c: &Custody,
    cluster: &TestCluster,
    contract: &str,
    dir: &Path,
    wrap: &Path,
    address: &str,
) {
    let api = Api::new(
        cluster,
        0,
        &std::fs::read_to_string(dir.join("root.token")).unwrap(),
    );
    let r = bind(c, &anvil.url, contract, &[]);
    r.expect(0);
    let facts = r.json()["bind"].clone();
    let proof = anvil.rpc("eth_getProof", json!([contract, [], "latest"]));
    assert_eq!(facts["code_keccak256"], proof["codeHash"], "{facts}");
    assert_eq!(facts["chain_id"], CHAIN);
    let a = api.ok("GET", "ethereum/accounts/authority", None);
    let calls = a["allowed_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{a}");
    assert!(
        calls[0]
            .as_str()
            .unwrap()
            .to_lowercase()
            .starts_with(&contract.to_lowercase()),
        "{a}"
    );
    let transcript = std::fs::read_to_string(dir.join("custody-transcript.jsonl")).unwrap();
    assert!(transcript.contains("\"step\":\"wallet-bind\""));

    // The same bind again changes nothing; another call is refused: an allow-list never changes.
    bind(c, &anvil.url, contract, &[]).expect(0);
    let r = bind(c, &anvil.url, contract, &["--call", "blocks(uint256)"]);
    assert_ne!(r.code(), 0);
    r.stderr_has("never changes");

    // The signing service's token signs submitBlock, which the chain mines; it cannot bind.
    let signer = Api::new(cluster, 0, &support::plugin::unwrap_signer(cluster, wrap));
    let (status, _) = signer.write(
        "ethereum/accounts/authority/bind",
        json!({ "allowed_calls": [format!("{contract}:blocks(uint256)")] }),
    );
    assert_eq!(status, 403);
    anvil.rpc("anvil_setBalance", json!([address, "0x56BC75E2D63100000"]));
    let call = format!("0xbaa47694{}", "ab".repeat(32));
    let tx = signer.ok(
        "POST",
        "ethereum/accounts/authority/sign-tx",
        Some(json!({ "to": contract, "data": call, "gas": 150000, "max_fee_per_gas": "4000000000", "max_priority_fee_per_gas": "1000000000" })),
    );
    let hash = anvil.rpc("eth_sendRawTransaction", json!([tx["signed_tx"]]));
    mined(anvil, &hash);
    let next = anvil.rpc(
        "eth_call",
        json!([{ "to": contract, "data": "0x4ca8714f" }, "latest"]),
    );
    assert_eq!(
        u64::from_str_radix(next.as_str().unwrap().trim_start_matches("0x"), 16).unwrap(),
        2000
    );

    // The chain's view beside the plugin's: even; ahead when a signature was not broadcast;
    // behind (exit 3) when the chain has a nonce the plugin would sign again.
    let show = |expect: i32| {
        let r = c.run(&[
            "--format",
            "json",
            "wallet",
            "show",
            "authority",
            "--rpc",
            &anvil.url,
        ]);
        r.expect(expect);
        r
    };
    let even = show(0);
    let chain = &even.json()["chain"];
    assert_eq!(chain["standing"], "even", "{chain}");
    assert_eq!(chain["pending_nonce"], 1);
    assert_eq!(chain["mined_nonce"], 1);
    assert_eq!(chain["plugin_next_nonce"], 1);
    assert_eq!(chain["chain_id"], CHAIN);
    signer.ok(
        "POST",
        "ethereum/accounts/authority/sign-tx",
        Some(json!({ "to": contract, "data": call, "gas": 150000, "max_fee_per_gas": "4000000000", "max_priority_fee_per_gas": "1000000000" })),
    );
    let ahead = show(0);
    ahead.stderr_has("1 transaction(s) authority signed are not on the chain");
    assert_eq!(ahead.json()["chain"]["standing"], "ahead");
    anvil.rpc("anvil_setNonce", json!([address, "0x5"]));
    let behind = show(3);
    behind.stderr_has("3 behind the chain");
    assert_eq!(behind.json()["chain"]["by"], 3);
}
