//! The chain reconciled with the audit logs: for every nonce the chain says the account used,
//! an audited signature whose transaction is the one mined; two payloads at one nonce; the
//! signatures never mined. `custody reconcile` and the rehearsal call [`reconcile`].
//!
//! An explaining line counts only when it is the server's own (with a [`Prover`]): the HMAC the
//! device logged for the plugin's `signed_tx` equals `sys/audit-hash` of the raw transaction
//! the chain holds, which nobody without the device's salt can make. ARCHITECTURE.md says what
//! this does not prove.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::audit::{At, Entry, FileRead, Signature, entry, read_logs, sign_path};
use crate::chain::{Rpc, checksum};
use crate::error::{Error, Result};
use crate::vault::{Addr, Vault};

/// Bad lines listed at most (every one is counted in `bad_lines_total`).
pub const MAX_BAD_LINES: usize = 1000;

/// What proves an audit line the server's own: a token that may call `sys/audit-hash` on a
/// node of the cluster whose device wrote the logs (or a copy restored from it: the salt is in
/// its storage), and the device's path.
pub struct Prover {
    pub vault: Vault,
    pub addr: Addr,
    pub device: String,
}

pub struct Input<'a> {
    pub logs: &'a [PathBuf],
    pub rpc: &'a Rpc,
    pub account: &'a str,
    pub mount: &'a str,
    /// Nonces below this are not reconciled.
    pub since_nonce: u64,
    /// The account's address as the plugin says; `None`: the `from` of the log's signatures.
    pub address: Option<String>,
    /// `None`: the lines are taken as written, proven nothing.
    pub prover: Option<Prover>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NonceTx {
    pub nonce: u64,
    /// `None` where the chain cannot say (an unexplained nonce on a node without Otterscan's
    /// `ots_getTransactionBySenderAndNonce`).
    pub tx_hash: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Equivocation {
    pub nonce: u64,
    pub tx_hashes: Vec<String>,
    /// `FILE:LINE` of each signature.
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BadLine {
    pub file: String,
    pub line: u64,
    pub problem: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reconciliation {
    pub account: String,
    pub address: String,
    pub mount: String,
    pub chain_id: u64,
    pub since_nonce: u64,
    /// Nonces the chain says were mined from `since_nonce` on.
    pub mined_nonces: u64,
    pub explained: u64,
    pub unexplained: Vec<NonceTx>,
    pub equivocations: Vec<Equivocation>,
    pub unmined: Vec<NonceTx>,
    pub log_lines: u64,
    pub bad_lines: Vec<BadLine>,
    pub bad_lines_total: u64,
    /// The account's signatures the logs hold (each request once).
    pub signatures: u64,
    /// `audit-hash`: each explaining line proven the server's own; `none`: taken as written.
    pub proof: &'static str,
    pub files: Vec<FileRead>,
}

impl Reconciliation {
    /// Every mined nonce explained and no nonce signed twice.
    pub fn passed(&self) -> bool {
        self.unexplained.is_empty() && self.equivocations.is_empty()
    }
}

struct Bad {
    names: Vec<String>,
    listed: Vec<BadLine>,
    total: u64,
}

impl Bad {
    fn add(&mut self, at: At, problem: impl Into<String>) {
        self.total += 1;
        if self.listed.len() < MAX_BAD_LINES {
            self.listed.push(BadLine {
                file: self.names[at.file as usize].clone(),
                line: at.line,
                problem: problem.into(),
            });
        }
    }

    fn at(&self, at: At) -> String {
        format!("{}:{}", self.names[at.file as usize], at.line)
    }
}

fn hash_text(h: &[u8; 32]) -> String {
    format!("0x{}", hex::encode(h))
}

fn parse_address(text: &str) -> Result<[u8; 20]> {
    text.strip_prefix("0x")
        .and_then(|d| hex::decode(d).ok())
        .and_then(|b| <[u8; 20]>::try_from(b).ok())
        .ok_or_else(|| Error::failed(format!("{} is not an address", crate::ui::escape(text))))
}

pub async fn reconcile(input: Input<'_>) -> Result<Reconciliation> {
    let path = sign_path(input.mount, input.account);
    let mut bad = Bad {
        names: input.logs.iter().map(|p| p.display().to_string()).collect(),
        listed: Vec::new(),
        total: 0,
    };
    let mut sigs: Vec<(At, Signature)> = Vec::new();
    let mut first_seen: HashMap<String, At> = HashMap::new();
    let mut log_lines = 0u64;
    let files = read_logs(input.logs, |at, text| {
        log_lines += 1;
        let text = match text {
            Ok(t) => t,
            Err(why) => return bad.add(at, why),
        };
        match entry(text, &path) {
            Entry::Other => {}
            Entry::Malformed(why) => bad.add(at, why),
            Entry::Unreadable(why) => bad.add(at, format!("a {path} response: {why}")),
            Entry::Signed { request_id, sig } => match first_seen.get(&request_id) {
                Some(first) => {
                    let first = bad.at(*first);
                    bad.add(
                        at,
                        format!(
                            "a duplicate of {first} (request {})",
                            crate::ui::escape(&request_id)
                        ),
                    );
                }
                None => {
                    first_seen.insert(request_id, at);
                    sigs.push((at, sig));
                }
            },
        }
    })?;
    drop(first_seen);

    let chain_id = input.rpc.chain_id().await?;
    let address = match (&input.address, sigs.first()) {
        (Some(a), _) => parse_address(a)?,
        (None, Some((_, s))) => s.from,
        (None, None) => {
            return Err(Error::precondition(format!(
                "the logs hold no signature of {} ({path}) and no token was given to read its \
                 address from the plugin: custody cannot tell which account to reconcile",
                input.account
            ))
            .hint("give --token-file with a token that may read the account, or the logs of the cluster that signs"));
        }
    };
    let shown = checksum(&address);
    sigs.retain(|(at, s)| {
        if s.from != address {
            bad.add(*at, format!("signed by {}, not {shown}", checksum(&s.from)));
            false
        } else if s.chain_id != chain_id {
            bad.add(
                *at,
                format!(
                    "signed for chain {}, not the RPC's chain {chain_id}",
                    s.chain_id
                ),
            );
            false
        } else {
            s.nonce >= input.since_nonce
        }
    });
    let signatures = sigs.len() as u64;
    let mined = input.rpc.mined_nonce(&shown).await?;
    let mined_nonces = mined.saturating_sub(input.since_nonce);

    let equivocations = equivocations(&mut sigs, &bad);
    // One claimed nonce per transaction: a hash can explain only the nonce it was signed at.
    let mut by_hash: HashMap<[u8; 32], (usize, u64)> = HashMap::with_capacity(sigs.len());
    // In nonce order (as `sigs` now is): the order the chain mined them, so the node reads
    // each block's receipts while they are at hand, not one block per hash at random.
    let mut hashes: Vec<[u8; 32]> = Vec::with_capacity(sigs.len());
    for (i, (at, s)) in sigs.iter().enumerate() {
        match by_hash.get(&s.tx_hash) {
            Some((_, nonce)) if *nonce != s.nonce => bad.add(
                *at,
                format!(
                    "it puts {} at nonce {}, another line at nonce {nonce}",
                    hash_text(&s.tx_hash),
                    s.nonce
                ),
            ),
            Some(_) => {}
            None => {
                by_hash.insert(s.tx_hash, (i, s.nonce));
                hashes.push(s.tx_hash);
            }
        }
    }
    let senders = input.rpc.mined_senders(&hashes).await?;
    let mined_from: HashMap<[u8; 32], [u8; 20]> = hashes
        .iter()
        .zip(senders)
        .filter_map(|(h, f)| Some((*h, f?)))
        .collect();
    drop(hashes);

    let mut unmined = Vec::new();
    // One signature per mined transaction of the account in range: (index, its nonce).
    let mut candidates: Vec<(usize, u64)> = Vec::new();
    for (i, (at, s)) in sigs.iter().enumerate() {
        match mined_from.get(&s.tx_hash) {
            Some(from) if *from != address => bad.add(
                *at,
                format!(
                    "its tx_hash {} is a transaction from {}, not {shown}",
                    hash_text(&s.tx_hash),
                    checksum(from)
                ),
            ),
            Some(_) => {
                if by_hash.get(&s.tx_hash).map(|(first, _)| *first) == Some(i)
                    && s.nonce >= input.since_nonce
                    && s.nonce < mined
                {
                    candidates.push((i, s.nonce));
                }
            }
            None => unmined.push(NonceTx {
                nonce: s.nonce,
                tx_hash: Some(hash_text(&s.tx_hash)),
            }),
        }
    }
    drop(mined_from);
    drop(by_hash);
    unmined.sort_by(|a, b| (a.nonce, &a.tx_hash).cmp(&(b.nonce, &b.tx_hash)));

    let proof = match &input.prover {
        Some(p) => {
            candidates = proven(p, input.rpc, &sigs, candidates, &mut bad).await?;
            "audit-hash"
        }
        None => "none",
    };
    let mut explained_at = vec![false; usize::try_from(mined_nonces).unwrap_or(usize::MAX)];
    for (_, nonce) in &candidates {
        explained_at[(nonce - input.since_nonce) as usize] = true;
    }
    let explained = explained_at.iter().filter(|e| **e).count() as u64;
    let missing: Vec<u64> = explained_at
        .iter()
        .enumerate()
        .filter(|(_, e)| !**e)
        .map(|(i, _)| input.since_nonce + i as u64)
        .collect();
    let found = if missing.is_empty() {
        Vec::new()
    } else {
        input
            .rpc
            .hashes_by_sender_and_nonce(&shown, &missing)
            .await?
    };
    let unexplained = missing
        .into_iter()
        .zip(found)
        .map(|(nonce, h)| NonceTx {
            nonce,
            tx_hash: h.as_ref().map(hash_text),
        })
        .collect();
    Ok(Reconciliation {
        account: input.account.to_owned(),
        address: shown,
        mount: input.mount.to_owned(),
        chain_id,
        since_nonce: input.since_nonce,
        mined_nonces,
        explained,
        unexplained,
        equivocations,
        unmined,
        log_lines,
        bad_lines: bad.listed,
        bad_lines_total: bad.total,
        signatures,
        proof,
        files,
    })
}

/// Nonces the logs show signed with two different payloads (sorts `sigs` by nonce).
fn equivocations(sigs: &mut [(At, Signature)], bad: &Bad) -> Vec<Equivocation> {
    sigs.sort_unstable_by_key(|(at, s)| (s.nonce, *at));
    let mut out = Vec::new();
    for group in sigs.chunk_by(|a, b| a.1.nonce == b.1.nonce) {
        let mut tx_hashes: Vec<String> = group.iter().map(|(_, s)| hash_text(&s.tx_hash)).collect();
        tx_hashes.sort();
        tx_hashes.dedup();
        if tx_hashes.len() > 1 {
            out.push(Equivocation {
                nonce: group[0].1.nonce,
                tx_hashes,
                lines: group.iter().map(|(at, _)| bad.at(*at)).collect(),
            });
        }
    }
    out
}

/// The candidates whose line is the server's own: the HMAC it logged for `signed_tx` is the
/// device's hash of the raw transaction the chain holds. The others are bad lines.
async fn proven(
    p: &Prover,
    rpc: &Rpc,
    sigs: &[(At, Signature)],
    candidates: Vec<(usize, u64)>,
    bad: &mut Bad,
) -> Result<Vec<(usize, u64)>> {
    let hashes: Vec<[u8; 32]> = candidates.iter().map(|(i, _)| sigs[*i].1.tx_hash).collect();
    let raws = rpc.raw_transactions(&hashes).await?;
    drop(hashes);
    // "" where the chain returns none (a raw transaction is never empty).
    let raws = std::sync::Arc::new(
        raws.into_iter()
            .map(Option::unwrap_or_default)
            .collect::<Vec<String>>(),
    );
    let hmacs = p
        .vault
        .audit_hashes(&p.addr, &p.device, raws.clone())
        .await
        .map_err(|e| {
            crate::flows::node_error(
                &format!(
                    "hashing the mined transactions with the audit device {} on {} \
                     (the token needs update on sys/audit-hash/{})",
                    p.device, p.addr, p.device
                ),
                e,
            )
        })?;
    let mut out = Vec::with_capacity(candidates.len());
    let raws = raws.iter().map(|r| (!r.is_empty()).then_some(r.as_str()));
    for ((i, nonce), (raw, hmac)) in candidates.into_iter().zip(raws.zip(hmacs)) {
        let (at, s) = &sigs[i];
        let device = hmac
            .strip_prefix("hmac-sha256:")
            .and_then(|h| hex::decode(h).ok());
        match (&s.signed_tx_hmac, raw) {
            (_, None) => bad.add(
                *at,
                format!(
                    "the chain no longer returns the raw transaction {}",
                    hash_text(&s.tx_hash)
                ),
            ),
            (None, _) => bad.add(
                *at,
                "its signed_tx is logged in clear: nothing proves the line the server's own \
                 (take signed_tx out of the mount's audit_non_hmac_response_keys)",
            ),
            (Some(logged), Some(raw)) if device.as_deref() == Some(logged.as_slice()) => {
                let raw_nonce = hex::decode(raw.trim_start_matches("0x"))
                    .ok()
                    .and_then(|b| crate::chain::rlp::tx_nonce(&b));
                if raw_nonce == Some(nonce) {
                    out.push((i, nonce));
                } else {
                    bad.add(
                        *at,
                        format!(
                            "it puts {} at nonce {nonce}; the transaction's nonce is {}",
                            hash_text(&s.tx_hash),
                            raw_nonce.map_or("unreadable".into(), |n| n.to_string())
                        ),
                    );
                }
            }
            (Some(_), Some(_)) => bad.add(
                *at,
                format!(
                    "its signed_tx HMAC is not the device {}'s hash of the transaction the chain \
                     holds: not this server's line",
                    p.device
                ),
            ),
        }
    }
    Ok(out)
}
