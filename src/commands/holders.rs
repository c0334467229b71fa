//! `custody holders`: each holder of the current share set, and when they last proved a share
//! of it (an unseal, a root generation, a restore test, a rotation), from one or more verified
//! transcripts. `--stale-after DAYS` makes a missing or older proof a failed check: the drill.

use std::path::PathBuf;

use serde_json::json;

use crate::cli::HoldersArgs;
use crate::error::{Error, Result};
use crate::flows::Ctx;
use crate::transcript::proofs::{self, HolderProof, Source, age, last_proofs};
use crate::transcript::read_verified;
use crate::ui::escape;

const SECONDS_PER_DAY: u64 = 86_400;

pub fn run(ctx: &Ctx, args: &HoldersArgs) -> Result<()> {
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
    let sources: Vec<Source> = read
        .iter()
        .map(|(name, entries)| Source { name, entries })
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
    let origin_file = read
        .iter()
        .find(|(_, entries)| {
            entries
                .iter()
                .any(|e| e["hash"].as_str() == Some(set.origin.line_hash.as_str()))
        })
        .map(|(name, _)| name.as_str())
        .unwrap_or_default();

    let stale: Vec<&HolderProof> = holders.iter().filter(|h| h.stale).collect();
    let mut lines = vec![format!(
        "Share set {}, put in force in {}:",
        escape(&set.describe()),
        escape(origin_file)
    )];
    lines.extend(table(&holders));
    lines.push(drill_line(&stale, args.stale_after));
    ctx.ui.result(
        &lines.join("\n"),
        json!({
            "share_set": set,
            "holders": holders,
            "stale_after_days": args.stale_after,
        }),
    );
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
                    "{}: {} seq {} at {}, {} ago",
                    p.kind.label(),
                    escape(&p.transcript),
                    p.seq,
                    escape(&p.time),
                    age(p.age_seconds)
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
