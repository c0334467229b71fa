//! `custody transcript sign`: a holder's OpenPGP signature over the transcript's current head.

use std::path::Path;

use serde_json::json;

use crate::error::{Error, Result};
use crate::flows::Ctx;
use crate::pgp::SecretKeyFile;
use crate::transcript::signatures::signed_text;
use crate::transcript::{Step, verify_file};

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
