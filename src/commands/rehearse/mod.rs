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
use crate::flows::shares::{Shares, decrypt_share_file};
use crate::flows::unseal::{NodeState, UnsealReport, record, unseal_with};
use crate::fsutil::write_private;
use crate::localcluster::{ClusterSpec, LocalCluster, find_bao};
use crate::pgp::keygen::generate_cv25519;
use crate::poll::poll;
use crate::secret::SecretString;
use crate::shamir;
use crate::transcript::{Transcript, verify_file};
use crate::ui::Ui;
use crate::vault::{HaRole, Signing, Vault};

mod adopt;
mod authority;
mod blue;
mod cutover;
mod driver;
mod load;
mod reconcile;
mod rotation;
mod snapshots;
mod witness;

use authority::{Authority, authority, submit_block};
use cutover::phase2;
use driver::{
    ceremony_failed, ceremony_globals, expect_ceremony, run_ceremony, run_ceremony_killed_after,
    share_lines,
};
use snapshots::snapshots;

const HOLDERS: usize = 5;
/// Where the rehearsal mounts the signer, the Authority's account name, and the chain of its
/// throwaway anvil.
const MOUNT: &str = "ethereum";
const AUTHORITY: &str = "authority";
const CHAIN_ID: u64 = 31337;
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
    let bao = Versions {
        blue: crate::localcluster::find_blue_bao(args.blue_bao_bin.as_deref())?,
        // Green's binary also runs the rehearsal's restore tests, which take only a known one.
        green: crate::localcluster::known_bao::pin(args.bao_bin.as_deref(), None)?.path,
    };
    let _ = driver::GREEN_BAO.set(bao.green.clone());
    let anvil = crate::localcluster::find_anvil(args.anvil_bin.as_deref())?;
    let plugin = find_plugin(args.plugin_bin.as_deref())?;
    let work = tempfile::Builder::new()
        .prefix("custody-rehearsal-")
        .tempdir()
        .context("making the rehearsal directory")?;
    let dir = work.path().to_owned();
    let started = Instant::now();
    let result = rehearse(ctx, &bao, &anvil, &plugin, &dir)
        .await
        .and_then(|done| {
            write_report(
                &dir.join("custody-transcript.jsonl"),
                &witness::certs_dir(&dir),
                &args.report,
            )?;
            Ok(done)
        });
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
    let report = args.report.display().to_string();
    text.push_str(&format!(
        "Total {:.1} s. Transcript head: {head}\nReport: {report}\nNothing is left running or on disk{}.",
        elapsed.as_secs_f64(),
        if args.keep {
            " but the report and the kept directory"
        } else {
            " but the report"
        }
    ));
    ctx.ui.result(&text, json!({ "ok": true, "proofs": proofs, "seconds": elapsed.as_secs_f64(), "transcript_head": head, "report": report }));
    Ok(())
}

/// The report of the rehearsal's own transcript, its signatures checked with the holders'
/// certificates, replacing any earlier one at `out`.
fn write_report(transcript: &Path, certs: &Path, out: &Path) -> Result<()> {
    let report = crate::flows::certs::with_certs(Some(certs), |v| {
        crate::flows::report::build(transcript, v)
    })?;
    crate::flows::report::replace(out, &crate::flows::report::html::render(&report))
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

/// The OpenBao binaries blue and green run: the upgrade the rehearsal makes.
struct Versions {
    blue: PathBuf,
    green: PathBuf,
}

async fn rehearse(
    ctx: &Ctx,
    bao: &Versions,
    anvil: &Path,
    plugin: &Path,
    dir: &Path,
) -> Result<(Vec<Proof>, String)> {
    let mut proofs = Proofs::new(&ctx.ui);
    let versions = (
        crate::localcluster::bao_version(&bao.blue)?,
        crate::localcluster::bao_version(&bao.green)?,
    );
    let (holders, operator) = blue::holder_keys(dir)?;
    proofs.prove(
        "holder keys",
        format!("{HOLDERS} holders and the operator have v4 Cv25519 keys"),
    );

    let mut cluster = LocalCluster::start(ClusterSpec {
        dir: Some(dir.join("blue")),
        plugins: vec![plugin.to_owned()],
        ..ClusterSpec::raft("rehearsal-blue", 3, bao.blue.clone())
    })?;
    let inner = Ctx {
        ui: Ui::silent(),
        addrs: cluster.addrs(),
        ca_cert: Some(cluster.ca_cert.clone()),
        transcript: Transcript::at(dir.join("custody-transcript.jsonl")),
        token: None,
    };
    proofs.prove(
        "cluster started",
        format!(
            "3 OpenBao {} nodes (blue) on 127.0.0.1, TLS from a CA made for this run, the signer in their plugin_directory",
            versions.0
        ),
    );

    let blue = blue::Blue {
        ctx: &inner,
        dir,
        globals: ceremony_globals(&cluster.addrs(), &cluster.ca_cert, inner.transcript.path()),
        holders: &holders,
        operator: &operator,
        out: dir.join("init"),
    };
    proofs.prove("init (ceremony 1)", blue.init(&cluster)?);
    proofs.prove("unseal, fresh cluster", blue.fresh_unseal(&cluster).await?);
    proofs.prove("remove bastion (ceremony 3)", blue.remove_bastion()?);
    proofs.prove(
        "restart + unseal one by one",
        blue.restart_and_unseal(&mut cluster).await?,
    );

    let out = &blue.out;
    let chain =
        crate::localcluster::anvil::LocalChain::start(anvil, CHAIN_ID, &dir.join("anvil.log"))
            .await?;
    let auth = authority(&inner, dir, out, &holders, &operator, plugin, &chain).await?;
    proofs.prove("authority (ceremony 4)", auth.summary.clone());

    let (snap, mut green, reader, witness) =
        snapshots(&inner, dir, &bao.green, plugin, out, &holders, &auth).await?;
    proofs.prove(
        "snapshot + green (ceremony 5, phase 1)",
        format!("green runs OpenBao {}: {snap}", versions.1),
    );

    let switched = phase2(&inner, &cluster, &green, dir, &auth, &reader, &chain).await?;
    proofs.prove(
        "cutover (phase 2)",
        format!(
            "{}: {switched}",
            if versions.0 == versions.1 {
                format!("blue and green both run OpenBao {}", versions.0)
            } else {
                format!("an upgrade, OpenBao {} → {}", versions.0, versions.1)
            }
        ),
    );

    proofs.prove(
        "every use accounted for (reconcile)",
        reconcile::accounted(
            dir,
            &cluster,
            &green,
            &witness,
            &chain,
            inner.transcript.path(),
        )?,
    );

    let revoked = blue::root_revoked(&cluster, &green, &auth).await?;
    proofs.prove("root revoked", revoked);

    let rotated = rotation::Rotation {
        ctx: &inner,
        green: &mut green,
        dir,
        plugin,
        out,
        holders: &holders,
        operator: &operator,
    }
    .run()
    .await?;
    drop(green);
    proofs.prove("rotate shares (ceremony 6)", rotated);

    proofs.prove(
        "adopt a cluster initialized by hand",
        adopt::adopted(dir, &bao.green, &holders, &operator)?,
    );
    proofs.prove(
        "transcript signed",
        witness::signed(dir, inner.transcript.path(), &holders)?,
    );
    let head = verify_file(inner.transcript.path())?;
    proofs.prove(
        "transcript verify",
        format!("{} entries, hash chain intact", head.entries),
    );
    cluster.stop_all();
    drop(cluster);
    Ok((proofs.done, head.head_hash))
}

/// What each step proved and how long it took, shown as it happens.
struct Proofs<'a> {
    ui: &'a Ui,
    done: Vec<Proof>,
    step: Instant,
}

impl<'a> Proofs<'a> {
    fn new(ui: &'a Ui) -> Proofs<'a> {
        Proofs {
            ui,
            done: Vec::new(),
            step: Instant::now(),
        }
    }

    fn prove(&mut self, name: &str, proved: String) {
        self.ui.status(format!("ok  {name}: {proved}"));
        self.done.push(Proof {
            step: name.to_owned(),
            proved,
            seconds: self.step.elapsed().as_secs_f64(),
        });
        self.step = Instant::now();
    }
}

/// The holders at these positions (0-based): a quorum, or the holders who come later.
fn pick<'h>(holders: &'h [Holder], which: &[usize]) -> Vec<&'h Holder> {
    which.iter().map(|i| &holders[*i]).collect()
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
    let message =
        crate::pgp::read_message(&std::fs::read(file).context(format!("{}", file.display()))?)?.0;
    let plain = crate::pgp::SecretKeyFile::load(key)?
        .decrypt(&message, None)
        .map_err(|e| Error::failed(format!("decrypting {}: {e:?}", file.display())))?;
    let text =
        std::str::from_utf8(plain.expose()).map_err(|_| Error::failed("the token is not text"))?;
    Ok(SecretString::new(text.trim().to_owned()))
}
