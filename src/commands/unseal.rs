//! `custody unseal`: ceremony 2. Shares are gathered and checked first, held in zeroizing
//! memory, and submitted to every node until each is unsealed, including followers of a fresh
//! Raft cluster that join only after the leader is unsealed.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use super::Ctx;
use crate::cli::{ShareArgs, UnsealArgs};
use crate::error::{Error, Kind, Result};
use crate::pgp::{self, DecryptError, SecretKeyFile};
use crate::secret::SecretString;
use crate::shamir::{self, Share};
use crate::transcript::Step;
use crate::vault::{Addr, NodeError, SealStatus, Vault};

/// The most stdin custody reads for `--share-stdin`.
const MAX_STDIN: u64 = 64 * 1024;
const POLL: Duration = Duration::from_millis(500);
/// How long a follower may stay sealed after taking the quorum's shares before custody offers
/// them again (its Raft join retries every 2 s).
const JOIN_SETTLE: Duration = Duration::from_secs(8);

/// Shares for one run, and who gave them.
pub struct Shares {
    pub shares: Vec<Share>,
    /// Fingerprints of the holders whose secret key custody used (public facts).
    pub holders: Vec<String>,
}

pub async fn run(ctx: &Ctx, args: &UnsealArgs) -> Result<()> {
    let addrs = ctx.require_addrs()?.to_vec();
    let vault = ctx.vault()?;
    let need = if args.shares.uses_prompts() {
        prompt_need(ctx, &vault, &addrs).await?
    } else {
        0
    };
    let shares = gather(ctx, &args.shares, need)?;
    let report = unseal_with(
        ctx,
        &vault,
        &addrs,
        &shares,
        Duration::from_secs(args.join_timeout),
    )
    .await?;
    finish(ctx, &report, &shares)
}

/// Reads the shares from the one input the holder chose, and checks them all. `prompts` is how
/// many hidden prompts to offer when neither a file nor stdin is given.
pub fn gather(ctx: &Ctx, args: &ShareArgs, prompts: u32) -> Result<Shares> {
    let mut holders = Vec::new();
    let raw: Vec<(SecretString, String)> =
        if let (Some(share_file), Some(key_file)) = (&args.share_file, &args.secret_key) {
            let (share, fpr) =
                decrypt_share_file(ctx, share_file, key_file, args.passphrase_file.as_deref())?;
            holders.push(fpr.clone());
            vec![(share, format!("holder {fpr}"))]
        } else if args.share_stdin {
            read_stdin_shares()?
        } else {
            prompt_shares(ctx, prompts)?
        };
    let mut shares = Vec::new();
    for (text, label) in &raw {
        shares.push(
            shamir::parse_share(text, label)
                .map_err(|m| Error::usage(format!("{m}; nothing was sent")))?,
        );
    }
    if shares.is_empty() {
        return Err(Error::usage("no share given; nothing was sent")
            .hint("give --share-file FILE --secret-key FILE, or pipe shares to --share-stdin, or run on a terminal"));
    }
    shamir::check_distinct(&shares).map_err(|m| Error::usage(format!("{m}; nothing was sent")))?;
    Ok(Shares { shares, holders })
}

pub fn decrypt_share_file(
    ctx: &Ctx,
    share_file: &Path,
    key_file: &Path,
    passphrase_file: Option<&Path>,
) -> Result<(SecretString, String)> {
    let meta = std::fs::metadata(share_file).map_err(|e| {
        Error::usage(format!(
            "--share-file {}: cannot read it: {e}",
            share_file.display()
        ))
    })?;
    if meta.len() > MAX_STDIN {
        return Err(Error::usage(format!(
            "--share-file {}: too large for a share",
            share_file.display()
        )));
    }
    let data = std::fs::read(share_file).map_err(|e| {
        Error::usage(format!(
            "--share-file {}: cannot read it: {e}",
            share_file.display()
        ))
    })?;
    let message = pgp::dearmor(&data).map_err(|e| {
        Error::usage(format!(
            "--share-file {}: {}",
            share_file.display(),
            e.message
        ))
    })?;
    let key = SecretKeyFile::load(key_file)?;
    let passphrase = match passphrase_file {
        Some(p) => Some(read_passphrase_file(p)?),
        None => None,
    };
    let plain = match key.decrypt(&message, passphrase.as_ref()) {
        Ok(p) => p,
        Err(DecryptError::NeedPassphrase { key: k }) => {
            let pass = ctx.ui.secret(
                &format!("Passphrase for secret key {k}"),
                "the key is passphrase-protected: give --passphrase-file FILE",
            )?;
            key.decrypt(&message, Some(&pass))
                .map_err(|e| decrypt_error(share_file, e))?
        }
        Err(e) => return Err(decrypt_error(share_file, e)),
    };
    let text = std::str::from_utf8(plain.expose()).map_err(|_| {
        Error::usage(format!(
            "{}: the decrypted share is not text",
            share_file.display()
        ))
    })?;
    Ok((SecretString::new(text.trim().to_owned()), key.fingerprint()))
}

fn decrypt_error(share_file: &Path, e: DecryptError) -> Error {
    match e {
        DecryptError::NeedPassphrase { key } => Error::usage(format!(
            "secret key {key} is passphrase-protected: give --passphrase-file FILE"
        )),
        DecryptError::WrongPassphrase { key } => Error::usage(format!(
            "the passphrase does not unlock secret key {key}; nothing was sent"
        )),
        DecryptError::Other(e) => {
            Error::new(e.kind, format!("{}: {}", share_file.display(), e.message))
        }
    }
}

pub fn read_passphrase_file(path: &Path) -> Result<SecretString> {
    let raw = zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| {
        Error::usage(format!(
            "--passphrase-file {}: cannot read it: {e}",
            path.display()
        ))
    })?);
    let text = std::str::from_utf8(&raw).map_err(|_| {
        Error::usage(format!(
            "--passphrase-file {}: not UTF-8 text",
            path.display()
        ))
    })?;
    Ok(SecretString::new(without_line_end(text).to_owned()))
}

/// A trailing newline (`\n` or `\r\n`) from an editor or `echo` is not part of a passphrase;
/// any other whitespace is.
fn without_line_end(text: &str) -> &str {
    let t = text.strip_suffix('\n').unwrap_or(text);
    t.strip_suffix('\r').unwrap_or(t)
}

fn read_stdin_shares() -> Result<Vec<(SecretString, String)>> {
    let mut buf = zeroize::Zeroizing::new(Vec::new());
    std::io::stdin()
        .take(MAX_STDIN + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::failed(format!("reading stdin: {e}")))?;
    if buf.len() as u64 > MAX_STDIN {
        return Err(Error::usage(
            "--share-stdin: more than 64 KiB on stdin; that is not a list of shares",
        ));
    }
    let text =
        std::str::from_utf8(&buf).map_err(|_| Error::usage("--share-stdin: stdin is not text"))?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            (
                SecretString::new(l.trim().to_owned()),
                format!("stdin line {}", i + 1),
            )
        })
        .collect())
}

/// How many holders the neediest node still lacks (for the hidden prompts).
async fn prompt_need(ctx: &Ctx, vault: &Vault, addrs: &[Addr]) -> Result<u32> {
    if !ctx.ui.can_prompt() {
        return Err(Error::usage("no share given and no terminal to ask on").hint(
            "give --share-file FILE --secret-key FILE, or pipe the decrypted shares to --share-stdin",
        ));
    }
    let statuses = super::status::all_status(vault, addrs).await;
    let threshold = statuses.iter().map(|s| s.threshold).max().unwrap_or(0);
    if threshold == 0 {
        return Err(Error::precondition(
            "no node is initialized; run custody init first",
        ));
    }
    let waiting_join = statuses.iter().any(|s| s.reachable && !s.initialized);
    Ok(statuses
        .iter()
        .filter(|s| s.reachable && s.initialized && s.sealed)
        .map(|s| s.threshold.saturating_sub(s.progress))
        .max()
        .unwrap_or(0)
        .max(if waiting_join { threshold } else { 0 }))
}

/// Hidden prompts, one holder after another; an empty answer stops early.
fn prompt_shares(ctx: &Ctx, need: u32) -> Result<Vec<(SecretString, String)>> {
    if !ctx.ui.can_prompt() {
        return Err(Error::usage("no share given and no terminal to ask on").hint(
            "give --share-file FILE --secret-key FILE, or pipe the decrypted shares to --share-stdin",
        ));
    }
    let mut out = Vec::new();
    for i in 0..need {
        let s = ctx.ui.secret(
            &format!(
                "Holder {} of {need}: your unseal share (hidden; leave empty to stop)",
                i + 1
            ),
            "pipe the decrypted shares to --share-stdin",
        )?;
        if s.expose().trim().is_empty() {
            break;
        }
        out.push((s, format!("prompt {}", i + 1)));
    }
    Ok(out)
}

/// One node's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub addr: String,
    pub state: NodeState,
    pub initialized: bool,
    pub sealed: bool,
    pub threshold: u32,
    pub progress: u32,
    /// Holders still needed to unseal this node.
    pub needs: u32,
    pub shares_accepted: u32,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeState {
    Unsealed,
    Sealed,
    WaitingToJoin,
    Down,
    Refused,
}

#[derive(Debug, Serialize)]
pub struct UnsealReport {
    pub nodes: Vec<NodeReport>,
    pub shares_given: usize,
}

struct NodeRun {
    addr: Addr,
    submitted: BTreeSet<usize>,
    report: NodeReport,
    /// When this run's shares reached the threshold on a follower that then stayed sealed:
    /// it is finishing its Raft join with them and unseals shortly after.
    completed_at: Option<Instant>,
}

/// Submits `shares` to every node until each is unsealed, down, refuses, or runs out of shares;
/// waits up to `join_timeout` for followers to join.
pub async fn unseal_with(
    ctx: &Ctx,
    vault: &Vault,
    addrs: &[Addr],
    shares: &Shares,
    join_timeout: Duration,
) -> Result<UnsealReport> {
    let mut runs: Vec<NodeRun> = addrs
        .iter()
        .map(|a| NodeRun {
            addr: a.clone(),
            submitted: BTreeSet::new(),
            completed_at: None,
            report: NodeReport {
                addr: a.to_string(),
                state: NodeState::Sealed,
                initialized: false,
                sealed: true,
                threshold: 0,
                progress: 0,
                needs: 0,
                shares_accepted: 0,
                message: None,
            },
        })
        .collect();
    let bar = ctx.ui.progress(shares.shares.len() as u64, "quorum");
    let deadline = Instant::now() + join_timeout;
    let mut any_initialized = false;
    loop {
        for run in runs.iter_mut() {
            if matches!(
                run.report.state,
                NodeState::Unsealed | NodeState::Down | NodeState::Refused
            ) {
                continue;
            }
            match vault.seal_status(&run.addr).await {
                Err(e) if e.is_unreachable() => {
                    run.report.state = NodeState::Down;
                    run.report.message = Some(e.to_string());
                    ctx.ui.status(format!(
                        "{}: down ({e}); going on with the others",
                        run.addr
                    ));
                }
                Err(e) => {
                    run.report.state = NodeState::Down;
                    run.report.message = Some(e.to_string());
                    ctx.ui.status(format!("{}: {e}", run.addr));
                }
                Ok(ss) => {
                    any_initialized |= ss.initialized;
                    absorb(&mut run.report, &ss);
                    if !ss.sealed {
                        run.report.state = NodeState::Unsealed;
                        continue;
                    }
                    if !ss.initialized {
                        run.report.state = NodeState::WaitingToJoin;
                        continue;
                    }
                    match run.completed_at {
                        Some(at) if at.elapsed() < JOIN_SETTLE => {
                            run.report.state = NodeState::WaitingToJoin;
                            continue;
                        }
                        Some(_) => {
                            // The join did not take the shares: offer them again.
                            run.completed_at = None;
                            run.submitted.clear();
                        }
                        None => {}
                    }
                    run.report.state = NodeState::Sealed;
                    submit(ctx, vault, run, shares, &bar).await;
                }
            }
        }
        if !any_initialized {
            bar.finish();
            return Err(Error::precondition(
                "no node is initialized; run custody init first",
            ));
        }
        let some_unsealed = runs.iter().any(|r| r.report.state == NodeState::Unsealed);
        let waiting: Vec<&NodeRun> = runs
            .iter()
            .filter(|r| r.report.state == NodeState::WaitingToJoin)
            .collect();
        // Followers join only through an unsealed leader; without one there is nothing to wait for.
        if waiting.is_empty() || !some_unsealed {
            break;
        }
        if Instant::now() >= deadline {
            for r in runs
                .iter_mut()
                .filter(|r| r.report.state == NodeState::WaitingToJoin)
            {
                r.report.message = Some(format!(
                    "did not join the cluster within --join-timeout {}s",
                    join_timeout.as_secs()
                ));
            }
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    bar.finish();
    for r in runs.iter_mut() {
        r.report.needs = match r.report.state {
            NodeState::Unsealed => 0,
            _ => r.report.threshold.saturating_sub(r.report.progress),
        };
    }
    Ok(UnsealReport {
        nodes: runs.into_iter().map(|r| r.report).collect(),
        shares_given: shares.shares.len(),
    })
}

fn absorb(report: &mut NodeReport, ss: &SealStatus) {
    report.initialized = ss.initialized;
    report.sealed = ss.sealed;
    report.threshold = ss.t;
    report.progress = ss.progress;
}

/// Submits the shares this node has not seen in this run, one at a time.
async fn submit(
    ctx: &Ctx,
    vault: &Vault,
    run: &mut NodeRun,
    shares: &Shares,
    bar: &crate::ui::Progress,
) {
    for (i, share) in shares.shares.iter().enumerate() {
        if run.submitted.contains(&i) {
            continue;
        }
        let before = run.report.progress;
        match vault.unseal(&run.addr, &share.text).await {
            Ok(ss) => {
                run.submitted.insert(i);
                absorb(&mut run.report, &ss);
                if !ss.sealed {
                    run.report.shares_accepted += 1;
                    run.report.state = NodeState::Unsealed;
                    ctx.ui
                        .status(format!("{}: {} accepted; unsealed", run.addr, share.label));
                    bar.set_len(ss.t as u64);
                    bar.set(ss.t as u64, "unsealed");
                    return;
                }
                if ss.progress == 0 && before + 1 >= ss.t {
                    // The threshold was reached without an error, yet the node is still sealed:
                    // a follower completing its join with these shares.
                    run.report.shares_accepted += 1;
                    run.report.state = NodeState::WaitingToJoin;
                    run.completed_at = Some(Instant::now());
                    ctx.ui.status(format!(
                        "{}: {} accepted; the node is joining the cluster",
                        run.addr, share.label
                    ));
                    return;
                }
                if ss.progress > before {
                    run.report.shares_accepted += 1;
                    ctx.ui.status(format!(
                        "{}: {} accepted ({}/{})",
                        run.addr, share.label, ss.progress, ss.t
                    ));
                } else if ss.progress == before && before > 0 {
                    ctx.ui.status(format!(
                        "{}: already had {}'s share from an earlier run ({}/{})",
                        run.addr, share.label, ss.progress, ss.t
                    ));
                } else {
                    ctx.ui.status(format!(
                        "{}: {} submitted ({}/{})",
                        run.addr, share.label, ss.progress, ss.t
                    ));
                }
                bar.set_len(ss.t as u64);
                bar.set(ss.progress as u64, run.addr.to_string());
            }
            Err(e) if joining(&e) => {
                // A follower whose join has not happened yet: keep the share for the next round.
                run.report.state = NodeState::WaitingToJoin;
                return;
            }
            Err(e) if e.is_unreachable() => {
                run.report.state = NodeState::Down;
                run.report.message = Some(e.to_string());
                ctx.ui.status(format!(
                    "{}: went down ({e}); going on with the others",
                    run.addr
                ));
                return;
            }
            Err(e) => {
                run.submitted.insert(i);
                run.report.state = NodeState::Refused;
                run.report.progress = 0;
                run.report.message = Some(explain_refusal(&e));
                ctx.ui
                    .status(format!("{}: refused the shares: {e}", run.addr));
                return;
            }
        }
    }
}

fn joining(e: &NodeError) -> bool {
    e.message_contains("not initialized")
        || e.message_contains("not yet joined")
        || e.message_contains("raft join")
}

fn explain_refusal(e: &NodeError) -> String {
    format!(
        "{e}. The server could not open its barrier with the shares it was given, and reset its \
         progress: at least one share is not from this cluster's init (for example a share of \
         another cluster, or of a throwaway init of this one). Check each holder's share file \
         name (their fingerprint) and run unseal again with the right shares"
    )
}

/// Appends the run to the transcript: the nodes' states and who gave shares, never a share.
pub fn record(
    ctx: &Ctx,
    report: &UnsealReport,
    shares: &Shares,
) -> Result<crate::transcript::Head> {
    let facts = json!({
        "nodes": report.nodes.iter().map(|n| json!({
            "addr": n.addr, "state": n.state, "progress": n.progress, "threshold": n.threshold,
        })).collect::<Vec<_>>(),
        "shares_given": report.shares_given,
        "holders": shares.holders,
    });
    let actor = if shares.holders.is_empty() {
        "holders".to_owned()
    } else {
        format!("holder {}", shares.holders.join(", "))
    };
    ctx.transcript
        .append(Step::new("unseal", "sys/unseal", &actor, facts))
}

fn finish(ctx: &Ctx, report: &UnsealReport, shares: &Shares) -> Result<()> {
    let head = record(ctx, report, shares)?;
    let mut text = String::new();
    for n in &report.nodes {
        let line = match n.state {
            NodeState::Unsealed => "unsealed".to_owned(),
            NodeState::Sealed => format!(
                "sealed, {}/{} — needs {} more holder{}",
                n.progress,
                n.threshold,
                n.needs,
                if n.needs == 1 { "" } else { "s" }
            ),
            NodeState::WaitingToJoin => format!(
                "not joined yet{}",
                n.message
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ),
            NodeState::Down => format!("DOWN: {}", n.message.as_deref().unwrap_or("no answer")),
            NodeState::Refused => format!("REFUSED: {}", n.message.as_deref().unwrap_or("")),
        };
        text.push_str(&format!("{}  {line}\n", n.addr));
    }
    text.push_str(&format!("Transcript head: {}", head.head_hash));
    ctx.ui.result(
        &text,
        json!({ "unseal": report, "transcript_head": head.head_hash }),
    );

    if let Some(n) = report.nodes.iter().find(|n| n.state == NodeState::Refused) {
        return Err(Error::new(
            Kind::Verification,
            format!(
                "{} refused the shares: {}",
                n.addr,
                n.message.as_deref().unwrap_or("")
            ),
        ));
    }
    let down = report
        .nodes
        .iter()
        .filter(|n| n.state == NodeState::Down)
        .count();
    if down > 0 {
        return Err(Error::failed(format!(
            "{down} node(s) did not answer; the others were served"
        )));
    }
    if report
        .nodes
        .iter()
        .any(|n| n.state == NodeState::WaitingToJoin && n.message.is_some())
    {
        return Err(Error::failed(
            "some followers did not join in time; run custody unseal again",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_line_end_is_dropped_from_a_passphrase() {
        use super::without_line_end;
        assert_eq!(without_line_end("pass"), "pass");
        assert_eq!(without_line_end("pass\n"), "pass");
        assert_eq!(without_line_end("pass\r\n"), "pass");
        assert_eq!(without_line_end(" pass \n"), " pass ");
        assert_eq!(without_line_end("pass\n\n"), "pass\n");
    }
}
