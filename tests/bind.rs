//! Binding the Authority to its contract on a real chain (anvil): the Authority is created with
//! no allow-list, the contract is deployed with its address, and `custody wallet bind` writes the
//! one allowed call only once the chain shows the contract names the Authority. Every mismatch
//! is refused with nothing written; the bound Authority's submitBlock is mined; the signer token
//! cannot bind. A call that is not a function of the contract (the trial's `submitblock(bytes32)`)
//! is refused naming what the code holds, on the repo's contract and on a framework's shape (a
//! proxy-less contract with 43 functions); `--abi` binds a proxy's; the operator confirms.

use custody_test_support as support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use support::plugin::{Anvil, Api, dev_server_with_plugin};
use support::*;

const CHAIN: u64 = 31337;

#[test]
fn the_test_contracts_bytecode_is_what_solc_makes_of_their_source() {
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
        .args([
            "--bin",
            "--abi",
            "--optimize",
            "--base-path",
            "contracts",
            "-o",
        ])
        .arg(out.path())
        .args([
            "contracts/PlasmaAuthority.sol",
            "contracts/PlasmaFrameworkShape.sol",
        ])
        .status()
        .expect("node (Debian's nodejs; scripts/setup needs it for npm)");
    assert!(status.success());
    for (made, committed) in [
        (
            "PlasmaAuthority_sol_PlasmaAuthority.bin",
            "PlasmaAuthority.bin",
        ),
        (
            "PlasmaFrameworkShape_sol_PlasmaFrameworkShape.bin",
            "PlasmaFrameworkShape.bin",
        ),
        (
            "PlasmaFrameworkShape_sol_PlasmaFrameworkShape.abi",
            "PlasmaFrameworkShape.abi",
        ),
    ] {
        let made = std::fs::read_to_string(out.path().join(made)).unwrap();
        let kept = std::fs::read_to_string(root().join("contracts").join(committed)).unwrap();
        assert_eq!(
            made.trim(),
            kept.trim(),
            "contracts/{committed} is stale: recompile it (see contracts/README.md)"
        );
    }
}

/// The deployment of PlasmaAuthority naming `authority`, from anvil's first (unlocked) account:
/// the contract's address.
fn deploy(anvil: &Anvil, authority: &str) -> String {
    let code = std::fs::read_to_string(root().join("contracts/PlasmaAuthority.bin")).unwrap();
    create(anvil, &format!("{}{}", code.trim(), word(authority)))
}

/// The deployment of PlasmaFrameworkShape naming `authority` (maintainer 0x…77, a week's exit
/// period): the contract's address.
fn deploy_framework(anvil: &Anvil, authority: &str) -> String {
    let code = std::fs::read_to_string(root().join("contracts/PlasmaFrameworkShape.bin")).unwrap();
    let args = format!(
        "{}{}{:064x}",
        word(authority),
        word(&format!("0x{}", "77".repeat(20))),
        7 * 24 * 3600
    );
    create(anvil, &format!("{}{args}", code.trim()))
}

/// An EIP-1167 minimal proxy delegating every call to `to`: its runtime code pushes no
/// selector at all (45 bytes: the 20-byte address is a PUSH20).
fn deploy_proxy(anvil: &Anvil, to: &str) -> String {
    let runtime = format!(
        "363d3d373d3d3d363d73{}5af43d82803e903d91602b57fd5bf3",
        to.trim_start_matches("0x").to_lowercase()
    );
    create(anvil, &format!("3d602d80600a3d3981f3{runtime}"))
}

/// An address as one ABI word.
fn word(address: &str) -> String {
    format!("{:0>64}", address.trim_start_matches("0x").to_lowercase())
}

/// A contract created from anvil's first (unlocked) account with `init` (hex): its address.
fn create(anvil: &Anvil, init: &str) -> String {
    let from = anvil.rpc("eth_accounts", json!([]))[0].clone();
    let hash = anvil.rpc(
        "eth_sendTransaction",
        json!([{ "from": from, "data": format!("0x{init}"), "gas": "0x800000" }]),
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

/// `wallet bind authority` with `--yes`, as a script runs it.
fn bind(c: &Custody, rpc: &str, contract: &str, extra: &[&str]) -> Run {
    bind_as(c, "authority", rpc, contract, &[&["--yes"], extra].concat())
}

/// `wallet bind NAME`, its output JSON (no `--yes` unless `extra` has it).
fn bind_as(c: &Custody, name: &str, rpc: &str, contract: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "--format",
        "json",
        "wallet",
        "bind",
        name,
        "--rpc",
        rpc,
        "--contract",
        contract,
    ];
    args.extend(extra);
    c.run(&args)
}

/// `wallet bind NAME` on a terminal (text output), answering `answer` to its confirmation.
fn bind_on_terminal(c: &Custody, name: &str, rpc: &str, contract: &str, answer: &str) -> Run {
    run_on_terminal(
        c,
        &["wallet", "bind", name, "--rpc", rpc, "--contract", contract],
        "for ever?",
        answer,
    )
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
    let (address, wrap) = create_account(&c, dir, "authority");
    let contract = deploy(&anvil, &address);
    let unbound = |name: &str, what: &str| {
        let a = api.ok("GET", &format!("ethereum/accounts/{name}"), None);
        assert_eq!(a["allowed_calls"], json!([]), "{name}, {what}: {a}");
    };
    let bound_to = |name: &str, contract: &str, call: &str| {
        let a = api.ok("GET", &format!("ethereum/accounts/{name}"), None);
        let calls = a["allowed_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 1, "{a}");
        let (to, what) = calls[0].as_str().unwrap().split_once(':').unwrap();
        assert!(to.eq_ignore_ascii_case(contract), "{a}");
        assert!(what == call || what.starts_with("0x"), "{a}");
    };

    step_refusals_write_nothing(&anvil, &c, &address, &|w| unbound("authority", w));
    step_rpcs_are_checked_and_must_agree(&anvil, &c, &contract, dir, &|w| unbound("authority", w));
    step_a_call_the_code_lacks_is_refused(&anvil, &c, &contract, &|w| unbound("authority", w));
    step_bound_to_the_contract_that_names_it(&anvil, &c, &cluster, &contract, dir, &wrap, &address);
    step_the_rpc_url_s_secrets_stay_out_of_every_output(&anvil, &c, &contract, dir);
    step_a_framework_s_calls_are_checked(&anvil, &c, dir, &unbound, &bound_to);
    step_a_selector_pushed_shorter_is_found(&anvil, &c, dir, &bound_to);
    step_a_proxy_is_bound_on_its_abi(&anvil, &c, dir, &unbound, &bound_to);
}

/// `wallet create NAME` on the test chain, with no allow-list: its address and wrapping token.
fn create_account(c: &Custody, dir: &Path, name: &str) -> (String, std::path::PathBuf) {
    let wrap = dir.join(format!("{name}.wrap"));
    let r = c.run(&[
        "--format",
        "json",
        "wallet",
        "create",
        name,
        "--chain-id",
        &CHAIN.to_string(),
        "--signer-token-out",
        wrap.to_str().unwrap(),
    ]);
    r.expect(0);
    let address = r.json()["wallet"]["address"].as_str().unwrap().to_owned();
    (address, wrap)
}

/// The facts of the transcript's last wallet-bind line.
fn last_bind_facts(dir: &Path) -> Value {
    let transcript = std::fs::read_to_string(dir.join("custody-transcript.jsonl")).unwrap();
    let line = transcript
        .lines()
        .rev()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["step"] == "wallet-bind")
        .expect("a wallet-bind line");
    line["facts"].clone()
}

/// `wallet bind` of the contract with only the RPC arguments given (none: CUSTODY_RPC_URL),
/// confirmed by `--yes`.
fn bind_rpcs(c: &Custody, contract: &str, rpc_args: &[&str]) -> Run {
    let mut args = vec![
        "--format",
        "json",
        "--yes",
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

/// The trial's typo on the repo's own contract, which names the Authority: refused (exit 3),
/// naming the spelling whose selector the code pushes; and an operator who does not confirm
/// (no terminal and no --yes, or "no" on the terminal) binds nothing.
fn step_a_call_the_code_lacks_is_refused(
    anvil: &Anvil,
    c: &Custody,
    contract: &str,
    unbound: &dyn Fn(&str),
) {
    let typo = bind(c, &anvil.url, contract, &["--call", "submitblock(bytes32)"]);
    typo.expect(3)
        .stderr_has("submitblock(bytes32) (selector 0x")
        .stderr_has("does not occur in the runtime code of")
        .stderr_has("submitBlock(bytes32) (0xbaa47694) differs from it only in case")
        .stderr_has("0xbf7e214f  authority() (--authority-getter)")
        .stderr_has("\n  0xbaa47694  submitBlock(bytes32) (differs only in case)")
        .stderr_has("Nothing was written");
    unbound("submitblock(bytes32)");
    bind(c, &anvil.url, contract, &["--call", "submitBlock(bytes)"])
        .expect(3)
        .stderr_has("No spelling of submitBlock that differs from it only in case");
    unbound("submitBlock(bytes)");

    let unasked = bind_as(c, "authority", &anvil.url, contract, &[]);
    unasked.expect(2).stderr_has("pass --yes");
    unbound("no terminal and no --yes");

    let no = bind_on_terminal(c, "authority", &anvil.url, contract, "n");
    let text = no.stdout().replace("\r\n", "\n");
    assert_eq!(no.code(), 1, "{text}");
    for line in [
        "About to bind authority (",
        &format!("contract  {contract}"),
        &format!("chain     {CHAIN}"),
        "function  submitBlock(bytes32)",
        "selector  0xbaa47694: a PUSH4 operand of the contract's code",
        "checked   at block ",
        "wallet bind cancelled; nothing was written",
    ] {
        // (the receipt's address is lower case; custody shows it checksummed)
        let found = text.to_lowercase().contains(&line.to_lowercase());
        assert!(found, "{line:?} not in:\n{text}");
    }
    unbound("no on the terminal");
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
    let check = &facts["call_check"];
    assert_eq!(check["selector"], "0xbaa47694", "{facts}");
    assert_eq!(check["in_code"], "push4", "{facts}");
    assert_eq!(check["confirmed"], "--yes", "{facts}");
    assert!(check["abi"].is_null(), "{facts}");
    assert!(check["push4_operands"].as_u64().unwrap() >= 4, "{facts}");
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

/// The real shape of a framework: one proxy-less contract with 43 functions. The typo is
/// refused with and without its ABI, each naming submitBlock(bytes32); an ABI that lacks the
/// call is refused even where the code has it; what is not an ABI is exit 2; the right call,
/// confirmed on the terminal, is bound.
fn step_a_framework_s_calls_are_checked(
    anvil: &Anvil,
    c: &Custody,
    dir: &Path,
    unbound: &dyn Fn(&str, &str),
    bound_to: &dyn Fn(&str, &str, &str),
) {
    let (address, _) = create_account(c, dir, "framework");
    let framework = deploy_framework(anvil, &address);
    let abi = root().join("contracts/PlasmaFrameworkShape.abi");
    let abi = abi.to_str().unwrap();
    let yes = |extra: &[&str]| {
        bind_as(
            c,
            "framework",
            &anvil.url,
            &framework,
            &[&["--yes"], extra].concat(),
        )
    };

    let typo = yes(&["--call", "submitblock(bytes32)"]);
    typo.expect(3)
        .stderr_has("submitBlock(bytes32) (0xbaa47694) differs from it only in case");
    let listed = typo
        .stderr()
        .lines()
        .filter(|l| l.starts_with("  0x"))
        .count();
    assert!(
        listed >= 43,
        "{listed} selectors listed:\n{}",
        typo.stderr()
    );
    unbound("framework", "submitblock(bytes32)");

    let typo = yes(&["--call", "submitblock(bytes32)", "--abi", abi]);
    typo.expect(3)
        .stderr_has("is not a function of the ABI")
        .stderr_has(
            "The ABI has submitBlock(bytes32) (0xbaa47694), which differs from it only in case.",
        )
        .stderr_has("0xbaa47694  submitBlock(bytes32) (function)")
        .stderr_has("0x8c396220  protocols(uint256) (function)")
        .stderr_has("0x472511eb  Unauthorized(address) (error; pushed shifted right by 1 bits)");
    unbound("framework", "submitblock(bytes32) with --abi");
    yes(&["--call", "submitBlock(bytes)", "--abi", abi])
        .expect(3)
        .stderr_has("The ABI has submitBlock with other types: submitBlock(bytes32).");
    unbound("framework", "submitBlock(bytes) with --abi");

    let lacking = dir.join("authority-only.abi");
    std::fs::write(
        &lacking,
        r#"[{"type":"function","name":"authority","inputs":[],"outputs":[{"type":"address"}]}]"#,
    )
    .unwrap();
    yes(&["--abi", lacking.to_str().unwrap()])
        .expect(3)
        .stderr_has("submitBlock(bytes32) (selector 0xbaa47694) is not a function of the ABI")
        .stderr_has("does occur in the runtime code");
    unbound("framework", "an ABI without the call");
    let not_abi = dir.join("not.abi");
    std::fs::write(&not_abi, "submitBlock(bytes32)").unwrap();
    yes(&["--abi", not_abi.to_str().unwrap()])
        .expect(2)
        .stderr_has("not JSON");
    std::fs::write(&not_abi, r#"{"bytecode":"0x00"}"#).unwrap();
    yes(&["--abi", not_abi.to_str().unwrap()])
        .expect(2)
        .stderr_has("not a JSON ABI");
    yes(&["--abi", dir.join("missing.abi").to_str().unwrap()])
        .expect(2)
        .stderr_has("cannot read it");
    unbound("framework", "not an ABI");

    let r = bind_on_terminal(c, "framework", &anvil.url, &framework, "y");
    let text = r.stdout().replace("\r\n", "\n");
    assert_eq!(r.code(), 0, "{text}");
    assert!(
        text.contains("framework (") && text.contains("is bound to"),
        "{text}"
    );
    bound_to("framework", &framework, "submitBlock(bytes32)");
    let facts = last_bind_facts(dir);
    assert_eq!(facts["account"], "framework", "{facts}");
    assert_eq!(
        facts["call_check"]["confirmed"], "on the terminal",
        "{facts}"
    );
    assert_eq!(facts["call_check"]["in_code"], "push4", "{facts}");
    assert!(
        facts["call_check"]["push4_operands"].as_u64().unwrap() >= 43,
        "{facts}"
    );
}

/// A selector that begins with zero bytes: solc pushes 0x0000699c as PUSH2 0x699c, never as a
/// PUSH4; the scan still finds it, and says so.
fn step_a_selector_pushed_shorter_is_found(
    anvil: &Anvil,
    c: &Custody,
    dir: &Path,
    bound_to: &dyn Fn(&str, &str, &str),
) {
    let (address, _) = create_account(c, dir, "zeroes");
    let framework = deploy_framework(anvil, &address);
    let code = anvil.rpc("eth_getCode", json!([framework, "latest"]));
    let code = code.as_str().unwrap();
    assert!(
        !code.contains("630000699c") && code.contains("61699c"),
        "{code}"
    );
    let call = "updateExitBond56989(uint256)";
    let r = bind_as(
        c,
        "zeroes",
        &anvil.url,
        &framework,
        &["--yes", "--call", call],
    );
    r.expect(0).stderr_has("only as a PUSH2 of its value");
    let check = &r.json()["bind"]["call_check"];
    assert_eq!(check["selector"], "0x0000699c", "{check}");
    assert_eq!(check["in_code"], "push2", "{check}");
    bound_to("zeroes", &framework, call);
}

/// A proxy's code (EIP-1167) pushes no selector: refused without --abi, with a hint; bound with
/// an ABI that holds the call, the ABI's sha256 recorded and the confirmation saying the code
/// does not have it.
fn step_a_proxy_is_bound_on_its_abi(
    anvil: &Anvil,
    c: &Custody,
    dir: &Path,
    unbound: &dyn Fn(&str, &str),
    bound_to: &dyn Fn(&str, &str, &str),
) {
    let (address, _) = create_account(c, dir, "proxied");
    let proxy = deploy_proxy(anvil, &deploy_framework(anvil, &address));
    bind_as(c, "proxied", &anvil.url, &proxy, &["--yes"])
        .expect(3)
        .stderr_has("The code has no PUSH4 operand at all")
        .stderr_has("hint: if the contract is a proxy");
    unbound("proxied", "a proxy without --abi");
    let abi = root().join("contracts/PlasmaFrameworkShape.abi");
    let r = bind_as(
        c,
        "proxied",
        &anvil.url,
        &proxy,
        &["--yes", "--abi", abi.to_str().unwrap()],
    );
    r.expect(0)
        .stderr_has("NOT in the contract's code: only the ABI says")
        .stderr_has("holds submitBlock(bytes32)");
    let check = &r.json()["bind"]["call_check"];
    assert_eq!(check["in_code"], "absent", "{check}");
    assert_eq!(check["push4_operands"], 0, "{check}");
    assert_eq!(
        check["abi"]["sha256"],
        support::plugin::sha256_file(&abi),
        "{check}"
    );
    assert_eq!(check["abi"]["functions"], 43, "{check}");
    bound_to("proxied", &proxy, "submitBlock(bytes32)");
}
