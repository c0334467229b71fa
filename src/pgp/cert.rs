//! A key holder's public certificate, checked the way a careful operator would before it is
//! handed to `sys/init`.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use sequoia_openpgp as openpgp;

use openpgp::cert::CertParser;
use openpgp::cert::amalgamation::ValidAmalgamation;
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::SerializeInto;
use openpgp::types::RevocationStatus;
use openpgp::{Cert, KeyHandle};

use crate::error::{Error, Result};

/// Largest certificate file custody reads (a real one is a few KiB).
const MAX_CERT_FILE: u64 = 1 << 20;

/// A public certificate that passed every check.
#[derive(Debug, Clone)]
pub struct HolderCert {
    pub path: PathBuf,
    pub cert: Cert,
    /// Primary key fingerprint, 40 upper-case hex digits.
    pub fingerprint: String,
    /// The user ids, for people to recognise the holder.
    pub user_ids: Vec<String>,
    /// Fingerprints of the keys that may receive an encrypted share.
    pub encryption_keys: Vec<String>,
    /// sha256 of the file as given.
    pub file_sha256: String,
}

impl HolderCert {
    /// What `sys/init` wants: base64 of the binary public certificate.
    pub fn vault_encoding(&self) -> Result<String> {
        let bytes = self.cert.to_vec().map_err(|e| {
            Error::failed(format!(
                "{}: serializing the certificate",
                self.path.display()
            ))
            .caused_by_boxed(e)
        })?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// True when `handle` names one of this certificate's usable encryption keys.
    pub fn is_encryption_key(&self, handle: &KeyHandle) -> bool {
        let policy = StandardPolicy::new();
        let Ok(vc) = self.cert.with_policy(&policy, None) else {
            return false;
        };
        vc.keys()
            .alive()
            .revoked(false)
            .for_transport_encryption()
            .for_storage_encryption()
            .any(|k| k.key().key_handle().aliases(handle))
    }

    /// The first user ID, its control and reordering characters escaped: text the holder's
    /// certificate chose, shown as data.
    pub fn display_name(&self) -> String {
        self.user_ids
            .first()
            .map(|u| crate::ui::escape(u))
            .unwrap_or_else(|| "(no user id)".to_owned())
    }
}

/// A refusal of the certificate at `path`, saying what is wrong with it; a cause from the file
/// system or the parser goes under it with [`Error::caused_by`].
fn problem(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::precondition(format!("{}: {what}", path.display()))
}

/// Reads and checks one holder's public certificate. Every refusal names the file and the reason.
pub fn load_holder_cert(path: &Path) -> Result<HolderCert> {
    let meta = std::fs::metadata(path).map_err(|e| problem(path, "cannot read it").caused_by(e))?;
    if !meta.is_file() {
        return Err(problem(path, "is not a regular file"));
    }
    if meta.len() > MAX_CERT_FILE {
        return Err(problem(
            path,
            "is larger than 1 MiB; it is not a single OpenPGP certificate",
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| problem(path, "cannot read it").caused_by(e))?;
    let file_sha256 = crate::digest::sha256_hex(&bytes);
    parse_holder_cert(path, &bytes).map(|mut c| {
        c.file_sha256 = file_sha256;
        c
    })
}

fn parse_holder_cert(path: &Path, bytes: &[u8]) -> Result<HolderCert> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(problem(path, "is empty"));
    }
    let parser = CertParser::from_bytes(bytes)
        .map_err(|e| problem(path, "is not an OpenPGP certificate").caused_by_boxed(e))?;
    let mut certs = Vec::new();
    for cert in parser {
        certs.push(
            cert.map_err(|e| {
                problem(path, "is not a valid OpenPGP certificate").caused_by_boxed(e)
            })?,
        );
    }
    let cert = match certs.len() {
        0 => return Err(problem(path, "holds no OpenPGP certificate")),
        1 => certs.pop().expect("one certificate"),
        n => {
            return Err(problem(
                path,
                format!("holds {n} certificates; give one holder's certificate per file"),
            ));
        }
    };
    let fingerprint = cert.fingerprint().to_hex();

    if cert.is_tsk() {
        return Err(problem(
            path,
            format!(
                "holds secret key material (key {fingerprint}). A holder's secret key must never be on \
                 the operator's machine: give only the public certificate (gpg --export --armor {fingerprint}), \
                 and have the holder check where this file has been"
            ),
        ));
    }
    if let Some(k) = cert.keys().find(|k| k.key().version() != 4) {
        return Err(problem(
            path,
            format!(
                "key {} is an OpenPGP v{} key; Vault and OpenBao read only v4 keys: make a v4 key \
                 (gpg --full-generate-key, or sq key generate --profile rfc4880)",
                k.key().fingerprint(),
                k.key().version()
            ),
        ));
    }
    let policy = StandardPolicy::new();
    let vc = cert.with_policy(&policy, None).map_err(|e| {
        problem(
            path,
            format!("certificate {fingerprint} is not valid: {}", root_cause(&e)),
        )
    })?;
    if let RevocationStatus::Revoked(_) = vc.revocation_status() {
        return Err(problem(
            path,
            format!("certificate {fingerprint} is revoked"),
        ));
    }
    if let Err(e) = vc.alive() {
        return Err(problem(
            path,
            format!("certificate {fingerprint} is not alive: {}", root_cause(&e)),
        ));
    }

    let usable: Vec<String> = vc
        .keys()
        .supported()
        .alive()
        .revoked(false)
        .for_transport_encryption()
        .for_storage_encryption()
        .map(|k| k.key().fingerprint().to_hex())
        .collect();
    if usable.is_empty() {
        let candidates: Vec<_> = vc
            .keys()
            .for_transport_encryption()
            .for_storage_encryption()
            .collect();
        let reason = if candidates.is_empty() {
            "has no encryption-capable subkey (a signing-only key cannot receive a share)"
                .to_owned()
        } else if candidates
            .iter()
            .all(|k| matches!(k.revocation_status(), RevocationStatus::Revoked(_)))
        {
            "its encryption subkey is revoked".to_owned()
        } else if candidates.iter().any(|k| k.alive().is_err()) {
            "its encryption subkey has expired".to_owned()
        } else {
            "its encryption subkey uses an algorithm custody cannot use".to_owned()
        };
        return Err(problem(
            path,
            format!("certificate {fingerprint}: {reason}"),
        ));
    }

    let user_ids = vc
        .userids()
        .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned())
        .collect();
    Ok(HolderCert {
        path: path.to_owned(),
        cert,
        fingerprint,
        user_ids,
        encryption_keys: usable,
        file_sha256: String::new(),
    })
}

fn root_cause(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_keeps_the_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.asc");
        let err = load_holder_cert(&path).unwrap_err();
        assert_eq!(err.message, format!("{}: cannot read it", path.display()));
        assert_eq!(err.kind, crate::error::Kind::Precondition);
        let source = std::error::Error::source(&err).expect("the io error is kept");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        assert_eq!(err.causes().count(), 1);
    }

    #[test]
    fn garbage_keeps_the_parser_error() {
        let err = parse_holder_cert(Path::new("x.asc"), b"not a certificate").unwrap_err();
        assert!(err.message.starts_with("x.asc: is not "), "{}", err.message);
        assert!(err.causes().next().is_some());
    }
}
