//! `custody init`: ceremony 1. Every check is made before `sys/init` is sent; afterwards each
//! encrypted share is proven to be addressed to its holder's encryption key.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::cli::InitArgs;
use crate::error::{Context as _, Error, Result};
use crate::flows::Ctx;
use crate::flows::files::root_token_path;
use crate::flows::new_holders::{self, Rescued, WrittenShare};
use crate::flows::nodes::all_status;
use crate::pgp::addressed_only_to;
use crate::pgp::{self, HolderCert};
use crate::transcript::Step;
use crate::vault::{Addr, InitRequest, Vault};

#[derive(Debug, serde::Serialize)]
pub struct InitOutcome {
    pub addr: String,
    pub shares: Vec<WrittenShare>,
    pub threshold: u32,
    pub root_token_file: String,
    pub root_token_fingerprint: String,
    pub root_token_sha256: String,
    pub root_token_recipient_ok: bool,
}

/// The checks that need no server: counts, threshold, certificates, output files.
pub struct InitPlan {
    pub holders: Vec<HolderCert>,
    pub root_key: HolderCert,
    pub threshold: u32,
    pub out: PathBuf,
}

pub fn plan(args: &InitArgs) -> Result<InitPlan> {
    let holders = new_holders::load(&args.pgp_keys, args.threshold, "init")?;
    let root_key = pgp::load_holder_cert(&args.root_token_pgp_key)?;

    new_holders::refuse_existing_shares(&args.out, &holders)?;
    let rt = root_token_path(&args.out, &root_key.fingerprint);
    if rt.exists() {
        return Err(Error::precondition(format!(
            "{} already exists; custody never overwrites it",
            rt.display()
        )));
    }
    Ok(InitPlan {
        holders,
        root_key,
        threshold: args.threshold,
        out: args.out.clone(),
    })
}

pub async fn run(ctx: &Ctx, args: &InitArgs) -> Result<()> {
    let plan = plan(args)?;
    let addrs = ctx.require_addrs()?;
    let vault = ctx.vault()?;
    every_node_fresh(&vault, addrs).await?;
    new_holders::writable_out(&plan.out, "init")?;
    confirm_holders(ctx, &plan, &addrs[0])?;
    let response = vault
        .init(&addrs[0], &init_request(&plan)?)
        .await
        .context(format!("sys/init on {}", addrs[0]))?;
    let (outcome, rescued) = write_outputs(
        &plan,
        addrs[0].as_str(),
        &response.keys_base64,
        &response.root_token,
    );
    if !rescued.is_empty() {
        return Err(rescue(ctx, &plan, addrs, &outcome, &rescued));
    }
    let head = ctx.transcript.append(init_step(&plan, addrs, &outcome))?;
    report(ctx, &plan, &outcome, &head.head_hash);
    recipients_verified(&outcome)
}

/// Prints every output that could not be written (each is ciphertext for its holder), records
/// the init with the files that were written, and says what to do.
fn rescue(
    ctx: &Ctx,
    plan: &InitPlan,
    addrs: &[Addr],
    outcome: &InitOutcome,
    rescued: &[Rescued],
) -> Error {
    new_holders::print_rescued(ctx, "init", rescued);
    let mut step = init_step(plan, addrs, outcome);
    step.facts["rescued"] = rescued.iter().map(|r| r.label.clone()).collect();
    let recorded = ctx.transcript.append(step).err();
    new_holders::rescued_error(
        "the cluster is initialized",
        "output(s)",
        rescued,
        "",
        recorded,
    )
}

/// Every node reachable, none initialized.
async fn every_node_fresh(vault: &Vault, addrs: &[Addr]) -> Result<()> {
    for n in all_status(vault, addrs).await {
        if !n.reachable {
            return Err(Error::precondition(format!(
                "{} is not reachable ({}); init changes nothing until every node answers",
                n.addr,
                n.error.as_deref().unwrap_or("no answer")
            )));
        }
        if n.initialized {
            return Err(
                Error::precondition(format!("{} is already initialized", n.addr)).hint(
                    "custody status shows each node's state; a cluster is initialized only once",
                ),
            );
        }
    }
    Ok(())
}

/// Shows the holders' fingerprints in order; each holder confirms theirs before anything is sent.
fn confirm_holders(ctx: &Ctx, plan: &InitPlan, addr: &Addr) -> Result<()> {
    let mut summary = format!(
        "Initializing {addr} with {} shares, threshold {}. The holders, in order:\n",
        plan.holders.len(),
        plan.threshold
    );
    summary.push_str(&new_holders::holder_lines(&plan.holders));
    summary.push_str(&format!(
        "Root token encrypted to: {}  {}\nEach holder: check that your fingerprint above is yours.",
        plan.root_key.fingerprint,
        plan.root_key.display_name()
    ));
    new_holders::confirm_on_screen(
        ctx,
        &summary,
        "Are these the holders' fingerprints, confirmed by each holder?",
        "init cancelled; nothing was sent",
    )
}

fn init_request(plan: &InitPlan) -> Result<InitRequest> {
    Ok(InitRequest {
        secret_shares: plan.holders.len() as u32,
        secret_threshold: plan.threshold,
        pgp_keys: new_holders::vault_encodings(&plan.holders)?,
        root_token_pgp_key: plan.root_key.vault_encoding()?,
    })
}

/// The transcript's record of the init: the holders, the recipients' verdict, every file.
fn init_step(plan: &InitPlan, addrs: &[Addr], outcome: &InitOutcome) -> Step {
    let mut step = Step::new(
        "init",
        "sys/init",
        "operator",
        json!({
            "addr": outcome.addr,
            "nodes": addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "shares": plan.holders.len(),
            "threshold": plan.threshold,
            "holders": new_holders::holder_facts(&plan.holders),
            "root_token_recipient": plan.root_key.fingerprint,
            "recipients_verified": outcome.shares.iter().all(|s| s.recipient_ok) && outcome.root_token_recipient_ok,
        }),
    );
    for s in &outcome.shares {
        step = step.file(Path::new(&s.file), &s.sha256);
    }
    if outcome.root_token_sha256.is_empty() {
        return step;
    }
    step.file(
        Path::new(&outcome.root_token_file),
        &outcome.root_token_sha256,
    )
}

fn report(ctx: &Ctx, plan: &InitPlan, outcome: &InitOutcome, head: &str) {
    let mut text = String::from("Initialized. Shares written (each encrypted to its holder):\n");
    text.push_str(&new_holders::written_lines(&outcome.shares));
    text.push_str(&format!(
        "Root token: {} (encrypted to {})\nTranscript head: {head}\nNext: {} of the holders run `custody unseal`.",
        outcome.root_token_file, outcome.root_token_fingerprint, plan.threshold
    ));
    ctx.ui
        .result(&text, json!({ "init": outcome, "transcript_head": head }));
}

/// Exit 3 when the server encrypted any output to a key that is not its holder's.
fn recipients_verified(outcome: &InitOutcome) -> Result<()> {
    let mut bad: Vec<_> = outcome
        .shares
        .iter()
        .filter(|s| !s.recipient_ok)
        .map(|s| s.fingerprint.clone())
        .collect();
    if !outcome.root_token_recipient_ok {
        bad.push(format!(
            "the root token ({})",
            outcome.root_token_fingerprint
        ));
    }
    if !bad.is_empty() {
        return Err(Error::verification(format!(
            "the server encrypted the shares of {} to a key that is not the holder's encryption key; \
             do not use this cluster",
            bad.join(", ")
        )));
    }
    Ok(())
}

/// Writes every output it can, rescues the others, then reports which recipients check out.
fn write_outputs(
    plan: &InitPlan,
    addr: &str,
    keys_base64: &[String],
    root_token: &str,
) -> (InitOutcome, Vec<Rescued>) {
    let (shares, mut rescued) = new_holders::write_shares(&plan.out, &plan.holders, keys_base64);
    let rt_path = root_token_path(&plan.out, &plan.root_key.fingerprint);
    let (root_token_sha256, root_token_recipient_ok) =
        match new_holders::write_one(&rt_path, root_token.trim()) {
            Ok((binary, sha256)) => (sha256, addressed_only_to(&binary, &plan.root_key)),
            Err((text, why)) => {
                rescued.push(Rescued {
                    label: format!("the root token ({})", plan.root_key.fingerprint),
                    text,
                    why,
                });
                (String::new(), false)
            }
        };
    let outcome = InitOutcome {
        addr: addr.to_owned(),
        shares,
        threshold: plan.threshold,
        root_token_file: rt_path.display().to_string(),
        root_token_fingerprint: plan.root_key.fingerprint.clone(),
        root_token_sha256,
        root_token_recipient_ok,
    };
    (outcome, rescued)
}
