//! `custody transcript verify`: the chain, the head hash witnesses write down, and the holders'
//! signatures over it.

use std::path::Path;

use serde_json::json;

use crate::error::{Error, Result};
use crate::flows::Ctx;
use crate::flows::certs::{check_with, load_certs};
use crate::transcript::read_verified;
use crate::transcript::signatures::{
    CountedSigner, SignatureCheck, UnsignedLine, Verifier, init_holders, judge,
};

pub fn verify(
    ctx: &Ctx,
    file: &Path,
    certs_dir: Option<&Path>,
    require: Option<u32>,
) -> Result<()> {
    let (head, entries) = read_verified(file)?;
    let (has_init, holders) = init_holders(&entries);
    let certs = match certs_dir {
        Some(d) => Some(load_certs(d)?),
        None => None,
    };
    if require.is_some() && certs.is_none() {
        // clap requires --certs with --require-signatures; this keeps the rule for any caller
        return Err(Error::usage(
            "--require-signatures needs --certs DIR: a signature counts only once it verifies \
             with its holder's certificate",
        ));
    }
    let check = |signer: &str, sig: &[u8], text: &[u8]| {
        check_with(
            certs.as_ref().expect("a verifier only with --certs"),
            signer,
            sig,
            text,
        )
    };
    let verifier: Option<Verifier> = certs.as_ref().map(|_| &check as Verifier);
    let judged = judge(&entries, &holders, verifier);
    let review = Review {
        file,
        has_init,
        holders,
        require,
        checks: judged.signatures,
        counted: judged.counted_signers,
        // The lines after the last head a holder's good signature covers (known only with --certs).
        unsigned: certs.as_ref().map(|_| judged.unsigned_lines),
    };
    let mut lines = review.lines(head.entries);
    lines.push(format!("Head hash (write this down): {}", head.head_hash));
    // Without --require-signatures every signature must check out; with it, a good signature
    // by someone else (a witness) is listed and not counted, but a forged one still fails.
    let bad = review
        .checks
        .iter()
        .filter(|c| certs.is_some() && if require.is_some() { c.forged } else { !c.ok })
        .count();
    let satisfied = require.map(|n| review.counted.len() >= n as usize);
    ctx.ui.result(
        &lines.join("\n"),
        json!({
            "file": file.display().to_string(),
            "entries": head.entries,
            "head_hash": head.head_hash,
            "signatures": review.checks,
            "ok": satisfied.unwrap_or(true) && bad == 0,
            "init_holders": review.holders,
            "required_signatures": require,
            "counted_signers": review.counted,
            "unsigned_lines": review.unsigned,
        }),
    );
    review.verdict(satisfied, bad)
}

/// What verify found, to show and to judge.
struct Review<'a> {
    file: &'a Path,
    has_init: bool,
    holders: Vec<String>,
    require: Option<u32>,
    checks: Vec<SignatureCheck>,
    counted: Vec<CountedSigner>,
    unsigned: Option<Vec<UnsignedLine>>,
}

impl Review<'_> {
    /// The counted holders, for people.
    fn names(&self) -> String {
        let esc = crate::ui::escape;
        self.counted
            .iter()
            .map(|s| format!("{} ({})", esc(&s.fingerprint), esc(&s.user_id)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The report for people, text from the transcript escaped.
    fn lines(&self, entries: u64) -> Vec<String> {
        let (file, require, checks, counted, holders, has_init) = (
            self.file,
            self.require,
            &self.checks,
            &self.counted,
            &self.holders,
            self.has_init,
        );
        let unsigned = &self.unsigned;
        let names = self.names();
        let esc = crate::ui::escape;
        let mut lines = vec![format!(
            "{}: {} entries, chain intact.",
            file.display(),
            entries
        )];
        for c in checks {
            let counted_note = match (require, &c.not_counted, &c.problem) {
                (None, _, _) => String::new(),
                (Some(_), None, _) => ", counted".to_owned(),
                (Some(_), Some(_), Some(_)) => "; not counted".to_owned(),
                (Some(_), Some(why), None) => format!(", not counted: {}", esc(why)),
            };
            lines.push(match &c.problem {
                None => format!(
                    "line {}: {} {} signed head {} — good{counted_note}",
                    c.line,
                    esc(&c.signer),
                    esc(&c.user_id),
                    esc(&c.signed_head)
                ),
                Some(p) => format!(
                    "line {}: {} signed head {} — {}{counted_note}",
                    c.line,
                    esc(&c.signer),
                    esc(&c.signed_head),
                    esc(p)
                ),
            });
        }
        if let Some(unsigned) = unsigned.as_ref().filter(|u| !u.is_empty()) {
            lines.push(format!(
                "Unsigned: no holder's signature that checks out covers these {} line(s):",
                unsigned.len()
            ));
            for u in unsigned {
                lines.push(format!(
                    "  line {}: {} {}",
                    u.line,
                    esc(&u.ceremony),
                    esc(&u.step)
                ));
            }
        }
        if let Some(n) = require {
            lines.push(if !has_init {
                "No init step (ceremony init, step sys/init, or adopt): the transcript names no \
             holders, so no signature counts."
                    .to_owned()
            } else if counted.is_empty() {
                format!(
                    "Signed by 0 of the {n} holder(s) required ({} recorded at init).",
                    holders.len()
                )
            } else {
                format!(
                    "Signed by {} of the {n} holder(s) required ({} recorded at init): {names}.",
                    counted.len(),
                    holders.len()
                )
            });
        }
        lines
    }

    /// Exit 3 when fewer holders than required signed, or a signature is forged.
    fn verdict(&self, satisfied: Option<bool>, bad: usize) -> Result<()> {
        let (file, require, counted, unsigned, has_init) = (
            self.file,
            self.require,
            &self.counted,
            &self.unsigned,
            self.has_init,
        );
        let names = self.names();
        match (require, satisfied) {
            (Some(n), Some(false)) if !has_init => Err(Error::verification(format!(
                "--require-signatures {n}: {} has no init step (ceremony init, step sys/init, or \
             adopt), so it names no holders whose signatures could count",
                file.display()
            ))),
            (Some(n), Some(false)) => {
                let mut err = Error::verification(format!(
                    "--require-signatures {n}: {} distinct holder(s) signed a head that covers every \
                 line{}",
                    counted.len(),
                    if names.is_empty() {
                        String::new()
                    } else {
                        format!(": {names}")
                    }
                ));
                if unsigned.as_ref().is_some_and(|u| !u.is_empty()) {
                    err = err.hint(
                        "a signature covers only the lines before it: holders sign again after the \
                     last step (custody --transcript FILE transcript sign --secret-key KEY)",
                    );
                }
                Err(err)
            }
            _ if bad > 0 => Err(Error::verification(format!(
                "{bad} signature(s) in the transcript do not check out (see above)"
            ))),
            _ => Ok(()),
        }
    }
}
