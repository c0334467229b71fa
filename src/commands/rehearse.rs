//! `custody rehearse`: the lifecycle implemented so far, on throwaway local clusters, with
//! generated holder keys. It proves each step by checking the servers' own answers.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use super::Ctx;
use super::status::{NodeStatus, all_status};
use super::unseal::{NodeState, Shares, UnsealReport, decrypt_share_file, record, unseal_with};
use crate::cli::{InitArgs, RehearseArgs};
use crate::error::{Error, Result};
use crate::fsutil::write_private;
use crate::localcluster::{ClusterSpec, LocalCluster, find_bao};
use crate::pgp::keygen::generate_cv25519;
use crate::shamir;
use crate::transcript::{Transcript, verify_file};
use crate::ui::Ui;
use crate::vault::{HaRole, Vault};

const HOLDERS: usize = 5;
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
    let work = tempfile::Builder::new()
        .prefix("custody-rehearsal-")
        .tempdir()
        .map_err(|e| Error::failed(format!("making the rehearsal directory: {e}")))?;
    let dir = work.path().to_owned();
    let started = Instant::now();
    let result = rehearse(ctx, &bao, &dir).await;
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
            "  {:>2}. {:<28} {:>6.1} s  {}\n",
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

async fn rehearse(ctx: &Ctx, bao: &Path, dir: &Path) -> Result<(Vec<Proof>, String)> {
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
        "3 OpenBao nodes on 127.0.0.1, TLS from a CA made for this run".into(),
        &mut step,
    );

    // Ceremony 1: init.
    let out = dir.join("init");
    super::init::run(
        &inner,
        &InitArgs {
            pgp_keys: holders.iter().map(|h| h.public.clone()).collect(),
            threshold: THRESHOLD,
            root_token_pgp_key: operator.public.clone(),
            out: out.clone(),
        },
    )
    .await
    .map_err(|e| rehearsal_failed("init", e, &cluster))?;
    for h in &holders {
        let share = super::init::share_path(&out, &h.fingerprint);
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
            "5 shares, threshold 3, each share's recipient is its holder's encryption key; root token to {}",
            &operator.fingerprint[..16]
        ),
        &mut step,
    );

    // Ceremony 2: holders 1, 3 and 5 unseal the fresh cluster together; the followers join.
    let quorum: Vec<&Holder> = [0usize, 2, 4].iter().map(|i| &holders[*i]).collect();
    let shares = decrypt_shares(&inner, &out, &quorum)?;
    let report = unseal_with(&inner, &vault, &inner.addrs, &shares, JOIN_TIMEOUT).await?;
    record(&inner, &report, &shares)?;
    expect_all_unsealed(&report, &cluster)?;
    let roles = wait_roles(&vault, &inner, Duration::from_secs(30)).await?;
    prove(
        &mut proofs,
        "unseal, fresh cluster",
        format!(
            "holders 1, 3, 5 in one run: leader unsealed, followers joined and unsealed ({roles})"
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
            &super::init::share_path(out, &h.fingerprint),
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

/// Waits until one node is active and the others standby; returns "1 active, 2 standby".
async fn wait_roles(vault: &Vault, ctx: &Ctx, bound: Duration) -> Result<String> {
    let deadline = Instant::now() + bound;
    loop {
        let nodes: Vec<NodeStatus> = all_status(vault, &ctx.addrs).await;
        let active = nodes
            .iter()
            .filter(|n| n.ha_role == Some(HaRole::Active))
            .count();
        let standby = nodes
            .iter()
            .filter(|n| n.ha_role == Some(HaRole::Standby))
            .count();
        if active == 1 && active + standby == nodes.len() {
            return Ok(format!("{active} active, {standby} standby"));
        }
        if Instant::now() >= deadline {
            return Err(Error::failed(format!(
                "the cluster did not settle: {active} active, {standby} standby"
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn rehearsal_failed(step: &str, e: Error, cluster: &LocalCluster) -> Error {
    Error::new(
        e.kind,
        format!(
            "rehearsal step {step} failed: {}\n{}",
            e.message,
            tail(&cluster.logs(), 40)
        ),
    )
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
