//! `wallet bind`'s last step before the one-time write: the one call must be a function of the
//! contract (its selector pushed by the contract's runtime code, or the function held by the
//! operator's `--abi`), and the operator confirms what is about to be bound for ever. A typo such
//! as `submitblock(bytes32)` is refused (exit 3, nothing written), naming what the code holds.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::chain::abi::{self, Abi};
use crate::chain::bytecode::{self, Presence, Pushes};
use crate::chain::selector;
use crate::error::{Context as _, Error, Kind, Result};
use crate::flows::Ctx;

/// The most names custody hashes looking for a case-only difference.
const CASE_BUDGET: u64 = 1 << 16;

/// The operator's `--abi`, read before anything is asked of a server.
pub struct LoadedAbi {
    pub path: PathBuf,
    pub sha256: String,
    pub abi: Abi,
}

/// Reads and parses `--abi FILE` (exit 2 where it is not an ABI).
pub fn read_abi(path: &Path) -> Result<LoadedAbi> {
    let shown = crate::ui::escape(&path.display().to_string());
    let unreadable = || format!("--abi {shown}: cannot read it");
    let meta = std::fs::metadata(path).with_kind(Kind::Usage, unreadable())?;
    if meta.len() > 64 * 1024 * 1024 {
        return Err(Error::usage(format!("--abi {shown}: too large for an ABI")));
    }
    let bytes = std::fs::read(path).with_kind(Kind::Usage, unreadable())?;
    let json: Value = serde_json::from_slice(&bytes)
        .with_kind(Kind::Usage, format!("--abi {shown}: not JSON"))?;
    let abi = abi::parse(&json).map_err(|e| e.doing(format!("--abi {shown}")))?;
    Ok(LoadedAbi {
        path: path.to_owned(),
        sha256: crate::digest::sha256_hex(&bytes),
        abi,
    })
}

/// What is about to be bound, as the chain showed it at one block.
pub struct Target<'a> {
    pub name: &'a str,
    pub address: &'a str,
    pub contract: &'a str,
    pub chain_id: u64,
    pub block: u64,
    pub code_hash: &'a str,
    pub call: &'a str,
    pub getter: &'a str,
}

/// What the check found: for the confirmation and the transcript.
pub struct Checked<'a> {
    selector: [u8; 4],
    presence: Presence,
    push4_operands: usize,
    abi: Option<&'a LoadedAbi>,
}

/// The call's selector is in the code (a PUSH4 operand, or for a selector with leading zero
/// bytes a shorter push), or `--abi` holds the function; with `--abi`, the ABI must hold it
/// either way. Else exit 3, naming the selectors the code holds and a case-only difference.
pub fn check<'a>(t: &Target, code: &[u8], abi: Option<&'a LoadedAbi>) -> Result<Checked<'a>> {
    let sel = selector(t.call);
    let pushes = bytecode::scan(code);
    let presence = pushes.find(sel);
    let checked = Checked {
        selector: sel,
        presence,
        push4_operands: pushes.push4().len(),
        abi,
    };
    match abi {
        Some(a) if a.abi.functions.iter().any(|f| f == t.call) => Ok(checked),
        None if presence != Presence::Absent => Ok(checked),
        _ => Err(refusal(t, &pushes, presence, abi)),
    }
}

fn hex4(s: [u8; 4]) -> String {
    format!("0x{}", hex::encode(s))
}

/// Exit 3: why the call is refused, what is near it, and the code's PUSH4 operands.
fn refusal(t: &Target, pushes: &Pushes, presence: Presence, abi: Option<&LoadedAbi>) -> Error {
    let sel = hex4(selector(t.call));
    let where_ = format!(
        "the runtime code of {} (chain {}, block {})",
        t.contract, t.chain_id, t.block
    );
    let mut msg = match abi {
        Some(a) => format!(
            "{} (selector {sel}) is not a function of the ABI {} (and its selector {} {where_})",
            t.call,
            crate::ui::escape(&a.path.display().to_string()),
            if presence == Presence::Absent {
                "does not occur in"
            } else {
                "does occur in"
            }
        ),
        None => format!(
            "{} (selector {sel}) does not occur in {where_} as a PUSH4 operand: no function of \
             that code has it",
            t.call
        ),
    };
    msg.push_str(
        ", and an account bound to it could never sign anything else, for ever. Nothing was \
         written.",
    );
    let mut labels: Vec<(String, String)> = Vec::new(); // (signature, kind)
    let (name, _) = t.call.split_once('(').unwrap_or((t.call, ""));
    if let Some(a) = abi {
        let same_case: Vec<&String> = a
            .abi
            .functions
            .iter()
            .filter(|f| f.eq_ignore_ascii_case(t.call))
            .collect();
        for f in &same_case {
            msg.push_str(&format!(
                "\nThe ABI has {f} ({}), which differs from it only in case.",
                hex4(selector(f))
            ));
        }
        let same_name: Vec<&str> = a
            .abi
            .functions
            .iter()
            .filter(|f| {
                f.split_once('(')
                    .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name))
                    && !same_case.contains(f)
            })
            .map(String::as_str)
            .collect();
        if !same_name.is_empty() {
            msg.push_str(&format!(
                "\nThe ABI has {name} with other types: {}.",
                same_name.join(", ")
            ));
        }
        labels.extend(
            a.abi
                .functions
                .iter()
                .map(|f| (f.clone(), "function".into())),
        );
        labels.extend(a.abi.errors.iter().map(|f| (f.clone(), "error".into())));
    } else {
        let (found, tried) = case_variants_in(t.call, pushes);
        for f in &found {
            msg.push_str(&format!(
                "\n{f} ({}) differs from it only in case, and its selector is a PUSH4 operand \
                 of the code: check it against the contract's source or ABI.",
                hex4(selector(f))
            ));
        }
        if found.is_empty() {
            msg.push_str(&format!(
                "\nNo spelling of {name} that differs from it only in case has its selector \
                 in the code (custody tried {tried})."
            ));
        }
        labels.extend(
            found
                .into_iter()
                .map(|f| (f, "differs only in case".into())),
        );
    }
    labels.push((t.getter.to_owned(), "--authority-getter".into()));
    labels.push(("Error(string)".into(), "revert reason".into()));
    labels.push(("Panic(uint256)".into(), "panic".into()));
    let ops = pushes.push4();
    if ops.is_empty() {
        msg.push_str(
            "\nThe code has no PUSH4 operand at all: a proxy, whose functions are in another \
             contract's code?",
        );
    } else {
        msg.push_str(&format!(
            "\nThe code's {} PUSH4 operands, its functions' selectors among them:",
            ops.len()
        ));
        for op in ops {
            let known: Vec<String> = labels
                .iter()
                .filter_map(|(s, kind)| match pushed_as(*op, selector(s))? {
                    0 => Some(format!("{s} ({kind})")),
                    k => Some(format!("{s} ({kind}; pushed shifted right by {k} bits)")),
                })
                .collect();
            msg.push_str(&format!("\n  {}  {}", hex4(*op), known.join(", ")));
        }
    }
    let mut err = Error::verification(msg);
    if abi.is_none() {
        err = err.hint(
            "if the contract is a proxy (its code delegates calls to another contract's), give \
             --abi FILE holding the function: custody then binds it on the ABI's word",
        );
    }
    err
}

/// Whether the PUSH4 operand `op` is `sel`, or `sel` shifted right by some bits: solc's
/// optimizer pushes an error's selector, which it shifts into the top of a word, as `sel >> k`
/// when that saves a byte (Error(string) as 0x461bcd << 229). A function's selector is compared
/// as it is, never shifted. The shift, or `None`.
fn pushed_as(op: [u8; 4], sel: [u8; 4]) -> Option<u32> {
    let (op, sel) = (u32::from_be_bytes(op), u32::from_be_bytes(sel));
    (0..32).find(|k| sel.trailing_zeros() >= *k && sel >> k == op && op != 0)
}

/// The spellings of `call`'s name that differ from it only in ASCII case (its types in lower
/// case, as canonical types are), whose selector is a PUSH4 operand of the code; and what was
/// tried. Every spelling for a name of up to 16 letters; for a longer one, those with the case
/// of up to as many letters changed as [`CASE_BUDGET`] hashes allow.
fn case_variants_in(call: &str, pushes: &Pushes) -> (Vec<String>, String) {
    let Some((name, rest)) = call.split_once('(') else {
        return (Vec::new(), "nothing".into());
    };
    let rest = rest.to_ascii_lowercase();
    let letters: Vec<usize> = name
        .char_indices()
        .filter(|(_, c)| c.is_ascii_alphabetic())
        .map(|(i, _)| i)
        .take(63)
        .collect();
    let k = letters.len() as u32;
    // The most letters whose case may change so that every such spelling fits the budget.
    let mut changes = 0;
    let mut total = 1u64;
    while changes < k {
        let next = binomial(k, changes + 1);
        if total + next > CASE_BUDGET {
            break;
        }
        total += next;
        changes += 1;
    }
    let mut found = Vec::new();
    let mut try_mask = |mask: u64| {
        let mut bytes = name.as_bytes().to_vec();
        for (bit, at) in letters.iter().enumerate() {
            if mask >> bit & 1 == 1 {
                bytes[*at] ^= 0x20; // ASCII letters: flip the case
            }
        }
        let candidate = format!("{}({rest}", String::from_utf8_lossy(&bytes));
        if candidate != call && pushes.find(selector(&candidate)) == Presence::Push4 {
            found.push(candidate);
        }
    };
    try_mask(0);
    for d in 1..=changes {
        // Every k-bit mask with d bits set (Gosper's hack).
        let mut mask: u64 = (1 << d) - 1;
        while mask < 1 << k {
            try_mask(mask);
            let c = mask & mask.wrapping_neg();
            let r = mask + c;
            mask = (((r ^ mask) >> 2) / c) | r;
        }
    }
    let tried = if changes == k {
        format!("every case spelling of its {k} letters")
    } else {
        format!("every spelling with the case of up to {changes} of its {k} letters changed")
    };
    (found, tried)
}

fn binomial(n: u32, k: u32) -> u64 {
    (0..k).fold(1u64, |acc, i| {
        acc.saturating_mul(u64::from(n - i)) / u64::from(i + 1)
    })
}

/// Shows what is about to be bound for ever and asks (`--yes` answers); a "no" is exit 1 with
/// nothing written. How it was confirmed, for the transcript.
pub fn confirm(ctx: &Ctx, t: &Target, c: &Checked) -> Result<&'static str> {
    let found = match c.presence {
        Presence::Push4 => format!(
            "a PUSH4 operand of the contract's code (one of {})",
            c.push4_operands
        ),
        Presence::Shorter(n) => format!(
            "in the contract's code only as a PUSH{n} of its value (it begins with zero bytes, \
             which solc pushes shorter; weaker evidence: jump targets and small constants are \
             pushed the same way)"
        ),
        Presence::Absent => "NOT in the contract's code: only the ABI says the contract has \
                             this function (a proxy?)"
            .to_owned(),
    };
    let mut summary = format!(
        "About to bind {} ({}) to one call, for ever: an allow-list is written once and never \
         changes.\n  contract  {}\n  chain     {}\n  function  {}\n  selector  {}: {found}\n  \
         checked   at block {} (code keccak256 {}; {} returns {})",
        t.name,
        t.address,
        t.contract,
        t.chain_id,
        t.call,
        hex4(c.selector),
        t.block,
        t.code_hash,
        t.getter,
        t.address
    );
    if let Some(a) = c.abi {
        summary.push_str(&format!(
            "\n  ABI       {} (sha256 {}): holds {}",
            crate::ui::escape(&a.path.display().to_string()),
            a.sha256,
            t.call
        ));
    }
    summary.push_str("\nCheck each line against the contract's deployment and its source.");
    crate::flows::new_holders::confirm_on_screen(
        ctx,
        &summary,
        &format!("Bind {} to {} on {} for ever?", t.name, t.call, t.contract),
        "wallet bind cancelled; nothing was written",
    )?;
    Ok(if ctx.ui.assumes_yes() {
        "--yes"
    } else {
        "on the terminal"
    })
}

impl Checked<'_> {
    /// The transcript's record of the check and the confirmation.
    pub fn facts(&self, confirmed: &str) -> Value {
        json!({
            "selector": hex4(self.selector),
            "in_code": match self.presence {
                Presence::Push4 => "push4".to_owned(),
                Presence::Shorter(n) => format!("push{n}"),
                Presence::Absent => "absent".to_owned(),
            },
            "push4_operands": self.push4_operands,
            "abi": self.abi.map(|a| json!({
                "file": a.path.display().to_string(),
                "sha256": a.sha256,
                "functions": a.abi.functions.len(),
            })),
            "confirmed": confirmed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_pushing(sigs: &[&str]) -> Vec<u8> {
        sigs.iter()
            .flat_map(|s| {
                let mut op = vec![0x63];
                op.extend(selector(s));
                op
            })
            .collect()
    }

    #[test]
    fn an_error_selector_pushed_shifted_is_named() {
        // Unauthorized(address) is 0x8e4a23d6; solc pushes 0x472511eb, then SHL 225.
        let sel = selector("Unauthorized(address)");
        assert_eq!(hex::encode(sel), "8e4a23d6");
        assert_eq!(pushed_as([0x47, 0x25, 0x11, 0xeb], sel), Some(1));
        assert_eq!(pushed_as(sel, sel), Some(0));
        assert_eq!(pushed_as([0x47, 0x25, 0x11, 0xea], sel), None);
    }

    #[test]
    fn a_case_only_difference_is_found_and_the_search_is_bounded() {
        let pushes = bytecode::scan(&code_pushing(&["submitBlock(bytes32)", "authority()"]));
        let (found, tried) = case_variants_in("submitblock(bytes32)", &pushes);
        assert_eq!(found, ["submitBlock(bytes32)"]);
        assert_eq!(tried, "every case spelling of its 11 letters");
        let (found, _) = case_variants_in("SubmitBlock(Bytes32)", &pushes);
        assert_eq!(found, ["submitBlock(bytes32)"]);
        // The given spelling itself is no suggestion.
        assert!(
            case_variants_in("submitBlock(bytes32)", &pushes)
                .0
                .is_empty()
        );
        // 22 letters: every spelling with up to 5 letters changed is 1+22+231+1540+7315+26334
        // = 35443 names; with 6, 110056: over the budget.
        let pushes = bytecode::scan(&code_pushing(&["submitDepositBlockAbcd(bytes32)"]));
        let (found, tried) = case_variants_in("submitdepositblockabcd(bytes32)", &pushes);
        assert_eq!(found, ["submitDepositBlockAbcd(bytes32)"]);
        assert_eq!(
            tried,
            "every spelling with the case of up to 5 of its 22 letters changed"
        );
        assert_eq!(binomial(22, 5), 26334);
    }
}
