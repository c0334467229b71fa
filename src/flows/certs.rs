//! The holders' public certificates from a directory (`--certs DIR`), and the check of a
//! transcript signature against them.

use std::collections::BTreeMap;
use std::path::Path;

use sequoia_openpgp as openpgp;

use openpgp::Cert;
use openpgp::cert::CertParser;
use openpgp::parse::Parse;

use crate::error::{Context as _, Kind, Result};
use crate::transcript::signatures::CertCheck;

/// Every certificate in the files of `dir`, by fingerprint (upper-case hex), secret key material
/// stripped. Files that hold no certificate are skipped.
pub fn load_certs(dir: &Path) -> Result<BTreeMap<String, Cert>> {
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

/// Checks a signature by `signer` over `text` with the signer's certificate in `certs`.
pub fn check_with(
    certs: &BTreeMap<String, Cert>,
    signer: &str,
    signature: &[u8],
    text: &[u8],
) -> CertCheck {
    let Some(cert) = certs.get(signer) else {
        return CertCheck::NoCert;
    };
    let user_id = cert
        .userids()
        .next()
        .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned())
        .unwrap_or_default();
    if crate::pgp::sign::verify_detached(cert, signature, text) {
        CertCheck::Good { user_id }
    } else {
        CertCheck::Bad { user_id }
    }
}

/// Runs `f` with a check of signatures against the certificates in `certs_dir`, if given.
pub fn with_certs<T>(
    certs_dir: Option<&Path>,
    f: impl FnOnce(Option<crate::transcript::signatures::Verifier>) -> Result<T>,
) -> Result<T> {
    let Some(dir) = certs_dir else {
        return f(None);
    };
    let certs = load_certs(dir)?;
    let check = |signer: &str, sig: &[u8], text: &[u8]| check_with(&certs, signer, sig, text);
    f(Some(&check))
}
