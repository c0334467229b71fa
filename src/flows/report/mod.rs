//! The transcript as one report: the chain's verdict (read leniently, so a break is shown with
//! where and why, and the lines after it as untrusted), the holders' signatures, the ceremony
//! runs, the checks custody recorded, the Authority's address and nonces, and who proved a share
//! of which set when. `transcript report` writes it as HTML (`html/`), `transcript show` as
//! text, `rehearse` beside itself.
//!
//! Every fact carries `signed`: whether a holder's signature that checks out (with `--certs`)
//! covers its line. Without certificates nothing is checked, so every fact is unsigned.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::error::Result;
use crate::transcript::authority::{NonceRecord, Sighting};
use crate::transcript::checks::Check;
use crate::transcript::lenient::{Break, read_lenient};
use crate::transcript::proofs::{Source, proofs};
use crate::transcript::share_sets::{ShareSet, sets};
use crate::transcript::signatures::{
    SignatureCheck, UnsignedLine, Verifier, check_signatures, init_holders, signed_lines,
    unsigned_lines,
};
use crate::transcript::timeline::{Run, holders_of, runs};

pub mod html;
mod write;

pub use write::{replace, write_new};

/// A holder named anywhere in the transcript.
#[derive(Debug, Clone, Serialize)]
pub struct NamedHolder {
    pub fingerprint: String,
    pub user_id: String,
    /// The lines that name them.
    pub lines: Vec<usize>,
    /// Those of the lines no holder's good signature covers.
    pub unsigned_lines: Vec<usize>,
}

/// One proof of a share, for the quorum table.
#[derive(Debug, Clone, Serialize)]
pub struct ShareProof {
    pub line: usize,
    pub kind: &'static str,
    pub ceremony: String,
    pub time: String,
    /// A holder's signature that checks out covers the line.
    pub signed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct HolderProofs {
    pub index: u32,
    pub fingerprint: String,
    pub user_id: String,
    pub proofs: Vec<ShareProof>,
}

/// A share set, the line that put it in force, and each of its holders' proofs.
#[derive(Debug, Clone, Serialize)]
pub struct SetProofs {
    pub set: ShareSet,
    pub line: usize,
    /// A holder's signature that checks out covers the line that put the set in force.
    pub signed: bool,
    pub holders: Vec<HolderProofs>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub file: String,
    pub lines: usize,
    /// Lines 1 to this check; the rest (after a break) are untrusted.
    pub trusted_lines: usize,
    /// The head hash after the last trusted line.
    pub head_hash: String,
    pub broken: Option<Break>,
    /// Whether the signatures were checked with certificates (--certs).
    pub certs_checked: bool,
    pub signatures: Vec<SignatureCheck>,
    /// Lines no good holder signature covers (every line when nothing was checked).
    pub unsigned: Vec<UnsignedLine>,
    /// Lines 1 to this are covered by a holder's signature that checks out; every fact from a
    /// later line is unsigned (0 when nothing was checked).
    pub signed_lines: usize,
    pub runs: Vec<Run>,
    pub holders: Vec<NamedHolder>,
    pub checks: Vec<Check>,
    pub authority: Option<String>,
    /// A holder's good signature covers the line the Authority's address is taken from.
    pub authority_signed: bool,
    pub sightings: Vec<Sighting>,
    pub quorum: Vec<SetProofs>,
    pub nonces: Vec<NonceRecord>,
}

impl Report {
    pub fn trusted(&self, line: usize) -> bool {
        line <= self.trusted_lines
    }

    /// Whether a holder's signature that checks out covers line `line` (1-based).
    pub fn signed(&self, line: usize) -> bool {
        line <= self.signed_lines
    }
}

/// Reads the transcript at `path` (whatever state its chain is in) and builds its report;
/// `verifier` checks signatures against the holders' certificates, when given.
pub fn build(path: &Path, verifier: Option<Verifier>) -> Result<Report> {
    let read = read_lenient(path)?;
    let entries = read.entries();
    let trusted_lines = read.trusted_count();
    let trusted = &entries[..trusted_lines];
    let (_, init) = init_holders(trusted);
    let mut signatures = check_signatures(&entries, &init, verifier);
    if let Some(b) = &read.broken {
        for c in signatures.iter_mut().filter(|c| c.line >= b.line) {
            c.ok = false;
            c.problem = Some(format!(
                "untrusted: the chain breaks at line {} (before or at this signature)",
                b.line
            ));
        }
    }
    let unsigned = unsigned_lines(&entries, &signatures);
    let signed = signed_lines(&signatures).min(trusted_lines);
    let mut sightings = crate::transcript::authority::sightings(&entries, signed);
    // A line may name the cluster by an RPC URL; one recorded before custody redacted them may
    // hold an API key.
    for s in &mut sightings {
        s.cluster = crate::chain::redacted(&s.cluster);
    }
    let authority = crate::transcript::authority::address(&sightings);
    Ok(Report {
        file: path.display().to_string(),
        lines: entries.len(),
        trusted_lines,
        head_hash: read.trusted_head.clone(),
        broken: read.broken.clone(),
        certs_checked: verifier.is_some(),
        signatures,
        unsigned,
        signed_lines: signed,
        runs: runs(&entries, signed),
        holders: named_holders(&entries, signed),
        checks: crate::transcript::checks::checks(&entries, signed),
        authority: authority.map(|s| s.address.clone()),
        authority_signed: authority.is_some_and(|s| s.signed),
        quorum: quorum(&path.display().to_string(), trusted, signed),
        nonces: crate::transcript::authority::nonces(&entries, signed),
        sightings,
    })
}

/// Every holder fingerprint the lines name, with the user id a line gives for it; lines after
/// `signed_lines` are unsigned.
fn named_holders(entries: &[Value], signed_lines: usize) -> Vec<NamedHolder> {
    let mut out: Vec<NamedHolder> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let f = &e["facts"];
        let with_ids = ["holders", "shares"]
            .iter()
            .flat_map(|k| f[k].as_array().into_iter().flatten())
            .filter_map(|h| Some((h["fingerprint"].as_str()?, h["user_id"].as_str())));
        let bare = holders_of(e);
        let named = with_ids
            .map(|(fp, id)| (fp.to_owned(), id.map(str::to_owned)))
            .chain(bare.into_iter().map(|fp| (fp, None)));
        for (fingerprint, user_id) in named {
            let at = match out
                .iter()
                .position(|h| h.fingerprint.eq_ignore_ascii_case(&fingerprint))
            {
                Some(at) => at,
                None => {
                    out.push(NamedHolder {
                        fingerprint,
                        user_id: String::new(),
                        lines: Vec::new(),
                        unsigned_lines: Vec::new(),
                    });
                    out.len() - 1
                }
            };
            let h = &mut out[at];
            if h.user_id.is_empty()
                && let Some(id) = user_id
            {
                h.user_id = id;
            }
            if h.lines.last() != Some(&(i + 1)) {
                h.lines.push(i + 1);
                if i >= signed_lines {
                    h.unsigned_lines.push(i + 1);
                }
            }
        }
    }
    out
}

/// Each share set the trusted lines put in force, with every proof of each holder's share;
/// lines after `signed_lines` are unsigned.
fn quorum(name: &str, trusted: &[Value], signed_lines: usize) -> Vec<SetProofs> {
    let proofs = proofs(&[Source {
        name,
        entries: trusted,
        signed_lines,
    }]);
    sets(trusted)
        .into_iter()
        .map(|(i, set)| SetProofs {
            line: i + 1,
            signed: i < signed_lines,
            holders: set
                .holders
                .iter()
                .map(|h| HolderProofs {
                    index: h.index,
                    fingerprint: h.fingerprint.clone(),
                    user_id: h.user_id.clone(),
                    proofs: proofs
                        .iter()
                        .filter(|p| p.set_id == set.id)
                        .filter(|p| {
                            p.fingerprints
                                .iter()
                                .any(|f| f.eq_ignore_ascii_case(&h.fingerprint))
                        })
                        .map(|p| ShareProof {
                            line: p.seq as usize + 1,
                            kind: p.kind.label(),
                            ceremony: p.ceremony.clone(),
                            time: p.time.clone(),
                            signed: p.signed,
                        })
                        .collect(),
                })
                .collect(),
            set,
        })
        .collect()
}
