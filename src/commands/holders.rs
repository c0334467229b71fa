//! `custody holders`: each holder of the current share set, and when they last proved a share
//! of it (an unseal, a root generation, a restore test, a rotation), from one or more verified
//! transcripts. `--stale-after DAYS` makes a missing or older proof a failed check: the drill.
//! `--certs DIR` checks the holders' signatures over each transcript, as `transcript verify`
//! does: a proof from a line no good holder signature covers is shown unsigned (without it,
//! every proof is), and `--require-signatures N` fails unless N holders signed all of it.

use std::path::PathBuf;

use serde_json::json;

use crate::cli::HoldersArgs;
use crate::error::{Error, Result};
use crate::flows::Ctx;
use crate::transcript::proofs::{self, HolderProof, Source, age, last_proofs};
use crate::transcript::read_verified;
use crate::transcript::signatures::{Judged, Verifier, init_holders, judge};
use crate::ui::escape;

const SECONDS_PER_DAY: u64 = 86_400;

pub fn run(ctx: &Ctx, args: &HoldersArgs) -> Result<()> {
    if args.require_signatures.is_some() && args.certs.is_none() {
        // clap requires --certs with --require-signatures; this keeps the rule for any caller
        return Err(Error::usage(
            "--require-signatures needs --certs DIR: a signature counts only once it verifies \
             with its holder's certificate",
        ));
    }
    let files: Vec<PathBuf> = if args.transcripts.is_empty() {
        let default = ctx.transcript.path().to_owned();
        if !default.exists() {
            return Err(no_share_set(&format!(
                "the transcript {} does not exist",
                default.display()
            )));
        }
        vec![default]
    } else {
        args.transcripts.clone()
    };
    let mut read = Vec::new();
    for f in &files {
        // a broken chain is a failed check naming the file and line
        let (_, entries) = read_verified(f)?;
        read.push((f.display().to_string(), entries));
    }
    let judged = crate::flows::certs::with_certs(args.certs.as_deref(), |verifier| {
        Ok(judge_all(&read, verifier))
    })?;
    let sources: Vec<Source> = read
        .iter()
        .zip(&judged)
        .map(|((name, entries), j)| Source {
            name,
            entries,
            signed_lines: j.signed_lines,
        })
        .collect();
    let set = proofs::current_set(&sources).ok_or_else(|| {
        no_share_set(&format!(
            "{} record(s) no init and no proven rotation",
            names(&files)
        ))
    })?;
    let limit = args.stale_after.map(|d| d.saturating_mul(SECONDS_PER_DAY));
    let now = time::OffsetDateTime::now_utc();
    let holders = last_proofs(&set, &proofs::proofs(&sources), now, limit);
    let origin = sources.iter().find_map(|s| {
        let i = s
            .entries
            .iter()
            .position(|e| e["hash"].as_str() == Some(set.origin.line_hash.as_str()))?;
        Some((s.name, i < s.signed_lines))
    });
    let (origin_file, set_signed) = origin.unwrap_or_default();

    let stale: Vec<&HolderProof> = holders.iter().filter(|h| h.stale).collect();
    let mut lines = vec![format!(
        "Share set {}, put in force in {}{}:",
        escape(&set.describe()),
        escape(origin_file),
        if set_signed {
            " (signed)"
        } else {
            " (unsigned)"
        }
    )];
    lines.extend(table(&holders));
    lines.push(drill_line(&stale, args.stale_after));
    lines.extend(signature_lines(&read, &judged, args));
    let signatures: Vec<_> = read
        .iter()
        .zip(&judged)
        .map(|((name, entries), j)| {
            json!({
                "transcript": name,
                "lines": entries.len(),
                "signed_lines": j.signed_lines,
                "signatures": j.signatures,
                "counted_signers": j.counted_signers,
                "unsigned_lines": j.unsigned_lines,
            })
        })
        .collect();
    ctx.ui.result(
        &lines.join("\n"),
        json!({
            "share_set": set,
            "share_set_signed": set_signed,
            "holders": holders,
            "stale_after_days": args.stale_after,
            "certs_checked": args.certs.is_some(),
            "required_signatures": args.require_signatures,
            "transcripts": signatures,
        }),
    );
    signatures_verdict(&read, &judged, args.require_signatures)?;
    match args.stale_after {
        Some(days) if !stale.is_empty() => Err(Error::verification(format!(
            "--stale-after {days}: {} of the {} holder(s) of share set {} have not proven a \
             share within {days} days: {}",
            stale.len(),
            holders.len(),
            set.id,
            who(&stale)
        ))
        .hint(
            "a drill proves shares without changing production: a quorum of these holders runs \
             `custody snapshot verify FILE --restore-test` on a saved snapshot",
        )),
        _ => Ok(()),
    }
}

/// Each transcript's signatures judged as `transcript verify` judges them. A signature counts
/// when its signer is a holder named at init (or adoption) in any of the transcripts read: they
/// are read as one timeline, and a later transcript (a rotation on another laptop) need not
/// have an init of its own. Without a verifier nothing checks out: every line is unsigned.
fn judge_all(read: &[(String, Vec<serde_json::Value>)], verifier: Option<Verifier>) -> Vec<Judged> {
    let mut holders: Vec<String> = Vec::new();
    for (_, entries) in read {
        for h in init_holders(entries).1 {
            if !holders.contains(&h) {
                holders.push(h);
            }
        }
    }
    read.iter()
        .map(|(_, entries)| judge(entries, &holders, verifier))
        .collect()
}

/// What the signatures cover, per transcript, for people.
fn signature_lines(
    read: &[(String, Vec<serde_json::Value>)],
    judged: &[Judged],
    args: &HoldersArgs,
) -> Vec<String> {
    if args.certs.is_none() {
        return vec![
            "Signatures not checked (no --certs): every proof above is unsigned.".to_owned(),
        ];
    }
    read.iter()
        .zip(judged)
        .map(|((name, entries), j)| {
            let covered = match (j.signed_lines, j.unsigned_lines.first()) {
                (0, _) => format!(
                    "no holder's signature that checks out covers any of its {} lines",
                    entries.len()
                ),
                (_, None) => "a holder's good signature covers every line".to_owned(),
                (n, Some(u)) => format!(
                    "a holder's good signature covers lines 1 to {n}; {} line(s) from line {} \
                     on are unsigned",
                    j.unsigned_lines.len(),
                    u.line
                ),
            };
            let counted = match args.require_signatures {
                None => String::new(),
                Some(n) => format!(
                    "; signed by {} of the {n} holder(s) required{}",
                    j.counted_signers.len(),
                    if j.counted_signers.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ": {}",
                            j.counted_signers
                                .iter()
                                .map(|s| escape(&s.fingerprint))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                ),
            };
            let forged = match j.forged() {
                0 => String::new(),
                n => format!("; {n} signature(s) do not check out"),
            };
            format!(
                "Signatures of {}: {covered}{counted}{forged}.",
                escape(name)
            )
        })
        .collect()
}

/// Exit 3 when a signature is forged (it does not verify, or signs a head it did not stand
/// on), or, with `--require-signatures N`, when fewer than N holders signed a head that covers
/// every line of a transcript.
fn signatures_verdict(
    read: &[(String, Vec<serde_json::Value>)],
    judged: &[Judged],
    require: Option<u32>,
) -> Result<()> {
    for ((name, _), j) in read.iter().zip(judged) {
        if j.forged() > 0 {
            return Err(Error::verification(format!(
                "{}: {} signature(s) do not check out (see `custody transcript verify {} --certs \
                 DIR`)",
                escape(name),
                j.forged(),
                escape(name)
            )));
        }
    }
    for ((name, _), j) in read.iter().zip(judged) {
        if let Some(n) = require
            && j.counted_signers.len() < n as usize
        {
            let mut err = Error::verification(format!(
                "--require-signatures {n}: in {}, {} distinct holder(s) recorded at init signed \
                 a head that covers every line",
                escape(name),
                j.counted_signers.len()
            ));
            if !j.unsigned_lines.is_empty() {
                err = err.hint(
                    "a signature covers only the lines before it: holders sign again after the \
                     last step (custody --transcript FILE transcript sign --secret-key KEY)",
                );
            }
            return Err(err);
        }
    }
    Ok(())
}

fn names(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn no_share_set(what: &str) -> Error {
    Error::precondition(format!(
        "{what}: custody knows no share set, so no holders to list"
    ))
    .hint(
        "give the transcript of the cluster's `custody init` (and of any share rotation since): \
         custody holders FILE...",
    )
}

/// `2 ABCD… (Holder Two)`, for each holder, escaped.
fn who(holders: &[&HolderProof]) -> String {
    holders
        .iter()
        .map(|h| {
            format!(
                "{} {} ({})",
                h.index,
                escape(&h.fingerprint),
                escape(&h.user_id)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The holders as a small table, text from the transcript escaped.
fn table(holders: &[HolderProof]) -> Vec<String> {
    let rows: Vec<[String; 4]> = holders
        .iter()
        .map(|h| {
            let proof = match &h.last_proof {
                None => "never".to_owned(),
                Some(p) => format!(
                    "{}: {} seq {} at {}, {} ago, {}",
                    p.kind.label(),
                    escape(&p.transcript),
                    p.seq,
                    escape(&p.time),
                    age(p.age_seconds),
                    if p.signed { "signed" } else { "unsigned" }
                ),
            };
            [
                h.index.to_string(),
                escape(&h.fingerprint),
                escape(&h.user_id),
                proof,
            ]
        })
        .collect();
    let header = ["#", "fingerprint", "user id", "last proof"].map(String::from);
    let width = |c: usize| {
        std::iter::once(&header)
            .chain(&rows)
            .map(|r| r[c].chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1), width(2)];
    std::iter::once(&header)
        .chain(&rows)
        .map(|r| {
            format!(
                "{:>w0$}  {:<w1$}  {:<w2$}  {}",
                r[0],
                r[1],
                r[2],
                r[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            )
        })
        .collect()
}

fn drill_line(stale: &[&HolderProof], stale_after: Option<u64>) -> String {
    let n = stale.len();
    let holders = if n == 1 { "holder has" } else { "holders have" };
    match (stale_after, n) {
        (Some(days), 0) => {
            format!("Drill: every holder has proven a share in the last {days} days.")
        }
        (Some(days), _) => format!(
            "Drill: {n} {holders} not proven a share in {days} days: {}.",
            who(stale)
        ),
        (None, 0) => "Drill: every holder has proven a share of this set.".to_owned(),
        (None, _) => format!(
            "Drill: {n} {holders} never proven a share of this set: {}.",
            who(stale)
        ),
    }
}
