//! `custody transcript verify | sign`: the chain, the head hash witnesses write down, and the
//! holders' OpenPGP signatures over it.

use std::collections::BTreeMap;
use std::path::Path;

use sequoia_openpgp as openpgp;

use openpgp::Cert;
use openpgp::cert::CertParser;
use openpgp::parse::Parse;
use serde_json::{Value, json};

use crate::error::{Context as _, Error, Kind, Result};
use crate::flows::Ctx;
use crate::pgp::SecretKeyFile;
use crate::transcript::{Step, read_verified, verify_file};

/// What a holder signs: the head hash, with its context.
pub fn signed_text(head: &str) -> String {
    format!("custody transcript head {head}\n")
}

pub fn sign(ctx: &Ctx, key_file: &Path, passphrase_file: Option<&Path>) -> Result<()> {
    let head = verify_file(ctx.transcript.path())?;
    if head.entries == 0 {
        return Err(Error::precondition(format!(
            "{} is empty: there is nothing to sign",
            ctx.transcript.path().display()
        )));
    }
    let key = SecretKeyFile::load(key_file)?;
    let passphrase = passphrase_file
        .map(crate::flows::shares::read_passphrase_file)
        .transpose()?;
    let signature = crate::pgp::sign::sign_detached(
        &key,
        passphrase.as_ref(),
        signed_text(&head.head_hash).as_bytes(),
    )?;
    let signature = String::from_utf8(signature)
        .map_err(|_| Error::failed("the armored signature is not text"))?;
    let fpr = key.fingerprint();
    let new_head = ctx.transcript.append(Step::new(
        "witness",
        "sign",
        &format!("holder {fpr}"),
        json!({ "signer": fpr, "signed_head": head.head_hash, "signature": signature }),
    ))?;
    ctx.ui.result(
        &format!("{fpr} signed head {}.\nNew head: {}", head.head_hash, new_head.head_hash),
        json!({ "signer": fpr, "signed_head": head.head_hash, "transcript_head": new_head.head_hash }),
    );
    Ok(())
}

fn load_certs(dir: &Path) -> Result<BTreeMap<String, Cert>> {
    let mut out = BTreeMap::new();
    let entries =
        std::fs::read_dir(dir).with_kind(Kind::Usage, format!("--certs {}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let Ok(parser) = CertParser::from_bytes(&bytes) else {
            continue;
        };
        for cert in parser.flatten() {
            out.insert(
                cert.fingerprint().to_hex(),
                cert.strip_secret_key_material(),
            );
        }
    }
    Ok(out)
}

#[derive(Debug, serde::Serialize)]
struct SignatureCheck {
    line: usize,
    signer: String,
    user_id: String,
    signed_head: String,
    ok: bool,
    problem: Option<String>,
    /// The line is no honest signature of this transcript: it signs no head it stood on, or
    /// its signature does not verify. Always a failure.
    forged: bool,
    /// The signed head is the head after this many lines (it covers lines 1 to this); None
    /// when it is no head of this transcript before the signature's line.
    covers_lines: Option<usize>,
    /// Counts toward --require-signatures: it checks out, its head covers every line that is
    /// not a signature, and it is its holder's first such signature.
    counted: bool,
    not_counted: Option<String>,
}

/// A line no holder's good signature covers.
#[derive(Debug, serde::Serialize)]
struct UnsignedLine {
    line: usize,
    ceremony: String,
    step: String,
}

#[derive(Debug, serde::Serialize)]
struct CountedSigner {
    fingerprint: String,
    user_id: String,
    line: usize,
}

fn is_signature(e: &Value) -> bool {
    e["ceremony"] == "witness" && e["step"] == "sign"
}

fn text_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

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
    let mut checks = check_signatures(&entries, &holders, certs.as_ref());
    let counted = count(&entries, &mut checks);
    // The lines after the last head a holder's good signature covers (known only with --certs).
    let unsigned = certs.as_ref().map(|_| unsigned_lines(&entries, &checks));
    let review = Review {
        file,
        has_init,
        holders,
        require,
        checks,
        counted,
        unsigned,
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

/// Whether the transcript has an init step, and the holders' fingerprints it names, in order.
fn init_holders(entries: &[Value]) -> (bool, Vec<String>) {
    let inits = || {
        entries
            .iter()
            .filter(|e| e["ceremony"] == "init" && e["step"] == "sys/init")
    };
    let mut holders: Vec<String> = Vec::new();
    for h in inits()
        .flat_map(|e| {
            e["facts"]["holders"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|h| h["fingerprint"].as_str().map(str::to_owned))
    {
        if !holders.contains(&h) {
            holders.push(h);
        }
    }
    (inits().next().is_some(), holders)
}

/// Each signature line checked: the head it signs, its signer among the init holders, and (with
/// certificates) the signature itself.
fn check_signatures(
    entries: &[Value],
    holders: &[String],
    certs: Option<&BTreeMap<String, Cert>>,
) -> Vec<SignatureCheck> {
    let mut checks = Vec::new();
    for (i, e) in entries.iter().enumerate().filter(|(_, e)| is_signature(e)) {
        let facts = &e["facts"];
        let signer = text_of(&facts["signer"]);
        let signed_head = text_of(&facts["signed_head"]);
        // entries[j]'s hash is the head after line j + 1
        let covers_lines = entries[..i]
            .iter()
            .position(|earlier| earlier["hash"].as_str() == Some(signed_head.as_str()))
            .map(|j| j + 1);
        let mut check = SignatureCheck {
            line: i + 1,
            signer: signer.clone(),
            user_id: String::new(),
            signed_head: signed_head.clone(),
            ok: false,
            problem: None,
            forged: false,
            covers_lines,
            counted: false,
            not_counted: None,
        };
        let problem = if e["prev"].as_str() != Some(signed_head.as_str()) {
            check.forged = true;
            Some(if covers_lines.is_none() {
                "it signs a head that is not one of this transcript's heads before it".to_owned()
            } else {
                "it signs an older head, not the transcript as it stood when it was added"
                    .to_owned()
            })
        } else if !holders.contains(&signer) {
            Some("the signer is not one of the holders recorded at init".to_owned())
        } else if let Some(certs) = certs {
            match certs.get(&signer) {
                None => Some(format!("no certificate {signer} in --certs")),
                Some(cert) => {
                    check.user_id = cert
                        .userids()
                        .next()
                        .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned())
                        .unwrap_or_default();
                    let sig = facts["signature"].as_str().unwrap_or_default();
                    if crate::pgp::sign::verify_detached(
                        cert,
                        sig.as_bytes(),
                        signed_text(&signed_head).as_bytes(),
                    ) {
                        None
                    } else {
                        check.forged = true;
                        Some("the signature does not verify with that certificate".to_owned())
                    }
                }
            }
        } else {
            Some("not checked: give --certs DIR".to_owned())
        };
        check.ok = problem.is_none();
        check.problem = problem;
        checks.push(check);
    }

    checks
}

/// Which signatures count: good ones whose head covers every line, once per holder. Marks each
/// check; the holders counted.
fn count(entries: &[Value], checks: &mut [SignatureCheck]) -> Vec<CountedSigner> {
    // The last line that is not itself a signature: a counted signature's head covers it.
    let last_content = entries
        .iter()
        .rposition(|e| !is_signature(e))
        .map_or(0, |i| i + 1);
    let mut counted: Vec<CountedSigner> = Vec::new();
    for c in checks.iter_mut() {
        let covers = c.covers_lines.unwrap_or(0);
        c.not_counted = if let Some(p) = &c.problem {
            Some(p.clone())
        } else if covers < last_content {
            let first = entries[covers..]
                .iter()
                .position(|e| !is_signature(e))
                .map_or(last_content, |j| covers + j + 1);
            let e = &entries[first - 1];
            Some(format!(
                "its head covers lines 1 to {covers} only, not line {first} ({} {}) added after it",
                text_of(&e["ceremony"]),
                text_of(&e["step"])
            ))
        } else if let Some(earlier) = counted.iter().find(|s| s.fingerprint == c.signer) {
            Some(format!(
                "this holder is already counted (line {})",
                earlier.line
            ))
        } else {
            counted.push(CountedSigner {
                fingerprint: c.signer.clone(),
                user_id: c.user_id.clone(),
                line: c.line,
            });
            None
        };
        c.counted = c.not_counted.is_none();
    }
    counted
}

/// The lines (other than signatures) after the last head a holder's good signature covers.
fn unsigned_lines(entries: &[Value], checks: &[SignatureCheck]) -> Vec<UnsignedLine> {
    let covered = checks
        .iter()
        .filter(|c| c.ok)
        .filter_map(|c| c.covers_lines)
        .max()
        .unwrap_or(0);
    entries
        .iter()
        .enumerate()
        .skip(covered)
        .filter(|(_, e)| !is_signature(e))
        .map(|(i, e)| UnsignedLine {
            line: i + 1,
            ceremony: text_of(&e["ceremony"]),
            step: text_of(&e["step"]),
        })
        .collect()
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
            "No init step (ceremony init, step sys/init): the transcript names no holders, so no \
             signature counts."
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
                "--require-signatures {n}: {} has no init step (ceremony init, step sys/init), so it \
             names no holders whose signatures could count",
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
