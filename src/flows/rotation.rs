//! A share rotation as the transcript and the server see it: who the new holders are (the
//! rotation's `start` line), whether its new shares were written (`new-shares`), who proved
//! them (`verify`), and the one-line stage `status` shows.

use serde_json::Value;

use crate::transcript::share_sets::{ROTATION, SetHolder};
use crate::vault::{Addr, NodeError, Rotation, RotationFamily, Vault};

pub const STEP_START: &str = "start";
pub const STEP_SHARE: &str = "share";
pub const STEP_NEW_SHARES: &str = "new-shares";
pub const STEP_VERIFY: &str = "verify";
pub const STEP_CANCEL: &str = "cancel";

/// What the transcript says about the rotation with one nonce.
#[derive(Debug, Default)]
pub struct Recorded {
    /// The new holders and threshold, from the `start` line.
    pub holders: Vec<SetHolder>,
    pub threshold: u32,
    /// The `new-shares` line: the files written for the new holders.
    pub new_shares_written: bool,
    /// Holders (fingerprints) who proved a new share in a `verify` line.
    pub proven_by: Vec<String>,
    pub started: bool,
}

fn lines<'a>(entries: &'a [Value], nonce: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    entries
        .iter()
        .filter(move |e| e["ceremony"] == ROTATION && e["facts"]["nonce"] == nonce)
}

pub fn recorded(entries: &[Value], nonce: &str) -> Recorded {
    let mut r = Recorded::default();
    for e in lines(entries, nonce) {
        let facts = &e["facts"];
        match e["step"].as_str().unwrap_or_default() {
            STEP_START => {
                r.started = true;
                r.threshold = facts["threshold"].as_u64().unwrap_or(0) as u32;
                r.holders = serde_json::from_value(facts["holders"].clone()).unwrap_or_default();
            }
            STEP_NEW_SHARES => {
                r.new_shares_written |= facts["written"].as_u64().unwrap_or(0) > 0;
            }
            STEP_VERIFY => {
                for f in facts["holders"].as_array().into_iter().flatten() {
                    if let Some(f) = f.as_str()
                        && !r.proven_by.iter().any(|p| p == f)
                    {
                        r.proven_by.push(f.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    r
}

/// The nonce of the last rotation the lines started and neither verified nor cancelled.
pub fn unfinished(entries: &[Value]) -> Option<String> {
    let last_start = entries
        .iter()
        .rev()
        .find(|e| e["ceremony"] == ROTATION && e["step"] == STEP_START)?;
    let nonce = last_start["facts"]["nonce"].as_str()?;
    let ended = lines(entries, nonce).any(|e| {
        e["step"] == STEP_CANCEL || e["step"] == crate::transcript::share_sets::ROTATION_VERIFIED
    });
    (!ended).then(|| nonce.to_owned())
}

/// Where the rotation on the server stands, for a person (the server's nonce shown escaped).
pub fn stage(r: &Rotation) -> String {
    if !r.started {
        return "no share rotation in progress".to_owned();
    }
    let nonce = crate::ui::escape(&r.nonce);
    if r.awaiting_verification() {
        return format!(
            "share rotation {}: the old holders are done; {} new shares (threshold {}) wait for \
             the new holders' proof (`custody rotate-shares --verify`). The old shares stay in \
             force until then",
            nonce, r.n, r.t
        );
    }
    format!(
        "share rotation {}: {}/{} old shares given for {} new shares (threshold {}); a rerun of \
         `custody rotate-shares` continues it, `--cancel` cancels it",
        nonce, r.progress, r.required, r.n, r.t
    )
}

/// The stage on the active node, for `status` (needs a token that may read the rotation).
pub async fn describe(vault: &Vault, addr: &Addr) -> Result<String, NodeError> {
    let family = vault.rotation_family(addr).await?;
    let r = vault.rotation_status(addr, family).await?;
    Ok(match family {
        RotationFamily::RotateRoot => stage(&r),
        RotationFamily::Rekey => format!("{} ({})", stage(&r), family.base()),
    })
}
