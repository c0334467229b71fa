//! `custody adopt`: the record of a cluster initialized without custody (`bao operator init
//! -pgp-keys`), as init would have written it: the holders' certificates, checked as init checks
//! them, and the seal's shape the server shows. The holders' shares are proven where the cluster
//! allows: a sealed cluster unsealed by a quorum of share files proves those holders; on an
//! unsealed one, custody can only say whose keys opened which files.

use std::time::Duration;

use serde_json::json;

use crate::cli::AdoptArgs;
use crate::error::{Error, Result};
use crate::flows::Ctx;
use crate::flows::new_holders;
use crate::flows::nodes::{NodeStatus, all_status, one_cluster};
use crate::flows::shares::{Shares, gather};
use crate::flows::unseal::{NodeState, unseal_with};
use crate::pgp::HolderCert;
use crate::transcript::Step;
use crate::transcript::share_sets::{self, ADOPT};
use crate::ui::escape;
use crate::vault::{Addr, Vault};

/// How long followers of a sealed Raft cluster may take to join once the leader is unsealed.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Whose shares this run checked, and how far.
#[derive(Debug, Default, serde::Serialize)]
struct Proof {
    /// Holders whose shares the server took to unseal the cluster.
    proven_by: Vec<String>,
    /// Holders whose share files their keys opened, which the server did not check.
    opened_by: Vec<String>,
    /// Why the opened shares were not given to the server.
    not_submitted: Option<String>,
}

pub async fn run(ctx: &Ctx, args: &AdoptArgs) -> Result<()> {
    refuse_a_recorded_set(ctx)?;
    if args.shares.share_stdin {
        return Err(Error::usage(
            "adopt takes shares only as --share-file with --secret-key: the holder's key is what \
             says whose share it is; nothing was recorded",
        ));
    }
    let addrs = ctx.require_addrs()?.to_vec();
    let vault = ctx.vault()?;
    let nodes = all_status(&vault, &addrs).await;
    one_cluster(&nodes)?;
    let seal = seal_shape(&nodes, args)?.clone();
    let holders = new_holders::load(&args.pgp_keys, seal.threshold, "adopt")?;
    let shares = opened_shares(ctx, args, &holders)?;
    confirm_holders(ctx, &holders, &seal)?;
    let proof = prove(ctx, &vault, &addrs, &seal, shares).await?;
    let now = all_status(&vault, &addrs).await;
    let seen = now
        .iter()
        .find(|n| n.addr == seal.addr && n.reachable)
        .unwrap_or(&seal);
    let step = adopt_step(&addrs, seen, &holders, &proof);
    let head = ctx.transcript.append(step.clone())?;
    report(ctx, seen, &holders, &proof, &step, &head.head_hash);
    Ok(())
}

/// Adopting starts the record: a transcript that already names a share set keeps it.
fn refuse_a_recorded_set(ctx: &Ctx) -> Result<()> {
    if let Some(set) = share_sets::current(&ctx.recorded_lines()?) {
        return Err(Error::precondition(format!(
            "{} already records the share set {}; adopting starts a record, it never replaces one",
            ctx.transcript.path().display(),
            set.describe()
        ))
        .hint("give a new --transcript for a cluster custody did not initialize"));
    }
    Ok(())
}

/// The node the cluster is read from (the first initialized one), every node reachable, and the
/// seal split as the certificates and `--threshold` say.
fn seal_shape<'a>(nodes: &'a [NodeStatus], args: &AdoptArgs) -> Result<&'a NodeStatus> {
    if let Some(n) = nodes.iter().find(|n| !n.reachable) {
        return Err(Error::precondition(format!(
            "{} is not reachable ({}); adopt records nothing until every node answers",
            n.addr,
            n.error.as_deref().unwrap_or("no answer")
        )));
    }
    let Some(node) = nodes.iter().find(|n| n.initialized) else {
        return Err(Error::precondition(
            "the cluster is not initialized: there is nothing to adopt; nothing was recorded",
        )
        .hint("a new cluster is initialized with custody init"));
    };
    let keys = args.pgp_keys.len() as u32;
    let mut wrong = Vec::new();
    if keys != node.shares {
        wrong.push(format!(
            "{keys} --pgp-key given, and the server made {} shares",
            node.shares
        ));
    }
    if let Some(t) = args.threshold.filter(|t| *t != node.threshold) {
        wrong.push(format!(
            "--threshold {t} given, and the server needs {} shares to unseal",
            node.threshold
        ));
    }
    if !wrong.is_empty() {
        return Err(Error::precondition(format!(
            "{} does not match: {}; nothing was recorded",
            node.addr,
            wrong.join("; ")
        ))
        .hint("give every holder's certificate, in the order given to operator init -pgp-keys"));
    }
    Ok(node)
}

/// The share files given, each opened by its holder's key, which must be one of the holders'.
fn opened_shares(ctx: &Ctx, args: &AdoptArgs, holders: &[HolderCert]) -> Result<Option<Shares>> {
    if args.shares.share_file.is_empty() {
        return Ok(None);
    }
    let shares = gather(ctx, &args.shares, 0)?;
    if let Some(f) = shares.holders.iter().find(|f| {
        !holders
            .iter()
            .any(|h| h.fingerprint.eq_ignore_ascii_case(f))
    }) {
        return Err(Error::precondition(format!(
            "secret key {f} opened a share file, but it is not one of the --pgp-key holders; \
             nothing was sent or recorded"
        )));
    }
    Ok(Some(shares))
}

fn confirm_holders(ctx: &Ctx, holders: &[HolderCert], seal: &NodeStatus) -> Result<()> {
    let mut summary = format!(
        "Adopting {} ({} shares, threshold {}, {}). The holders, in the order of operator init:\n",
        seal.addr,
        seal.shares,
        seal.threshold,
        if seal.sealed { "sealed" } else { "unsealed" }
    );
    summary.push_str(&new_holders::holder_lines(holders));
    summary.push_str("Each holder: check that your fingerprint above is yours.");
    new_holders::confirm_on_screen(
        ctx,
        &summary,
        "Are these the holders' fingerprints, confirmed by each holder?",
        "adopt cancelled; nothing was recorded",
    )
}

/// On a sealed cluster, a quorum of opened shares unseals it: the server's acceptance proves
/// them. Otherwise the opened shares are only opened.
async fn prove(
    ctx: &Ctx,
    vault: &Vault,
    addrs: &[Addr],
    seal: &NodeStatus,
    shares: Option<Shares>,
) -> Result<Proof> {
    let Some(shares) = shares else {
        return Ok(Proof::default());
    };
    let opened_only = |why: String| Proof {
        opened_by: shares.holders.clone(),
        not_submitted: Some(why),
        ..Proof::default()
    };
    if !seal.sealed {
        return Ok(opened_only("the cluster is unsealed".into()));
    }
    let given = shares.shares.len() as u32;
    if given < seal.threshold {
        return Ok(opened_only(format!(
            "{given} share(s) given and the cluster needs {} to unseal",
            seal.threshold
        )));
    }
    let report = unseal_with(ctx, vault, addrs, &shares, JOIN_TIMEOUT).await?;
    let node = report
        .nodes
        .iter()
        .find(|n| n.addr == seal.addr)
        .expect("every --addr has a report");
    if node.state != NodeState::Unsealed {
        let why = node.message.as_deref().unwrap_or("it stayed sealed");
        let err = format!(
            "{} did not unseal with the shares: {why}; nothing was recorded",
            node.addr
        );
        return Err(if node.state == NodeState::Refused {
            Error::verification(err)
        } else {
            Error::failed(err)
        });
    }
    // The shares go in order and the node takes none after it unseals.
    let accepted = (node.shares_accepted as usize).min(shares.holders.len());
    Ok(Proof {
        proven_by: shares.holders[..accepted].to_vec(),
        opened_by: shares.holders[accepted..].to_vec(),
        not_submitted: None,
    })
}

fn adopt_step(addrs: &[Addr], seen: &NodeStatus, holders: &[HolderCert], proof: &Proof) -> Step {
    Step::new(
        ADOPT,
        ADOPT,
        "operator",
        json!({
            "addr": seen.addr,
            "nodes": addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "shares": seen.shares,
            "threshold": seen.threshold,
            "holders": new_holders::holder_facts(holders),
            "version": seen.version,
            "cluster_id": seen.cluster_id,
            "cluster_name": seen.cluster_name,
            "proven_by": proof.proven_by,
            "opened_by": proof.opened_by,
        }),
    )
}

fn report(
    ctx: &Ctx,
    seen: &NodeStatus,
    holders: &[HolderCert],
    proof: &Proof,
    step: &Step,
    head: &str,
) {
    let cluster = if seen.cluster_id.is_empty() {
        "cluster id not shown while sealed".to_owned()
    } else {
        format!(
            "cluster {} {}",
            escape(&seen.cluster_name),
            escape(&seen.cluster_id)
        )
    };
    let mut text = format!(
        "Adopted {} ({cluster}, version {}): {} shares, threshold {}. The holders:\n",
        seen.addr,
        escape(&seen.version),
        seen.shares,
        seen.threshold
    );
    text.push_str(&new_holders::holder_lines(holders));
    if !proof.proven_by.is_empty() {
        text.push_str(&format!(
            "Proven by the server (their shares unsealed it): {}\n",
            proof.proven_by.join(", ")
        ));
    }
    if !proof.opened_by.is_empty() {
        text.push_str(&format!(
            "Opened by their holders' keys, not checked by the server ({}): {}\n\
             A quorum proves theirs with a restore test: custody snapshot verify FILE \
             --restore-test with their share files.\n",
            proof
                .not_submitted
                .as_deref()
                .unwrap_or("the cluster was already unsealed"),
            proof.opened_by.join(", ")
        ));
    }
    if proof.proven_by.is_empty() && proof.opened_by.is_empty() {
        text.push_str(
            "No share was proven: a quorum proves theirs with `custody unseal --share-file` on \
             the sealed cluster or a restore test (custody snapshot verify FILE --restore-test).\n",
        );
    }
    text.push_str(&format!("Transcript head: {head}"));
    ctx.ui.result(
        &text,
        json!({ "adopt": step.facts, "not_submitted": proof.not_submitted, "transcript_head": head }),
    );
}
