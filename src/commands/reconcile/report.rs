//! What the reconcile says: its transcript facts, its text, and its failure.

use serde_json::{Value, json};

use crate::error::Error;
use crate::flows::reconcile::{NonceTx, Reconciliation};

/// Nonces and lines the transcript lists at most (their counts are recorded whole).
const LISTED: usize = 100;

fn first<T: serde::Serialize>(items: &[T]) -> Value {
    json!(&items[..items.len().min(LISTED)])
}

pub fn facts(r: &Reconciliation, rpcs: &[String]) -> Value {
    json!({
        "account": r.account,
        "address": r.address,
        "mount": r.mount,
        "chain_id": r.chain_id,
        "since_nonce": r.since_nonce,
        "mined_nonces": r.mined_nonces,
        "explained": r.explained,
        "unexplained_count": r.unexplained.len(),
        "unexplained": first(&r.unexplained),
        "equivocations_count": r.equivocations.len(),
        "equivocations": first(&r.equivocations),
        "unmined_count": r.unmined.len(),
        "log_lines": r.log_lines,
        "bad_lines_total": r.bad_lines_total,
        "signatures": r.signatures,
        "proof": r.proof,
        "files": r.files,
        "rpcs": rpcs,
        "passed": r.passed(),
    })
}

fn nonces(list: &[NonceTx]) -> String {
    list.iter()
        .take(20)
        .map(|n| {
            format!(
                "  nonce {}: {}",
                n.nonce,
                n.tx_hash
                    .as_deref()
                    .unwrap_or("(the chain does not say which transaction)")
            )
        })
        .chain((list.len() > 20).then(|| format!("  … and {} more", list.len() - 20)))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn text(r: &Reconciliation, head: &str) -> String {
    let mut out = vec![format!(
        "{} ({}) on chain {}: {} mined nonce(s) from {}, {} explained by the audit logs \
         ({} signature(s) in {} line(s) of {} file(s))",
        r.account,
        r.address,
        r.chain_id,
        r.mined_nonces,
        r.since_nonce,
        r.explained,
        r.signatures,
        r.log_lines,
        r.files.len()
    )];
    out.push(match r.proof {
        "audit-hash" => "Each explaining line is the server's own: its signed_tx HMAC is the \
                         device's hash of the transaction the chain holds."
            .to_owned(),
        _ => "UNPROVEN: no token, so the lines were taken as written (a forged log would pass)."
            .to_owned(),
    });
    if !r.unexplained.is_empty() {
        out.push(format!(
            "UNEXPLAINED: {} mined nonce(s) no audited signature explains: the key was used \
             outside the plugin, or the logs are incomplete (custody cannot tell which):\n{}",
            r.unexplained.len(),
            nonces(&r.unexplained)
        ));
    }
    for e in &r.equivocations {
        out.push(format!(
            "EQUIVOCATION at nonce {}: {} different payloads signed ({}), lines {}",
            e.nonce,
            e.tx_hashes.len(),
            e.tx_hashes.join(", "),
            e.lines.join(", ")
        ));
    }
    if !r.unmined.is_empty() {
        out.push(format!(
            "{} signature(s) never mined (replaced or dropped):\n{}",
            r.unmined.len(),
            nonces(&r.unmined)
        ));
    }
    if r.bad_lines_total > 0 {
        let listed = r
            .bad_lines
            .iter()
            .take(20)
            .map(|b| format!("  {}:{}: {}", b.file, b.line, b.problem))
            .collect::<Vec<_>>()
            .join("\n");
        out.push(format!(
            "{} line(s) not counted:\n{listed}{}",
            r.bad_lines_total,
            if r.bad_lines_total > 20 {
                "\n  … (--format json lists up to 1000)"
            } else {
                ""
            }
        ));
    }
    out.push(format!("Transcript head: {head}"));
    out.join("\n")
}

pub fn failure(r: &Reconciliation) -> Error {
    let mut what = Vec::new();
    if !r.unexplained.is_empty() {
        what.push(format!(
            "{} mined nonce(s) of {} no audited signature explains (first: {})",
            r.unexplained.len(),
            r.account,
            r.unexplained[0].nonce
        ));
    }
    if !r.equivocations.is_empty() {
        what.push(format!(
            "{} nonce(s) signed with two different payloads (first: {})",
            r.equivocations.len(),
            r.equivocations[0].nonce
        ));
    }
    Error::verification(format!("reconcile: {}", what.join("; "))).hint(
        "an unexplained nonce: the key was used outside the plugin (a restored copy, a leaked \
         key) or a log is missing; give every node's log, and both clusters' after a cutover",
    )
}
