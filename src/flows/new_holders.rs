//! Handing out a set of shares to holders, as `init` and `rotate-shares` do: the holders'
//! certificates checked and confirmed on screen before anything is sent, the output directory
//! proven writable, then each encrypted share written 0600 beside its holder's fingerprint,
//! checked to be addressed to that holder only, and printed when it cannot be written (the
//! server's answer is the only copy of a share).

use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::context::Ctx;
use super::files::share_path;
use crate::error::{Context as _, Error, Kind, Result};
use crate::fsutil::write_private;
use crate::pgp::{self, HolderCert, addressed_only_to};

/// The new holders' certificates, in order, and the threshold, checked before any server work:
/// at least 2 holders and at most 255, 2 ≤ threshold ≤ holders, no key given twice.
pub fn load(pgp_keys: &[PathBuf], threshold: u32, what: &str) -> Result<Vec<HolderCert>> {
    let n = pgp_keys.len();
    if n < 2 {
        return Err(Error::usage(format!(
            "{what} needs at least 2 holders' keys (--pgp-key); {n} given"
        )));
    }
    if n > 255 {
        return Err(Error::usage("Shamir sharing allows at most 255 holders"));
    }
    let t = threshold as usize;
    if t < 2 || t > n {
        return Err(Error::usage(format!(
            "--threshold {t}: must be at least 2 and at most the number of holders ({n})"
        )));
    }
    let mut holders: Vec<HolderCert> = Vec::new();
    for path in pgp_keys {
        let cert = pgp::load_holder_cert(path)?;
        if let Some(first) = holders.iter().find(|h| h.fingerprint == cert.fingerprint) {
            return Err(Error::precondition(format!(
                "{}: certificate {} was already given as {}; each holder needs their own key",
                path.display(),
                cert.fingerprint,
                first.path.display()
            )));
        }
        holders.push(cert);
    }
    Ok(holders)
}

/// `--out` is a directory (or missing) and holds no share of these holders yet.
pub fn refuse_existing_shares(out: &Path, holders: &[HolderCert]) -> Result<()> {
    if out.exists() && !out.is_dir() {
        return Err(Error::precondition(format!(
            "--out {}: exists and is not a directory",
            out.display()
        )));
    }
    for h in holders {
        let p = share_path(out, &h.fingerprint);
        if p.exists() {
            return Err(Error::precondition(format!(
                "{} already exists; custody never overwrites a share",
                p.display()
            )));
        }
    }
    Ok(())
}

/// Proves `out` can take the shares before anything is sent: a directory (made 0700 when
/// missing) where custody can create a file.
pub fn writable_out(out: &Path, what: &str) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let shown = out.display();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(out)
        .with_kind(
            Kind::Precondition,
            format!("--out {shown}: cannot create it"),
        )?;
    let probe = out.join(format!(".custody-probe-{}", std::process::id()));
    write_private(&probe, b"probe", false)
        .and_then(|()| std::fs::remove_file(&probe).context(format!("removing {}", probe.display())))
        .map_err(|e| {
            Error::precondition(format!(
                "--out {shown}: custody cannot write there; {what} sends nothing until the shares have somewhere to go"
            ))
            .caused_by(e)
        })
}

/// The holders in order, one line each, for each holder to check their own fingerprint.
pub fn holder_lines(holders: &[HolderCert]) -> String {
    holders
        .iter()
        .enumerate()
        .map(|(i, h)| {
            format!(
                "  {}. {}  {}  ({})\n",
                i + 1,
                h.fingerprint,
                h.display_name(),
                h.path.display()
            )
        })
        .collect()
}

/// Each holder's certificate as the server takes it (base64 of the binary key), in order.
pub fn vault_encodings(holders: &[HolderCert]) -> Result<Vec<String>> {
    holders.iter().map(HolderCert::vault_encoding).collect()
}

/// The holders as a transcript records them.
pub fn holder_facts(holders: &[HolderCert]) -> Vec<serde_json::Value> {
    holders
        .iter()
        .enumerate()
        .map(|(i, h)| {
            serde_json::json!({
                "index": i + 1,
                "fingerprint": h.fingerprint,
                "user_id": h.display_name(),
                "certificate_sha256": h.file_sha256,
                "encryption_keys": h.encryption_keys,
            })
        })
        .collect()
}

#[derive(Debug, serde::Serialize)]
pub struct WrittenShare {
    pub index: usize,
    pub fingerprint: String,
    pub user_id: String,
    pub file: String,
    pub sha256: String,
    pub recipient_ok: bool,
}

/// An output that could not be written: printed instead, so that no share exists nowhere.
pub struct Rescued {
    /// Whose it is: "share 2 of FPR" or "the root token (FPR)".
    pub label: String,
    /// The armored message, or the server's base64 when it did not decode.
    pub text: String,
    pub why: String,
}

/// Writes every share it can (losing the server's only copy of a share would be worse than any
/// mismatch), rescues the others, and says which recipients check out.
pub fn write_shares(
    out: &Path,
    holders: &[HolderCert],
    keys_base64: &[String],
) -> (Vec<WrittenShare>, Vec<Rescued>) {
    let mut rescued = Vec::new();
    if keys_base64.len() != holders.len() {
        // Nothing tells which share is whose: every one is printed as the server sent it.
        for (i, enc) in keys_base64.iter().enumerate() {
            rescued.push(Rescued {
                label: format!("share {} as the server sent it (base64)", i + 1),
                text: enc.clone(),
                why: format!(
                    "the server returned {} shares for {} holders",
                    keys_base64.len(),
                    holders.len()
                ),
            });
        }
        return (Vec::new(), rescued);
    }
    let mut written = Vec::new();
    for (i, (holder, enc)) in holders.iter().zip(keys_base64).enumerate() {
        let path = share_path(out, &holder.fingerprint);
        match write_one(&path, enc) {
            Ok((binary, sha256)) => written.push(WrittenShare {
                index: i + 1,
                fingerprint: holder.fingerprint.clone(),
                user_id: holder.display_name(),
                file: path.display().to_string(),
                sha256,
                recipient_ok: addressed_only_to(&binary, holder),
            }),
            Err((text, why)) => rescued.push(Rescued {
                label: format!("share {} of {}", i + 1, holder.fingerprint),
                text,
                why,
            }),
        }
    }
    (written, rescued)
}

/// One output: the server's base64, armored and written 0600 to `path`. The binary message and
/// the file's sha256; or what to print instead (the armored text, else the base64) and why.
pub fn write_one(
    path: &Path,
    enc: &str,
) -> std::result::Result<(Vec<u8>, String), (String, String)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let binary = b64.decode(enc).map_err(|e| {
        (
            enc.to_owned(),
            format!("the server's text is not base64: {e}"),
        )
    })?;
    let armored = pgp::armor_message(&binary).map_err(|e| (enc.to_owned(), e.to_string()))?;
    match write_private(path, &armored, false) {
        Ok(()) => Ok((binary, crate::digest::sha256_hex(&armored))),
        Err(e) => Err((
            String::from_utf8_lossy(&armored).into_owned(),
            e.to_string(),
        )),
    }
}

/// Prints each rescued output between `====` lines on standard output (each is ciphertext for
/// its holder).
pub fn print_rescued(ctx: &Ctx, what: &str, rescued: &[Rescued]) {
    for r in rescued {
        let block = format!(
            "==== custody {what} could not write {}: {}\n{}\n==== end of {}\n",
            r.label,
            r.why,
            r.text.trim_end(),
            r.label
        );
        if let Err(e) = ctx.ui.raw(block.as_bytes()) {
            ctx.ui.warn(format!("printing {}: {e}", r.label));
        }
    }
}

/// One line per written share: its holder, file and whether its recipient checks out.
pub fn written_lines(written: &[WrittenShare]) -> String {
    written
        .iter()
        .map(|s| {
            format!(
                "  {}. {}  {}  {}\n",
                s.index,
                s.fingerprint,
                s.file,
                if s.recipient_ok {
                    "recipient verified"
                } else {
                    "RECIPIENT MISMATCH"
                }
            )
        })
        .collect()
}

/// Shows `summary` (the holders in order, each to check their own fingerprint) and asks; a
/// "no" is `cancelled`, with nothing sent.
pub fn confirm_on_screen(ctx: &Ctx, summary: &str, question: &str, cancelled: &str) -> Result<()> {
    ctx.ui.status(summary);
    if !ctx.ui.confirm(question)? {
        return Err(Error::failed(cancelled));
    }
    Ok(())
}

/// The error after [`print_rescued`]: `done` (what already happened on the server), which of
/// the `what` could not be written, what to do with the printed ones, and `then` (what holds
/// meanwhile, if anything); a transcript that was not written either is a hint.
pub fn rescued_error(
    done: &str,
    what: &str,
    rescued: &[Rescued],
    then: &str,
    transcript: Option<Error>,
) -> Error {
    let mut err = Error::failed(format!(
        "{done}, but {} {what} could not be written: {}. Each is printed above on standard \
         output, between ==== lines; save each to a file now and give it to its holder (it is \
         encrypted to them){then}",
        rescued.len(),
        rescued
            .iter()
            .map(|r| r.label.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if let Some(e) = transcript {
        err = err.hint(format!("the transcript was not written either: {e}"));
    }
    err
}

/// The fingerprints of shares the server encrypted to a key that is not their holder's.
pub fn misaddressed(written: &[WrittenShare]) -> Vec<String> {
    written
        .iter()
        .filter(|s| !s.recipient_ok)
        .map(|s| s.fingerprint.clone())
        .collect()
}
