//! `custody rehearse`: the lifecycle implemented so far, on throwaway local clusters, with
//! generated holder keys. It proves each step by checking the servers' own answers.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use crate::cli::RehearseArgs;
use crate::error::{Context as _, Error, Kind, Result};
use crate::flows::Ctx;
use crate::flows::nodes::{NodeStatus, all_status};
use crate::flows::poll::poll;
use crate::flows::shares::{Shares, decrypt_share_file};
use crate::flows::unseal::{NodeState, UnsealReport, record, unseal_with};
use crate::fsutil::write_private;
use crate::localcluster::{ClusterSpec, LocalCluster, find_bao};
use crate::pgp::keygen::generate_cv25519;
use crate::secret::SecretString;
use crate::shamir;
use crate::transcript::{Transcript, verify_file};
use crate::ui::Ui;
use crate::vault::{HaRole, Signing, Vault};

const HOLDERS: usize = 5;
/// Where the rehearsal mounts the signer, the Authority's account name, and the contract its
/// allow-list names (the rehearsal never reaches a chain).
const MOUNT: &str = "ethereum";
const AUTHORITY: &str = "authority";
const CONTRACT: &str = "0x1111111111111111111111111111111111111111";
const THRESHOLD: u32 = 3;
const JOIN_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug, Serialize)]
struct Proof {
    step: String,
    proved: String,
    seconds: f64,
}

struct Holder {
    fingerprint: String,
    public: PathBuf,
    secret: PathBuf,
}

pub async fn run(ctx: &Ctx, args: &RehearseArgs) -> Result<()> {
    let bao = find_bao(args.bao_bin.as_deref())?;
    let plugin = find_plugin(args.plugin_bin.as_deref())?;
    let work = tempfile::Builder::new()
        .prefix("custody-rehearsal-")
        .tempdir()
        .map_err(|e| Error::failed(format!("making the rehearsal directory: {e}")))?;
    let dir = work.path().to_owned();
    let started = Instant::now();
    let result = rehearse(ctx, &bao, &plugin, &dir).await;
    let elapsed = started.elapsed();
    match &result {
        Ok(_) if !args.keep => drop(work),
        _ => {
            let kept = work.keep();
            ctx.ui.status(format!(
                "The rehearsal's files are kept in {}",
                kept.display()
            ));
        }
    }
    let (proofs, head) = result?;
    let mut text = String::from("Rehearsal passed. What it proved:\n");
    for (i, p) in proofs.iter().enumerate() {
        text.push_str(&format!(
            "  {:>2}. {:<40} {:>6.1} s  {}\n",
            i + 1,
            p.step,
            p.seconds,
            p.proved
        ));
    }
    text.push_str(&format!(
        "Total {:.1} s. Transcript head: {head}\nNothing is left running or on disk{}.",
        elapsed.as_secs_f64(),
        if args.keep {
            " but the kept directory"
        } else {
            ""
        }
    ));
    ctx.ui.result(&text, json!({ "ok": true, "proofs": proofs, "seconds": elapsed.as_secs_f64(), "transcript_head": head }));
    Ok(())
}

/// The signer plugin: the given file, or `custody-signer` beside the running custody.
fn find_plugin(explicit: Option<&Path>) -> Result<PathBuf> {
    let path = match explicit {
        Some(p) => p.to_owned(),
        None => std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("custody-signer")))
            .unwrap_or_else(|| PathBuf::from("custody-signer")),
    };
    if !path.is_file() {
        return Err(Error::precondition(format!("the signer plugin {} was not found", path.display()))
            .hint("build it (cargo build --workspace --bins; scripts/rehearse does), or give --plugin-bin FILE"));
    }
    Ok(path)
}

async fn rehearse(
    ctx: &Ctx,
    bao: &Path,
    plugin: &Path,
    dir: &Path,
) -> Result<(Vec<Proof>, String)> {
    let mut proofs = Vec::new();
    let mut step = Instant::now();
    let prove = |proofs: &mut Vec<Proof>, name: &str, proved: String, step: &mut Instant| {
        ctx.ui.status(format!("ok  {name}: {proved}"));
        proofs.push(Proof {
            step: name.to_owned(),
            proved,
            seconds: step.elapsed().as_secs_f64(),
        });
        *step = Instant::now();
    };

    // Five holders and the operator, each with a fresh v4 Cv25519 key.
    let keys_dir = dir.join("keys");
    std::fs::create_dir_all(&keys_dir)
        .map_err(|e| Error::failed(format!("{}: {e}", keys_dir.display())))?;
    let mut holders = Vec::new();
    for i in 1..=HOLDERS + 1 {
        let name = if i > HOLDERS {
            "operator".to_owned()
        } else {
            format!("holder{i}")
        };
        let key = generate_cv25519(&format!("Rehearsal {name} <{name}@rehearsal.invalid>"))?;
        let public = keys_dir.join(format!("{name}.pub.asc"));
        let secret = keys_dir.join(format!("{name}.sec.asc"));
        std::fs::write(&public, &key.public_armored)
            .map_err(|e| Error::failed(format!("{}: {e}", public.display())))?;
        write_private(&secret, &key.secret_armored, false)?;
        holders.push(Holder {
            fingerprint: key.fingerprint,
            public,
            secret,
        });
    }
    let operator = holders.pop().expect("the operator key");
    prove(
        &mut proofs,
        "holder keys",
        format!("{HOLDERS} holders and the operator have v4 Cv25519 keys"),
        &mut step,
    );

    let mut cluster = LocalCluster::start(ClusterSpec {
        dir: Some(dir.join("blue")),
        plugins: vec![plugin.to_owned()],
        ..ClusterSpec::raft("rehearsal-blue", 3, bao.to_owned())
    })?;
    let inner = Ctx {
        ui: Ui::silent(),
        addrs: cluster.addrs(),
        ca_cert: Some(cluster.ca_cert.clone()),
        transcript: Transcript::at(dir.join("custody-transcript.jsonl")),
        token: None,
    };
    let vault = inner.vault()?;
    prove(
        &mut proofs,
        "cluster started",
        "3 OpenBao nodes on 127.0.0.1, TLS from a CA made for this run, the signer in their plugin_directory".into(),
        &mut step,
    );

    // Ceremony 1: init, as the script ceremonies/init.toml walks it.
    let out = dir.join("init");
    let transcript = dir.join("custody-transcript.jsonl");
    let blue_globals = ceremony_globals(&cluster.addrs(), &cluster.ca_cert, &transcript);
    let pgp_keys = holders
        .iter()
        .map(|h| h.public.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    expect_ceremony(
        dir,
        &blue_globals,
        "init",
        &[
            ("pgp_keys", pgp_keys),
            ("root_token_pgp_key", operator.public.display().to_string()),
            ("out", out.display().to_string()),
        ],
        None,
    )
    .map_err(|e| rehearsal_failed("init", e, &cluster))?;
    for h in &holders {
        let share = crate::flows::files::share_path(&out, &h.fingerprint);
        if !share.is_file() {
            return Err(Error::failed(format!(
                "init wrote no share for {}",
                h.fingerprint
            )));
        }
    }
    prove(
        &mut proofs,
        "init (ceremony 1)",
        format!(
            "ceremonies/init.toml: 5 shares, threshold 3, each share's recipient is its holder's encryption key; root token to {}",
            &operator.fingerprint[..16]
        ),
        &mut step,
    );

    // Ceremony 2: holders 1, 3 and 5 unseal the fresh cluster together; the followers join.
    let quorum: Vec<&Holder> = [0usize, 2, 4].iter().map(|i| &holders[*i]).collect();
    let shares = decrypt_shares(&inner, &out, &quorum)?;
    expect_ceremony(
        dir,
        &blue_globals,
        "unseal",
        &[],
        Some(&share_lines(&shares)),
    )
    .map_err(|e| rehearsal_failed("unseal", e, &cluster))?;
    let roles = wait_roles(&vault, &inner, Duration::from_secs(30)).await?;
    prove(
        &mut proofs,
        "unseal, fresh cluster",
        format!(
            "ceremonies/unseal.toml, holders 1, 3, 5 in one run: leader unsealed, followers joined and unsealed ({roles})"
        ),
        &mut step,
    );

    // Ceremony 3: the bastion goes away (here a loopback port that no longer listens).
    let bastion = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| Error::failed(format!("a loopback port: {e}")))?;
    expect_ceremony(
        dir,
        &blue_globals,
        "remove-bastion",
        &[("bastion", bastion.to_string())],
        None,
    )?;
    prove(
        &mut proofs,
        "remove bastion (ceremony 3)",
        format!(
            "ceremonies/remove-bastion.toml: confirmed, and {bastion} no longer accepts connections"
        ),
        &mut step,
    );

    // A restart of every node; holders 2, 4 and 5 come one at a time.
    cluster.restart()?;
    let sealed = all_status(&vault, &inner.addrs).await;
    if !sealed
        .iter()
        .all(|n| n.reachable && n.initialized && n.sealed)
    {
        return Err(Error::failed(
            "after the restart, not every node was initialized and sealed",
        ));
    }
    let later: Vec<&Holder> = [1usize, 3, 4].iter().map(|i| &holders[*i]).collect();
    for (k, h) in later.iter().enumerate() {
        let shares = decrypt_shares(&inner, &out, &[*h])?;
        let report = unseal_with(&inner, &vault, &inner.addrs, &shares, JOIN_TIMEOUT).await?;
        record(&inner, &report, &shares)?;
        if k + 1 < later.len() {
            let want = (k + 1) as u32;
            if !report
                .nodes
                .iter()
                .all(|n| n.state == NodeState::Sealed && n.progress == want)
            {
                return Err(Error::failed(format!(
                    "after holder {} alone, every node should be sealed at {want}/3: {:?}",
                    k + 1,
                    report
                        .nodes
                        .iter()
                        .map(|n| (n.state, n.progress))
                        .collect::<Vec<_>>()
                )));
            }
        } else {
            expect_all_unsealed(&report, &cluster)?;
        }
    }
    let roles = wait_roles(&vault, &inner, Duration::from_secs(30)).await?;
    prove(
        &mut proofs,
        "restart + unseal one by one",
        format!(
            "each server kept its progress between runs (1/3, 2/3), the third holder unsealed all ({roles})"
        ),
        &mut step,
    );

    let auth = authority(&inner, dir, &out, &holders, &operator, plugin).await?;
    prove(
        &mut proofs,
        "authority (ceremony 4)",
        auth.summary.clone(),
        &mut step,
    );

    let (snap, green, reader) = snapshots(&inner, dir, bao, plugin, &out, &holders, &auth).await?;
    prove(
        &mut proofs,
        "snapshot + green (ceremony 5, phase 1)",
        snap,
        &mut step,
    );

    let switched = phase2(&inner, &cluster, &green, dir, &auth, &reader).await?;
    prove(&mut proofs, "cutover (phase 2)", switched, &mut step);

    // The root token lived in both clusters (green was restored from blue); blue-green-2 revoked
    // it in each. Every node of both must refuse it now.
    let mut refused = 0;
    for (addrs, ca) in [
        (cluster.addrs(), &cluster.ca_cert),
        (green.addrs(), &green.ca_cert),
    ] {
        let v = Vault::new(Some(ca), Some(auth.root.clone()))?;
        for a in &addrs {
            match v.lookup_self(a).await {
                Err(crate::vault::NodeError::Api { status: 403, .. }) => refused += 1,
                other => {
                    return Err(Error::verification(format!(
                        "{a} still answers the revoked root token: {:?}",
                        other.map(|_| "accepted")
                    )));
                }
            }
        }
    }
    drop(green);
    prove(
        &mut proofs,
        "root revoked",
        format!(
            "ceremonies/blue-green-2.toml revoked it in both clusters: all {refused} nodes refuse it; no root token stands"
        ),
        &mut step,
    );

    let head = verify_file(inner.transcript.path())?;
    prove(
        &mut proofs,
        "transcript verify",
        format!("{} entries, hash chain intact", head.entries),
        &mut step,
    );
    cluster.stop_all();
    drop(cluster);
    Ok((proofs, head.head_hash))
}

fn decrypt_shares(ctx: &Ctx, out: &Path, holders: &[&Holder]) -> Result<Shares> {
    let mut shares = Vec::new();
    let mut fprs = Vec::new();
    for h in holders {
        let (text, fpr) = decrypt_share_file(
            ctx,
            &crate::flows::files::share_path(out, &h.fingerprint),
            &h.secret,
            None,
        )?;
        shares.push(shamir::parse_share(&text, &format!("holder {fpr}")).map_err(Error::failed)?);
        fprs.push(fpr);
    }
    Ok(Shares {
        shares,
        holders: fprs,
    })
}

fn expect_all_unsealed(report: &UnsealReport, cluster: &LocalCluster) -> Result<()> {
    if report.nodes.iter().all(|n| n.state == NodeState::Unsealed) {
        return Ok(());
    }
    Err(Error::failed(format!(
        "not every node was unsealed: {}\n{}",
        serde_json::to_string(&report.nodes).unwrap_or_default(),
        tail(&cluster.logs(), 40)
    )))
}

/// One PEM file trusting both clusters' CAs, for clients that reach either through the balancer.
fn ca_bundle(dir: &Path, blue: &Path, green: &Path) -> Result<PathBuf> {
    let both = dir.join("blue-green-ca.pem");
    let mut pem = std::fs::read(blue).context(format!("reading {}", blue.display()))?;
    pem.extend(std::fs::read(green).context(format!("reading {}", green.display()))?);
    std::fs::write(&both, pem).context(format!("writing {}", both.display()))?;
    Ok(both)
}

/// Waits until one node is active and the others standby; returns "1 active, 2 standby".
async fn wait_roles(vault: &Vault, ctx: &Ctx, bound: Duration) -> Result<String> {
    poll(bound, Duration::from_millis(250), || async {
        let nodes: Vec<NodeStatus> = all_status(vault, &ctx.addrs).await;
        let count = |role| nodes.iter().filter(|n| n.ha_role == Some(role)).count();
        let (active, standby) = (count(HaRole::Active), count(HaRole::Standby));
        let roles = format!("{active} active, {standby} standby");
        if active == 1 && active + standby == nodes.len() {
            Ok(roles)
        } else {
            Err(roles)
        }
    })
    .await
    .map_err(|roles| Error::failed(format!("the cluster did not settle: {roles}")))
}

fn rehearsal_failed(step: &str, e: Error, cluster: &LocalCluster) -> Error {
    let logs = tail(&cluster.logs(), 40);
    e.doing(format!("rehearsal step {step} failed"))
        .hint(format!("the servers' last log lines:\n{logs}"))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The global options of a ceremony run against `addrs`.
fn ceremony_globals(addrs: &[crate::vault::Addr], ca: &Path, transcript: &Path) -> Vec<String> {
    crate::cli::GlobalArgs {
        addr: addrs.iter().map(ToString::to_string).collect(),
        ca_cert: Some(ca.to_owned()),
        format: crate::cli::Format::Text,
        transcript: transcript.to_owned(),
        yes: true,
        token_file: None,
    }
    .to_argv()
}

/// Runs `custody ceremony run NAME` as its own process, the way an operator does, in the
/// rehearsal's directory; `stdin` carries the holders' shares, from memory. Its output goes to
/// `ceremony-NAME.log` there. Returns the exit code.
fn run_ceremony(
    dir: &Path,
    globals: &[String],
    name: &str,
    params: &[(&str, String)],
    stdin: Option<&[u8]>,
) -> Result<i32> {
    let bao = find_bao(None).ok();
    use std::io::Write as _;
    let exe = std::env::current_exe()
        .map_err(|e| Error::failed(format!("finding custody itself: {e}")))?;
    let log = dir.join(format!("ceremony-{name}.log"));
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| Error::failed(format!("{}: {e}", log.display())))?;
    let err = out
        .try_clone()
        .context(format!("{}: a second handle for stderr", log.display()))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.current_dir(dir).args(globals).args([
        "ceremony",
        "run",
        name,
        "--state",
        &format!("ceremony-{name}.state.json"),
    ]);
    if let Some(b) = bao {
        cmd.env("CUSTODY_BAO_BIN", b);
    }
    for (k, v) in params {
        cmd.arg("--param").arg(format!("{k}={v}"));
    }
    cmd.stdin(if stdin.is_some() {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    })
    .stdout(out)
    .stderr(err);
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::failed(format!("starting ceremony {name}: {e}")))?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(data);
    }
    let status = child
        .wait()
        .map_err(|e| Error::failed(format!("ceremony {name}: {e}")))?;
    Ok(status.code().unwrap_or(1))
}

fn ceremony_failed(dir: &Path, name: &str, code: i32) -> Error {
    let log = std::fs::read_to_string(dir.join(format!("ceremony-{name}.log"))).unwrap_or_default();
    Error::failed(format!(
        "ceremony {name} exited {code}:\n{}",
        tail(&log, 30)
    ))
}

fn expect_ceremony(
    dir: &Path,
    globals: &[String],
    name: &str,
    params: &[(&str, String)],
    stdin: Option<&[u8]>,
) -> Result<()> {
    match run_ceremony(dir, globals, name, params, stdin)? {
        0 => Ok(()),
        code => Err(ceremony_failed(dir, name, code)),
    }
}

/// The quorum's shares, one per line, in zeroizing memory (for a ceremony's stdin).
fn share_lines(shares: &Shares) -> zeroize::Zeroizing<Vec<u8>> {
    let mut v = zeroize::Zeroizing::new(Vec::new());
    for s in &shares.shares {
        v.extend_from_slice(s.text.expose().as_bytes());
        v.push(b'\n');
    }
    v
}

/// The same nodes, CA and transcript, with another token.
fn as_token(ctx: &Ctx, token: Option<SecretString>) -> Ctx {
    Ctx {
        ui: Ui::silent(),
        addrs: ctx.addrs.clone(),
        ca_cert: ctx.ca_cert.clone(),
        transcript: Transcript::at(ctx.transcript.path()),
        token,
    }
}

/// Decrypts a token file custody wrote, with the operator's secret key, in memory.
fn decrypt_token(file: &Path, key: &Path) -> Result<SecretString> {
    let message = crate::pgp::dearmor(
        &std::fs::read(file).map_err(|e| Error::failed(format!("{}: {e}", file.display())))?,
    )?;
    let plain = crate::pgp::SecretKeyFile::load(key)?
        .decrypt(&message, None)
        .map_err(|e| Error::failed(format!("decrypting {}: {e:?}", file.display())))?;
    let text =
        std::str::from_utf8(plain.expose()).map_err(|_| Error::failed("the token is not text"))?;
    Ok(SecretString::new(text.trim().to_owned()))
}

/// Ceremony 4: the ceremony token, no standing root, the quorum's root token, the plugin, the
/// Authority, a signature by its signer token, and the root revoked again.
async fn authority(
    inner: &Ctx,
    dir: &Path,
    out: &Path,
    holders: &[Holder],
    operator: &Holder,
    plugin: &Path,
) -> Result<Authority> {
    // The operator decrypts each token into a 0600 file when the script says so; the script
    // stops where a file it needs is missing, and resumes once it is there.
    let init_root = decrypt_token(
        &crate::flows::files::root_token_path(out, &operator.fingerprint),
        &operator.secret,
    )?;
    let init_root_file = dir.join("init-root.token");
    write_private(&init_root_file, init_root.expose().as_bytes(), false)?;
    let ceremony_file = dir.join("ceremony.token");
    let root_file = dir.join("root.token");
    let contract = CONTRACT;
    let globals = ceremony_globals(
        &inner.addrs,
        inner.ca_cert.as_deref().expect("the rehearsal's CA"),
        inner.transcript.path(),
    );
    let params = [
        ("operator_key", operator.public.display().to_string()),
        ("init_root_token_file", init_root_file.display().to_string()),
        ("ceremony_token_file", ceremony_file.display().to_string()),
        ("root_token_file", root_file.display().to_string()),
        ("plugin_bin", plugin.display().to_string()),
        ("chain_id", "31337".to_owned()),
        ("contract", contract.to_owned()),
    ];
    let quorum: Vec<&Holder> = [1usize, 3, 4].iter().map(|i| &holders[*i]).collect();
    let shares = share_lines(&decrypt_shares(inner, out, &quorum)?);
    let mut runs = 0;
    loop {
        runs += 1;
        let code = run_ceremony(dir, &globals, "authority", &params, Some(&shares))?;
        if code == 0 {
            break;
        }
        let ceremony_asc = dir.join("ceremony-token.asc");
        let root_asc = dir.join("root-token.quorum.asc");
        if runs > 3 {
            return Err(ceremony_failed(dir, "authority", code));
        } else if ceremony_asc.is_file() && !ceremony_file.exists() {
            write_private(
                &ceremony_file,
                decrypt_token(&ceremony_asc, &operator.secret)?
                    .expose()
                    .as_bytes(),
                false,
            )?;
        } else if root_asc.is_file() && !root_file.exists() {
            write_private(
                &root_file,
                decrypt_token(&root_asc, &operator.secret)?
                    .expose()
                    .as_bytes(),
                false,
            )?;
        } else {
            return Err(ceremony_failed(dir, "authority", code));
        }
    }
    let root = decrypt_token(&dir.join("root-token.quorum.asc"), &operator.secret)?;
    let as_root = as_token(inner, Some(root.clone()));
    let wrap_file = dir.join("authority-signer.wrap");

    // The signing service's side: unwrap once, sign an allowed call, be refused anything else.
    let vault = as_root.vault()?;
    let addr = crate::flows::active_node(&vault, &inner.addrs).await?;
    let account = vault
        .signer(MOUNT)
        .account(&addr, AUTHORITY)
        .await
        .map_err(|e| crate::flows::node_error("reading the Authority", e))?;
    let address = account["address"].as_str().unwrap_or_default().to_owned();
    let wrapping = crate::flows::files::read_wrapping_token(&wrap_file)?;
    let (signer, _) = vault
        .with_token(Some(wrapping))
        .unwrap_token(&addr)
        .await
        .map_err(|e| crate::flows::node_error("unwrapping the signer token", e))?;
    let as_signer = vault.with_token(Some(signer.clone()));
    let call = format!("0xbaa47694{}", "00".repeat(32));
    let tx = as_signer
        .signer(MOUNT)
        .sign(
            &addr,
            AUTHORITY,
            Signing::Tx,
            &submit_block(contract, &call),
        )
        .await
        .map_err(|e| crate::flows::node_error("signing submitBlock with the signer token", e))?;
    if tx["from"] != address.as_str() {
        return Err(Error::verification(
            "the signature does not come from the Authority",
        ));
    }
    if as_signer
        .signer(MOUNT)
        .set_frozen(&addr, true)
        .await
        .is_ok()
    {
        return Err(Error::verification(
            "the signer token could change the mount's config",
        ));
    }
    signer_rules_hold(&as_signer, &vault, &addr, contract, &tx).await?;
    let summary = format!(
        "ceremonies/authority.toml in {runs} runs (it resumed after each token the operator decrypted): ceremony token, \
         init root revoked, root from holders 2, 4, 5, plugin mounted, Authority {address} (submitBlock only) signed by \
         its unwrapped signer token, which was refused a message, typed data and a fee above the cap (no nonce used)"
    );
    Ok(Authority {
        summary,
        root,
        address,
        signer,
    })
}

/// What a stolen signer token would try, refused by the Authority's rules (403), with no nonce
/// used: a message, an ERC-2612-style permit, and a submitBlock above the script's fee cap.
async fn signer_rules_hold(
    as_signer: &Vault,
    as_root: &Vault,
    addr: &crate::vault::Addr,
    contract: &str,
    signed: &serde_json::Value,
) -> Result<()> {
    let call = format!("0xbaa47694{}", "00".repeat(32));
    let permit = json!({
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
            "Permit": [{"name": "spender", "type": "address"}, {"name": "value", "type": "uint256"}]
        },
        "primaryType": "Permit",
        "domain": {"name": "Token", "chainId": signed["chain_id"], "verifyingContract": contract},
        "message": {"spender": contract, "value": "1"}
    });
    let mut above_cap = submit_block(contract, &call);
    above_cap["max_fee_per_gas"] = json!("1000000000000");
    let attempts = [
        (Signing::Message, json!({ "message": "permit me" })),
        (Signing::TypedData, json!({ "typed_data": permit })),
        (Signing::Tx, above_cap),
    ];
    for (what, body) in attempts {
        let path = what.leaf();
        match as_signer
            .signer(MOUNT)
            .sign(addr, AUTHORITY, what, &body)
            .await
        {
            Err(crate::vault::NodeError::Api { status: 403, .. }) => {}
            other => {
                return Err(Error::verification(format!(
                    "the Authority's rules did not refuse {path} by its signer token: {other:?}"
                )));
            }
        }
    }
    let next = as_root
        .signer(MOUNT)
        .next_nonce(addr, AUTHORITY)
        .await
        .map_err(|e| crate::flows::node_error("reading the Authority's nonce", e))?;
    let used = signed["nonce"].as_u64();
    if used.map(|n| n + 1) != Some(next) {
        return Err(Error::verification(format!(
            "a refused signature moved the Authority's nonce: {next} after nonce {used:?} was signed"
        )));
    }
    Ok(())
}

/// The Authority's one allowed call, with fees under the ceremony script's caps.
fn submit_block(contract: &str, call: &str) -> serde_json::Value {
    json!({ "to": contract, "data": call, "gas": 100000, "max_fee_per_gas": "2000000000", "max_priority_fee_per_gas": "1000000000" })
}

struct Authority {
    summary: String,
    root: SecretString,
    address: String,
    signer: SecretString,
}

/// Ceremony 5 and blue-green phase 1: save blue, verify it (offline and by a restore test
/// under the ceremony token), build green, restore blue into it, unseal green with the
/// original quorum, and find the same Authority on both.
async fn snapshots(
    blue: &Ctx,
    dir: &Path,
    bao: &Path,
    plugin: &Path,
    out: &Path,
    holders: &[Holder],
    auth: &Authority,
) -> Result<(String, LocalCluster, SecretString)> {
    let as_root = as_token(blue, Some(auth.root.clone()));
    let vault = as_root.vault()?;
    let addr = crate::flows::active_node(&vault, &blue.addrs).await?;
    let (reader, _) = vault
        .create_orphan_token(
            &addr,
            &crate::vault::OrphanToken {
                policies: &["custody-authority-reader".to_owned()],
                period: None,
                display_name: "custody-rehearsal-reader",
            },
        )
        .await
        .map_err(|e| crate::flows::node_error("creating a reader token", e))?;
    let file = dir.join("blue.snap");
    let quorum: Vec<&Holder> = [0usize, 2, 4].iter().map(|i| &holders[*i]).collect();
    let quorum_shares = share_lines(&decrypt_shares(blue, out, &quorum)?);
    let blue_ca = blue.ca_cert.clone().expect("the rehearsal's CA");
    expect_ceremony(
        dir,
        &ceremony_globals(&blue.addrs, &blue_ca, blue.transcript.path()),
        "snapshot",
        &[
            (
                "root_token_file",
                dir.join("root.token").display().to_string(),
            ),
            (
                "ceremony_token_file",
                dir.join("ceremony.token").display().to_string(),
            ),
            ("plugin_bin", plugin.display().to_string()),
            ("file", "blue.snap".to_owned()),
        ],
        Some(&quorum_shares),
    )?;
    let manifest = crate::snapshot::manifest::read(&file)?
        .ok_or_else(|| Error::failed("the snapshot has no manifest"))?;
    if manifest.accounts.get("authority") != Some(&auth.address) {
        return Err(Error::verification(
            "the manifest does not record the Authority's address",
        ));
    }

    // Green: built and initialized by its own throwaway key, then restored from blue.
    let green = LocalCluster::start(ClusterSpec {
        dir: Some(dir.join("green")),
        plugins: vec![plugin.to_owned()],
        ..ClusterSpec::raft("rehearsal-green", 3, bao.to_owned())
    })?;
    let green_vault = Vault::new(Some(&green.ca_cert), None)?;
    let g_addrs = green.addrs();
    let init = green_vault
        .init(
            &g_addrs[0],
            &crate::vault::InitRequest::plain(HOLDERS as u32, THRESHOLD),
        )
        .await
        .map_err(|e| crate::flows::node_error("initializing green", e))?;
    let green_root = SecretString::new(init.root_token.clone());
    let own: Vec<crate::shamir::Share> = init
        .keys
        .iter()
        .take(THRESHOLD as usize)
        .enumerate()
        .map(|(i, k)| {
            shamir::parse_share(
                &SecretString::new(k.clone()),
                &format!("green key {}", i + 1),
            )
            .map_err(Error::failed)
        })
        .collect::<Result<_>>()?;
    let green_ctx = Ctx {
        ui: Ui::silent(),
        addrs: g_addrs.clone(),
        ca_cert: Some(green.ca_cert.clone()),
        transcript: Transcript::at(blue.transcript.path()),
        token: Some(green_root),
    };
    let report = unseal_with(
        &green_ctx,
        &green_vault,
        &g_addrs,
        &Shares {
            shares: own,
            holders: Vec::new(),
        },
        JOIN_TIMEOUT,
    )
    .await?;
    expect_all_unsealed(&report, &green)?;
    wait_roles(&green_vault, &green_ctx, Duration::from_secs(30)).await?;
    // Blue-green phase 1 by its script: restore, then the original quorum unseals green.
    let both = ca_bundle(dir, &blue_ca, &green.ca_cert)?;
    let green_token_file = dir.join("green-root.token");
    write_private(
        &green_token_file,
        green_ctx
            .token
            .as_ref()
            .expect("green's root")
            .expose()
            .as_bytes(),
        false,
    )?;
    expect_ceremony(
        dir,
        &ceremony_globals(&blue.addrs, &both, blue.transcript.path()),
        "blue-green-1",
        &[
            ("file", "blue.snap".to_owned()),
            (
                "green_addr",
                g_addrs
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("green_token_file", green_token_file.display().to_string()),
        ],
        Some(&quorum_shares),
    )?;
    wait_roles(&green_vault, &green_ctx, Duration::from_secs(60)).await?;
    let read = |v: Vault, a: crate::vault::Addr| async move {
        v.signer(MOUNT)
            .account(&a, AUTHORITY)
            .await
            .map(|x| x["address"].as_str().unwrap_or_default().to_owned())
    };
    let on_blue = read(vault.with_token(Some(reader.clone())), addr.clone())
        .await
        .map_err(|e| crate::flows::node_error("reading the Authority on blue", e))?;
    let green_active = crate::flows::active_node(&green_vault, &g_addrs).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let on_green = loop {
        match read(
            green_vault.with_token(Some(reader.clone())),
            green_active.clone(),
        )
        .await
        {
            Ok(a) => break a,
            Err(e) if Instant::now() >= deadline => {
                return Err(crate::flows::node_error(
                    "reading the Authority on green",
                    e,
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    };
    if on_blue != auth.address || on_green != auth.address {
        return Err(Error::verification(format!(
            "the Authority differs: blue {on_blue}, green {on_green}, created {}",
            auth.address
        )));
    }
    Ok((
        format!(
            "ceremonies/snapshot.toml: blue saved, verified offline and by a restore test unsealed by holders 1, 3, 5; \
             ceremonies/blue-green-1.toml: green restored and unsealed by the same quorum; Authority {} on both",
            auth.address
        ),
        green,
        reader,
    ))
}

/// Blue-green phase 2: HAProxy in front of blue and green, a short load of reads and signatures
/// through it, the cutover, and the load's verdict: no failed read, no nonce twice, no gap.
async fn phase2(
    blue: &Ctx,
    blue_cluster: &LocalCluster,
    green: &LocalCluster,
    dir: &Path,
    auth: &Authority,
    reader_token: &SecretString,
) -> Result<String> {
    use crate::localcluster::haproxy::{LbServer, LocalHaproxy};
    let mut servers = Vec::new();
    for (i, n) in blue_cluster.nodes.iter().enumerate() {
        servers.push(LbServer {
            name: format!("blue{}", i + 1),
            port: n.api_port,
            ca_file: blue_cluster.ca_cert.clone(),
            disabled: false,
        });
    }
    for (i, n) in green.nodes.iter().enumerate() {
        servers.push(LbServer {
            name: format!("green{}", i + 1),
            port: n.api_port,
            ca_file: green.ca_cert.clone(),
            disabled: true,
        });
    }
    // The cutover wants every green peer a Raft voter (autopilot promotes a joined node 10-20 s
    // after it is unsealed).
    let green_vault = Vault::new(Some(&green.ca_cert), Some(auth.root.clone()))?;
    let green_active = crate::flows::active_node(&green_vault, &green.addrs()).await?;
    crate::flows::raft_peers::wait_stable_voters(
        &blue.ui,
        &green_vault,
        &green_active,
        Duration::from_secs(90),
        "the cutover needs every green peer a voter",
    )
    .await?;
    let lb = LocalHaproxy::start(&dir.join("haproxy"), "vault", &servers)?;
    let ha = crate::lb::haproxy::Haproxy::new(&lb.socket);
    poll(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async {
            match ha.servers("vault") {
                Ok(servers)
                    if servers
                        .values()
                        .any(|s| s.name.starts_with("blue") && s.status == "UP") =>
                {
                    Ok(())
                }
                Ok(_) => Err("no blue server is UP".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
    .map_err(|why| Error::failed(format!("HAProxy never saw blue's active node UP ({why})")))?;
    let both = ca_bundle(
        dir,
        blue.ca_cert.as_ref().expect("the rehearsal's CA"),
        &green.ca_cert,
    )?;

    // The load: reads and signatures through the balancer until the cutover is done.
    let lb_addr = crate::vault::Addr::parse(&lb.url())?;
    // Reads with the Authority's reader token (made before the snapshot, so green holds it too);
    // the root token is revoked by the script itself.
    let reader = Vault::new(None, Some(reader_token.clone()))?;
    let signer = Vault::new(None, Some(auth.signer.clone()))?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let read_task = {
        let (stop, v, a) = (stop.clone(), reader.clone(), lb_addr.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, 0u64);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match v.signer(MOUNT).account(&a, AUTHORITY).await {
                    Ok(_) => ok += 1,
                    Err(_) => failed += 1,
                }
            }
            (ok, failed)
        })
    };
    let sign_task = {
        let (stop, v, a) = (stop.clone(), signer.clone(), lb_addr.clone());
        tokio::spawn(async move {
            let (mut nonces, mut frozen, mut failed) = (Vec::new(), 0u64, 0u64);
            let call = format!("0xbaa47694{}", "11".repeat(32));
            let body = submit_block(CONTRACT, &call);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match v
                    .signer(MOUNT)
                    .sign(&a, AUTHORITY, Signing::Tx, &body)
                    .await
                {
                    Ok(r) => nonces.push(r["nonce"].as_u64().unwrap_or(u64::MAX)),
                    Err(e) if e.message_contains("frozen") => frozen += 1,
                    Err(_) => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (nonces, frozen, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let root_file = dir.join("root.token");
    let blue_list = blue_cluster
        .addrs()
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let green_list = green
        .addrs()
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let params: Vec<(&'static str, String)> = vec![
        ("blue", blue_list),
        ("green", green_list),
        ("lb", format!("haproxy:{}", lb.socket.display())),
        ("lb_backend", "vault".into()),
        (
            "blue_servers",
            (1..=blue_cluster.nodes.len())
                .map(|i| format!("blue{i}"))
                .collect::<Vec<_>>()
                .join(","),
        ),
        (
            "green_servers",
            (1..=green.nodes.len())
                .map(|i| format!("green{i}"))
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("lb_url", lb.url()),
        ("token_file", root_file.display().to_string()),
    ];
    let globals = ceremony_globals(&[], &both, blue.transcript.path());
    let dir_owned = dir.to_owned();
    let t0 = Instant::now();
    let outcome = tokio::task::spawn_blocking(move || {
        run_ceremony(&dir_owned, &globals, "blue-green-2", &params, None)
    })
    .await
    .with_kind(Kind::Internal, "the blue-green-2 ceremony's thread")?;
    let took = t0.elapsed();
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (reads_ok, reads_failed) = read_task
        .await
        .with_kind(Kind::Internal, "the reads' load task")?;
    let (mut nonces, frozen, sign_failed) = sign_task
        .await
        .with_kind(Kind::Internal, "the signatures' load task")?;
    match outcome? {
        0 => {}
        code => return Err(ceremony_failed(dir, "blue-green-2", code)),
    }
    nonces.sort_unstable();
    let n = nonces.len() as u64;
    if reads_failed > 0 || sign_failed > 0 {
        return Err(Error::verification(format!(
            "under the cutover {reads_failed} reads and {sign_failed} signatures failed"
        )));
    }
    // Consecutive from the first signature of the load (the Authority signed before it began).
    if let Some(&first) = nonces.first()
        && nonces != (first..first + n).collect::<Vec<_>>()
    {
        return Err(Error::verification(format!(
            "the nonces signed under load repeat or leave a gap: {nonces:?}"
        )));
    }
    Ok(format!(
        "ceremonies/blue-green-2.toml: HAProxy switched blue → green in {:.1} s under load: {reads_ok} reads, 0 failed; {n} signatures with consecutive nonces, \
         {frozen} answered \"frozen\" (retryable) during the pause",
        took.as_secs_f64()
    ))
}
