//! Where the ceremonies write the files holders and the operator keep, and reading them back.

use std::path::{Path, PathBuf};

use crate::error::{Context as _, Error, Kind, Result};
use crate::secret::SecretString;

/// A holder's encrypted share, named by the holder's fingerprint.
pub fn share_path(out: &Path, fingerprint: &str) -> PathBuf {
    out.join(format!("{fingerprint}.share.asc"))
}

/// The init root token, encrypted to the operator, named by the operator's fingerprint.
pub fn root_token_path(out: &Path, fingerprint: &str) -> PathBuf {
    out.join(format!("root-token.{fingerprint}.asc"))
}

/// A token file (the operator's --token-file, the wrapping token `wallet create` wrote): one
/// token, read into zeroizing memory. `what` names the file in errors.
pub fn read_token(path: &Path, what: &str) -> Result<SecretString> {
    let shown = path.display();
    let unreadable = || format!("{what} {shown}: cannot read it");
    let meta = std::fs::metadata(path).with_kind(Kind::Usage, unreadable())?;
    if meta.len() > 16 * 1024 {
        return Err(Error::usage(format!(
            "{what} {shown}: too large for a token"
        )));
    }
    let raw = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).with_kind(Kind::Usage, unreadable())?,
    );
    let token = raw.trim();
    if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::usage(format!(
            "{what} {shown}: does not hold one token"
        )));
    }
    Ok(SecretString::new(token.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_holds_one_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let ok = read_token(&file("ok", "s.abc\n"), "--token-file").unwrap();
        assert_eq!(ok.expose(), "s.abc");
        for (name, text) in [("empty", " \n"), ("two", "s.a s.b"), ("ctl", "s.a\u{7}")] {
            let e = read_token(&file(name, text), "--token-file").unwrap_err();
            assert!(e.message.ends_with("does not hold one token"), "{e}");
            assert_eq!(e.kind.exit_code(), 2);
        }
        let big = read_token(&file("big", &"a".repeat(17 * 1024)), "the wrapping token");
        assert!(big.unwrap_err().message.contains("too large"));
        let missing = read_token(&dir.path().join("none"), "--token-file").unwrap_err();
        assert!(missing.message.ends_with("cannot read it"), "{missing}");
        assert!(missing.causes().next().is_some());
    }
}
