//! The holders' shares for one run: from a share file and the holder's secret key, from stdin,
//! or from hidden prompts; each checked before anything is sent, held in zeroizing memory.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::context::Ctx;
use super::recorded::Record;
use crate::cli::ShareArgs;
use crate::error::{Context, Error, Kind, Result};
use crate::pgp::{self, DecryptError, SecretKeyFile};
use crate::secret::SecretString;
use crate::shamir::{self, Share};
use crate::vault::{Addr, Vault};

/// The most stdin custody reads for `--share-stdin`.
const MAX_STDIN: u64 = 64 * 1024;

/// Shares for one run, and who gave them.
pub struct Shares {
    pub shares: Vec<Share>,
    /// Fingerprints of the holders whose secret key custody used (public facts).
    pub holders: Vec<String>,
}

/// Reads the shares from the one input the holder chose, and checks them all. `prompts` is how
/// many hidden prompts to offer when neither a file nor stdin is given.
pub fn gather(ctx: &Ctx, args: &ShareArgs, prompts: u32) -> Result<Shares> {
    gather_for(ctx, args, prompts, None)
}

/// [`gather`], each share file first compared with the one the transcript recorded for its
/// holder ([`against_record`]).
pub fn gather_recorded(
    ctx: &Ctx,
    args: &ShareArgs,
    prompts: u32,
    record: &Record,
) -> Result<Shares> {
    gather_checked(ctx, args, prompts, None, Some(record))
}

/// [`gather`], the hidden prompts naming whose shares they ask for (`of`: `set ss-…`).
pub fn gather_for(ctx: &Ctx, args: &ShareArgs, prompts: u32, of: Option<&str>) -> Result<Shares> {
    gather_checked(ctx, args, prompts, of, None)
}

fn gather_checked(
    ctx: &Ctx,
    args: &ShareArgs,
    prompts: u32,
    of: Option<&str>,
    record: Option<&Record>,
) -> Result<Shares> {
    let mut holders = Vec::new();
    let raw: Vec<(SecretString, String)> = if !args.share_file.is_empty() {
        decrypt_share_files(ctx, args, &mut holders, record)?
    } else if args.share_stdin {
        read_stdin_shares()?
    } else {
        prompt_shares(ctx, prompts, of)?
    };
    let shares = parse_all(&raw)?;
    if shares.is_empty() {
        return Err(Error::usage("no share given; nothing was sent")
            .hint("give --share-file FILE --secret-key FILE, or pipe shares to --share-stdin, or run on a terminal"));
    }
    shamir::check_distinct(&shares).map_err(|m| Error::usage(format!("{m}; nothing was sent")))?;
    Ok(Shares { shares, holders })
}

/// Each `--share-file` opened with its `--secret-key`; the fingerprints of the keys go to
/// `holders`. Passphrase files are taken in order by the keys that need one.
fn decrypt_share_files(
    ctx: &Ctx,
    args: &ShareArgs,
    holders: &mut Vec<String>,
    record: Option<&Record>,
) -> Result<Vec<(SecretString, String)>> {
    if args.share_file.len() != args.secret_key.len() {
        return Err(Error::usage(format!(
            "{} --share-file and {} --secret-key given: give each holder's share file with their \
             secret key, in the same order; nothing was sent",
            args.share_file.len(),
            args.secret_key.len()
        )));
    }
    let mut passphrases = args.passphrase_file.iter().map(PathBuf::as_path);
    let mut raw = Vec::new();
    for (share_file, key_file) in args.share_file.iter().zip(&args.secret_key) {
        let (share, fpr) = decrypt_with(ctx, share_file, key_file, &mut passphrases, record)?;
        if holders.contains(&fpr) {
            return Err(Error::usage(format!(
                "secret key {fpr} was given twice: each holder gives one share; nothing was sent"
            )));
        }
        holders.push(fpr.clone());
        raw.push((share, format!("holder {fpr}")));
    }
    if passphrases.next().is_some() {
        return Err(Error::usage(
            "more --passphrase-file than secret keys that need a passphrase; nothing was sent",
        ));
    }
    Ok(raw)
}

fn parse_all(raw: &[(SecretString, String)]) -> Result<Vec<Share>> {
    raw.iter()
        .map(|(text, label)| {
            shamir::parse_share(text, label)
                .map_err(|m| Error::usage(format!("{m}; nothing was sent")))
        })
        .collect()
}

/// Tops `shares` up to `need` at hidden prompts (one holder's file given, the others typing
/// theirs on the terminal), the prompts naming whose shares they ask for (`of`). Without a
/// terminal it fails saying how many are missing.
pub fn prompt_rest(ctx: &Ctx, shares: &mut Shares, need: u32, of: Option<&str>) -> Result<()> {
    let have = shares.shares.len() as u32;
    if have >= need {
        return Ok(());
    }
    if !ctx.ui.can_prompt() {
        return Err(Error::usage(format!(
            "{need} shares are needed and {have} given: each --share-file is one holder's \
             share, and there is no terminal for the others to type theirs at; nothing was sent"
        ))
        .hint("give every holder's --share-file with their --secret-key, run on a terminal, or pipe the decrypted shares of the quorum to --share-stdin"));
    }
    let raw = prompt_lines(ctx, have, need, of)?;
    shares.shares.extend(parse_all(&raw)?);
    shamir::check_distinct(&shares.shares)
        .map_err(|m| Error::usage(format!("{m}; nothing was sent")))
}

pub fn decrypt_share_file(
    ctx: &Ctx,
    share_file: &Path,
    key_file: &Path,
    passphrase_file: Option<&Path>,
) -> Result<(SecretString, String)> {
    decrypt_with(
        ctx,
        share_file,
        key_file,
        &mut passphrase_file.into_iter(),
        None,
    )
}

/// One holder's share file (in any of the three forms of [`pgp::read_message`]) opened with
/// their key; a protected key takes the next passphrase file, else asks on the terminal. With a
/// `record`, the file is first compared with the one recorded for the key's holder.
fn decrypt_with(
    ctx: &Ctx,
    share_file: &Path,
    key_file: &Path,
    passphrases: &mut dyn Iterator<Item = &Path>,
    record: Option<&Record>,
) -> Result<(SecretString, String)> {
    let meta = std::fs::metadata(share_file).with_kind(
        Kind::Usage,
        format!("--share-file {}: cannot read it", share_file.display()),
    )?;
    if meta.len() > MAX_STDIN {
        return Err(Error::usage(format!(
            "--share-file {}: too large for a share",
            share_file.display()
        )));
    }
    let data = std::fs::read(share_file).with_kind(
        Kind::Usage,
        format!("--share-file {}: cannot read it", share_file.display()),
    )?;
    let (message, form) = pgp::read_message(&data)
        .map_err(|e| e.doing(format!("--share-file {}", share_file.display())))?;
    let key = SecretKeyFile::load(key_file)?;
    if let Some(record) = record {
        against_record(ctx, record, share_file, &data, &key.fingerprint())?;
    }
    let plain = match key.decrypt(&message, None) {
        Ok(p) => p,
        Err(DecryptError::NeedPassphrase { key: k }) => {
            let pass = match passphrases.next() {
                Some(p) => read_passphrase_file(p)?,
                None => ctx.ui.secret(
                    &format!("Passphrase for secret key {k}"),
                    "the key is passphrase-protected: give --passphrase-file FILE",
                )?,
            };
            key.decrypt(&message, Some(&pass))
                .map_err(|e| decrypt_error(share_file, e))?
        }
        Err(e) => return Err(decrypt_error(share_file, e)),
    };
    let text = std::str::from_utf8(plain.expose()).map_err(|_| {
        Error::usage(format!(
            "{}: the decrypted share is not text",
            share_file.display()
        ))
    })?;
    ctx.ui.status(format!(
        "{}: {} share, opened with secret key {}",
        share_file.display(),
        form.label(),
        key.fingerprint()
    ));
    Ok((SecretString::new(text.trim().to_owned()), key.fingerprint()))
}

/// The share file must be one the transcript recorded for the key's holder (init's, or a
/// rotation's new share), byte for byte: compared by sha256 before the key is unlocked or
/// anything is sent. A holder of an adopted set has no recorded file (the server's CLI wrote
/// it): nothing to compare, and custody says so. A key that holds no share of any recorded set
/// is refused.
fn against_record(
    ctx: &Ctx,
    record: &Record,
    share_file: &Path,
    data: &[u8],
    fpr: &str,
) -> Result<()> {
    let sha = crate::digest::sha256_hex(data);
    let shown = share_file.display();
    let mine: Vec<_> = record.files_of(fpr).collect();
    if mine.iter().any(|f| f.sha256.eq_ignore_ascii_case(&sha)) {
        return Ok(());
    }
    if let Some(other) = record.file_with_sha(&sha) {
        return Err(Error::precondition(format!(
            "--share-file {shown} is the share file {} wrote for holder {} (transcript line {}), \
             not for secret key {fpr}: it is not addressed to that key's holder; nothing was sent",
            other.origin, other.fingerprint, other.line
        ))
        .hint("each holder gives their own share file with their own secret key"));
    }
    if let Some(last) = mine.last() {
        return Err(Error::precondition(format!(
            "--share-file {shown} is not the share file recorded for holder {fpr}: its sha256 is \
             {sha}, and {} wrote {} with sha256 {} (transcript line {}). It may be the share of \
             another cluster's init, or a changed copy; nothing was sent",
            last.origin, last.file, last.sha256, last.line
        ))
        .hint("give the share file exactly as custody wrote it for this cluster; a holder who has only the decrypted share pipes it to --share-stdin"));
    }
    if record.knows_holder(fpr) {
        ctx.ui.status(format!(
            "{shown}: the transcript records no share file for holder {fpr} (custody did not \
             write it: an adopted set's shares, or one init printed because it could not write \
             it), so custody cannot compare this one"
        ));
        return Ok(());
    }
    if record.has_origin {
        return Err(Error::precondition(format!(
            "secret key {fpr} holds no share of any share set the transcript records: \
             --share-file {shown} is not a share of this cluster; nothing was sent"
        )));
    }
    Ok(())
}

fn decrypt_error(share_file: &Path, e: DecryptError) -> Error {
    match e {
        DecryptError::NeedPassphrase { key } => Error::usage(format!(
            "secret key {key} is passphrase-protected: give --passphrase-file FILE"
        )),
        DecryptError::WrongPassphrase { key } => Error::usage(format!(
            "the passphrase does not unlock secret key {key}; nothing was sent"
        )),
        DecryptError::Other(e) => e.doing(share_file.display()),
    }
}

pub fn read_passphrase_file(path: &Path) -> Result<SecretString> {
    let raw = zeroize::Zeroizing::new(std::fs::read(path).with_kind(
        Kind::Usage,
        format!("--passphrase-file {}: cannot read it", path.display()),
    )?);
    let text = std::str::from_utf8(&raw).map_err(|_| {
        Error::usage(format!(
            "--passphrase-file {}: not UTF-8 text",
            path.display()
        ))
    })?;
    Ok(SecretString::new(without_line_end(text).to_owned()))
}

/// A trailing newline (`\n` or `\r\n`) from an editor or `echo` is not part of a passphrase;
/// any other whitespace is.
fn without_line_end(text: &str) -> &str {
    let t = text.strip_suffix('\n').unwrap_or(text);
    t.strip_suffix('\r').unwrap_or(t)
}

fn read_stdin_shares() -> Result<Vec<(SecretString, String)>> {
    let mut buf = zeroize::Zeroizing::new(Vec::new());
    std::io::stdin()
        .take(MAX_STDIN + 1)
        .read_to_end(&mut buf)
        .context("reading stdin")?;
    if buf.len() as u64 > MAX_STDIN {
        return Err(Error::usage(
            "--share-stdin: more than 64 KiB on stdin; that is not a list of shares",
        ));
    }
    let text =
        std::str::from_utf8(&buf).map_err(|_| Error::usage("--share-stdin: stdin is not text"))?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            (
                SecretString::new(l.trim().to_owned()),
                format!("stdin line {}", i + 1),
            )
        })
        .collect())
}

/// How many holders the neediest node still lacks (for the hidden prompts).
pub async fn prompt_need(ctx: &Ctx, vault: &Vault, addrs: &[Addr]) -> Result<u32> {
    if !ctx.ui.can_prompt() {
        return Err(Error::usage("no share given and no terminal to ask on").hint(
            "give --share-file FILE --secret-key FILE, or pipe the decrypted shares to --share-stdin",
        ));
    }
    let statuses = super::nodes::all_status(vault, addrs).await;
    let threshold = statuses.iter().map(|s| s.threshold).max().unwrap_or(0);
    if threshold == 0 {
        return Err(Error::precondition(
            "no node is initialized; run custody init first",
        ));
    }
    let waiting_join = statuses.iter().any(|s| s.reachable && !s.initialized);
    Ok(statuses
        .iter()
        .filter(|s| s.reachable && s.initialized && s.sealed)
        .map(|s| s.threshold.saturating_sub(s.progress))
        .max()
        .unwrap_or(0)
        .max(if waiting_join { threshold } else { 0 }))
}

/// Hidden prompts, one holder after another; an empty answer stops early.
fn prompt_shares(ctx: &Ctx, need: u32, of: Option<&str>) -> Result<Vec<(SecretString, String)>> {
    if !ctx.ui.can_prompt() {
        return Err(Error::usage("no share given and no terminal to ask on").hint(
            "give --share-file FILE --secret-key FILE, or pipe the decrypted shares to --share-stdin",
        ));
    }
    prompt_lines(ctx, 0, need, of)
}

/// Hidden prompts for holders `from + 1` to `need`; an empty answer stops early.
fn prompt_lines(
    ctx: &Ctx,
    from: u32,
    need: u32,
    of: Option<&str>,
) -> Result<Vec<(SecretString, String)>> {
    let of = of.map(|o| format!(" ({o})")).unwrap_or_default();
    let mut out = Vec::new();
    for i in from..need {
        let s = ctx.ui.secret(
            &format!(
                "Holder {} of {need}{of}: your unseal share (hidden; leave empty to stop)",
                i + 1
            ),
            "pipe the decrypted shares to --share-stdin",
        )?;
        if s.expose().trim().is_empty() {
            break;
        }
        out.push((s, format!("prompt {}", i + 1)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_line_end_is_dropped_from_a_passphrase() {
        use super::without_line_end;
        assert_eq!(without_line_end("pass"), "pass");
        assert_eq!(without_line_end("pass\n"), "pass");
        assert_eq!(without_line_end("pass\r\n"), "pass");
        assert_eq!(without_line_end(" pass \n"), " pass ");
        assert_eq!(without_line_end("pass\n\n"), "pass\n");
    }
}
