//! Where the ceremonies write the files holders and the operator keep, and reading them back.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::secret::SecretString;

/// A holder's encrypted share, named by the holder's fingerprint.
pub fn share_path(out: &Path, fingerprint: &str) -> PathBuf {
    out.join(format!("{fingerprint}.share.asc"))
}

/// The init root token, encrypted to the operator, named by the operator's fingerprint.
pub fn root_token_path(out: &Path, fingerprint: &str) -> PathBuf {
    out.join(format!("root-token.{fingerprint}.asc"))
}

/// The wrapping token `wallet create` wrote: read into zeroizing memory.
pub fn read_wrapping_token(path: &Path) -> Result<SecretString> {
    let raw = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| Error::failed(format!("{}: {e}", path.display())))?,
    );
    Ok(SecretString::new(raw.trim().to_owned()))
}
