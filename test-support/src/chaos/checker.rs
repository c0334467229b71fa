//! The checker over a whole history, once every fault is healed:
//!
//! - **equivocation**: no nonce released (acknowledged) with two different payloads;
//! - **durability**: every acknowledged nonce is below the counter read after healing;
//! - **mined**: every nonce the chain mined is one the plugin signed and acknowledged (the
//!   chain's count of the account's transactions, each below it an acknowledged transaction
//!   with a receipt);
//! - **stall**: the chain stopped at an acknowledged, sent nonce (what anvil says of it);
//! - **gap**: counter values below the final counter that no signature acknowledged (a chain
//!   stalls at them: issue 25 §2b), each run of them with the refusals and lost answers meanwhile;
//! - **stale read**: a counter read (through the balancer) that began after an acknowledgement
//!   of nonce n had completed, and said the counter was at most n;
//! - **two active**: two nodes answered `sys/health` as active at once (a deposed leader still
//!   answering), and **deposed**: a deposed leader that did not turn standby once healed;
//! - **status**: answers other than 200 and the retryable 503, by status, with a sample.

use std::collections::BTreeMap;
use std::time::Duration;

use super::history::{Kind, Op, TwoActive};

/// What was found after healing.
#[derive(Clone, Debug, Default)]
pub struct Final {
    /// The counter (`next_nonce`) read from the single active node.
    pub counter: u64,
    /// The chain's transaction count of the account (`eth_getTransactionCount`, latest).
    pub mined: u64,
    /// The nonces of the acknowledged transactions that have a receipt.
    pub with_receipt: Vec<u64>,
    /// When the chain stopped below the counter at a nonce that was acknowledged: what anvil
    /// says of that transaction and of its pool.
    pub stall: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    pub kind: &'static str,
    /// When it was seen (for a gap: when the first later nonce was acknowledged).
    pub at: Option<Duration>,
    pub text: String,
}

/// Counts over the history.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub ops: usize,
    pub acked: usize,
    pub refused: usize,
}

/// Sign and read operations completed in `[from, to)`: ops, acknowledged signatures, answers
/// other than 200.
pub fn tally(ops: &[Op], from: Duration, to: Duration) -> Tally {
    let mut t = Tally::default();
    for op in ops.iter().filter(|o| o.kind != Kind::Broadcast) {
        if op.start < from || op.start >= to {
            continue;
        }
        t.ops += 1;
        match (op.kind, op.status) {
            (Kind::Sign, 200) => t.acked += 1,
            (_, 200) => {}
            _ => t.refused += 1,
        }
    }
    t
}

fn acks(ops: &[Op]) -> impl Iterator<Item = (&Op, u64)> {
    (ops.iter())
        .filter(|o| o.kind == Kind::Sign && o.status == 200)
        .filter_map(|o| o.nonce.map(|n| (o, n)))
}

/// Every operation completed (none left without an answer), and each acknowledged signature
/// carries its nonce, payload and hash, and was sent to the chain; the problems, empty when
/// the history is complete.
pub fn incomplete(ops: &[Op]) -> Vec<String> {
    let mut out = Vec::new();
    for op in ops {
        if op.end.is_none() {
            out.push(format!(
                "op {} ({}, {:?}) never completed",
                op.id, op.client, op.kind
            ));
        }
        if op.kind == Kind::Sign && op.status == 200 {
            if op.nonce.is_none() || op.payload.is_none() || op.tx_hash.is_none() {
                out.push(format!(
                    "op {} acknowledged without nonce/payload/hash",
                    op.id
                ));
            }
            let sent = ops.iter().any(|b| {
                b.kind == Kind::Broadcast && b.client == op.client && b.tx_hash == op.tx_hash
            });
            if !sent {
                out.push(format!(
                    "op {} acknowledged but never sent to the chain",
                    op.id
                ));
            }
        }
    }
    out
}

pub fn check(ops: &[Op], actives: &[TwoActive], deposed: &[Anomaly], f: &Final) -> Vec<Anomaly> {
    let mut out = Vec::new();
    // equivocation
    let mut released: BTreeMap<u64, &Op> = BTreeMap::new();
    for (op, n) in acks(ops) {
        match released.get(&n) {
            Some(first) if first.payload != op.payload => out.push(Anomaly {
                kind: "equivocation",
                at: op.end,
                text: format!(
                    "nonce {n} released twice with different payloads: op {} ({}) tx {:?} and op {} ({}) tx {:?}",
                    first.id, first.client, first.tx_hash, op.id, op.client, op.tx_hash
                ),
            }),
            Some(_) => {}
            None => {
                released.insert(n, op);
            }
        }
    }
    // durability
    let lost: Vec<u64> = released
        .keys()
        .copied()
        .filter(|n| *n >= f.counter)
        .collect();
    if !lost.is_empty() {
        out.push(Anomaly {
            kind: "durability",
            at: None,
            text: format!(
                "acknowledged nonces {} not below the counter {} after healing",
                ranges(&lost),
                f.counter
            ),
        });
    }
    // mined
    let receipts: std::collections::BTreeSet<u64> = f.with_receipt.iter().copied().collect();
    let unknown: Vec<u64> = (0..f.mined).filter(|n| !receipts.contains(n)).collect();
    if !unknown.is_empty() {
        out.push(Anomaly {
            kind: "mined",
            at: None,
            text: format!(
                "the chain mined nonces {} that no acknowledged signature with a receipt has (mined {})",
                ranges(&unknown),
                f.mined
            ),
        });
    }
    if let Some(why) = &f.stall {
        out.push(Anomaly {
            kind: "stall",
            at: None,
            text: format!(
                "the chain mined nonces below {} only, though nonce {} was acknowledged and sent: {why}",
                f.mined, f.mined
            ),
        });
    }
    // gaps, a run of adjacent nonces as one, with the refusals and lost answers meanwhile
    let missing: Vec<u64> = (0..f.counter)
        .filter(|n| !released.contains_key(n))
        .collect();
    for run in runs(&missing) {
        let (lo, hi) = (run[0], run[run.len() - 1]);
        let before = lo
            .checked_sub(1)
            .and_then(|b| released.get(&b))
            .map(|op| op.start);
        let after = released.range(hi..).next().and_then(|(_, op)| op.end);
        let from = before.unwrap_or(Duration::ZERO);
        let to = after.unwrap_or(Duration::MAX);
        let mut unknown: BTreeMap<u16, usize> = BTreeMap::new();
        for op in ops
            .iter()
            .filter(|o| o.kind == Kind::Sign && o.status != 200)
        {
            if op.start < to && op.end.is_none_or(|e| e > from) {
                *unknown.entry(op.status).or_default() += 1;
            }
        }
        out.push(Anomaly {
            kind: "gap",
            at: after,
            text: format!(
                "nonces {} reserved (the counter is {}) but never acknowledged: the chain stalls at {lo} (mined {}); \
                 sign answers other than 200 between the neighbours' acknowledgements (status: count, 0 = none): {unknown:?}",
                ranges(run),
                f.counter,
                f.mined
            ),
        });
    }
    // stale reads, those within 2 s of each other as one
    let mut stale: Vec<(&Op, u64, u64)> = Vec::new();
    for r in (ops.iter()).filter(|o| o.kind == Kind::Read && o.status == 200) {
        let Some(counter) = r.nonce else { continue };
        let seen = (acks(ops).filter(|(a, _)| a.end.is_some_and(|e| e < r.start)))
            .map(|(_, n)| n)
            .max();
        if let Some(n) = seen.filter(|n| counter <= *n) {
            stale.push((r, counter, n));
        }
    }
    let mut k = 0;
    while k < stale.len() {
        let mut j = k;
        while j + 1 < stale.len()
            && stale[j + 1].0.start <= stale[j].0.start + Duration::from_secs(2)
        {
            j += 1;
        }
        let ((first, counter, n), (last, ..)) = (stale[k], stale[j]);
        out.push(Anomaly {
            kind: "stale read",
            at: first.end,
            text: format!(
                "{} reads from op {} ({:.1}s) to op {} ({:.1}s) said the counter was at most an acknowledged nonce; the first: {counter} after nonce {n}",
                j - k + 1,
                first.id,
                first.start.as_secs_f64(),
                last.id,
                last.start.as_secs_f64()
            ),
        });
        k = j + 1;
    }
    for (first, last, seen) in episodes(actives) {
        out.push(Anomaly {
            kind: "two active",
            at: Some(first.at),
            text: format!(
                "nodes {:?} answered sys/health as active at once, {seen} times from {:.1}s to {:.1}s",
                first.nodes,
                first.at.as_secs_f64(),
                last.at.as_secs_f64()
            ),
        });
    }
    out.extend(deposed.iter().cloned());
    // statuses
    let mut by_status: BTreeMap<u16, (usize, &Op)> = BTreeMap::new();
    for op in ops.iter().filter(|o| o.kind != Kind::Broadcast) {
        if op.status != 200 && op.status != 503 {
            by_status.entry(op.status).or_insert((0, op)).0 += 1;
        }
    }
    for (status, (count, sample)) in by_status {
        out.push(Anomaly {
            kind: "status",
            at: sample.end,
            text: format!(
                "{count} answers of {} (not 200, not a retryable 503); e.g. op {} ({:?}): {}",
                if status == 0 {
                    "none (no answer)".to_owned()
                } else {
                    status.to_string()
                },
                sample.id,
                sample.kind,
                sample.error.as_deref().unwrap_or("").escape_debug()
            ),
        });
    }
    // broadcasts the chain refused
    let refused: Vec<&Op> = (ops.iter())
        .filter(|o| o.kind == Kind::Broadcast && (o.status != 200 || o.error.is_some()))
        .collect();
    if let Some(first) = refused.first() {
        out.push(Anomaly {
            kind: "chain refused",
            at: first.end,
            text: format!(
                "{} acknowledged transactions refused by the chain; e.g. op {} {:?}: {}",
                refused.len(),
                first.id,
                first.tx_hash,
                first.error.as_deref().unwrap_or("").escape_debug()
            ),
        });
    }
    out
}

/// Observations of the same nodes answering as active, each within 2 s of the one before,
/// as one episode: (first, last, how many).
fn episodes(actives: &[TwoActive]) -> Vec<(&TwoActive, &TwoActive, usize)> {
    let mut out: Vec<(&TwoActive, &TwoActive, usize)> = Vec::new();
    for a in actives {
        match out.last_mut() {
            Some((first, last, n))
                if first.nodes == a.nodes && a.at <= last.at + Duration::from_secs(2) =>
            {
                *last = a;
                *n += 1;
            }
            _ => out.push((a, a, 1)),
        }
    }
    out
}

/// `ns` (ascending) cut into runs of adjacent numbers.
pub fn runs(ns: &[u64]) -> Vec<&[u64]> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < ns.len() {
        let mut j = i;
        while j + 1 < ns.len() && ns[j + 1] == ns[j] + 1 {
            j += 1;
        }
        out.push(&ns[i..=j]);
        i = j + 1;
    }
    out
}

/// "1, 4-7, 9".
pub fn ranges(ns: &[u64]) -> String {
    let shown: Vec<String> = (runs(ns).into_iter())
        .map(|r| match r {
            [one] => one.to_string(),
            _ => format!("{}-{}", r[0], r[r.len() - 1]),
        })
        .collect();
    shown.join(", ")
}
