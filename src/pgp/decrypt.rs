//! Decrypting one holder's share with the holder's own secret key file (sequoia, in memory).

use std::io::Read;
use std::path::Path;

use sequoia_openpgp as openpgp;

use openpgp::crypto::{Password, SessionKey};
use openpgp::packet::{PKESK, SKESK};
use openpgp::parse::Parse;
use openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, MessageStructure, VerificationHelper,
};
use openpgp::policy::StandardPolicy;
use openpgp::types::SymmetricAlgorithm;
use openpgp::{Cert, KeyHandle};

use crate::error::{Context, Error, Kind, Result};
use crate::secret::{SecretBytes, SecretString};

/// The largest share file custody reads.
const MAX_MESSAGE: u64 = 64 * 1024;

/// Why a decryption did not give a plaintext.
#[derive(Debug)]
pub enum DecryptError {
    /// The secret key is passphrase-protected and no passphrase (or a wrong one) was given.
    NeedPassphrase {
        key: String,
    },
    WrongPassphrase {
        key: String,
    },
    Other(Error),
}

impl From<Error> for DecryptError {
    fn from(e: Error) -> Self {
        DecryptError::Other(e)
    }
}

/// A holder's transferable secret key, loaded from their file.
pub struct SecretKeyFile {
    cert: Cert,
}

impl SecretKeyFile {
    pub fn load(path: &Path) -> Result<SecretKeyFile> {
        let meta = std::fs::metadata(path).with_kind(
            Kind::Usage,
            format!("--secret-key {}: cannot read it", path.display()),
        )?;
        if meta.len() > 1 << 20 {
            return Err(Error::usage(format!(
                "--secret-key {}: larger than 1 MiB",
                path.display()
            )));
        }
        let bytes = zeroize::Zeroizing::new(std::fs::read(path).with_kind(
            Kind::Usage,
            format!("--secret-key {}: cannot read it", path.display()),
        )?);
        let cert = Cert::from_bytes(&bytes[..]).map_err(|e| {
            Error::usage(format!(
                "--secret-key {}: not an OpenPGP secret key",
                path.display()
            ))
            .caused_by_boxed(e)
        })?;
        if !cert.is_tsk() {
            return Err(Error::usage(format!(
                "--secret-key {}: holds only a public certificate ({}); give the secret key \
                 (gpg --export-secret-keys --armor), or decrypt with your own gpg and use --share-stdin",
                path.display(),
                cert.fingerprint()
            )));
        }
        Ok(SecretKeyFile { cert })
    }

    pub fn fingerprint(&self) -> String {
        self.cert.fingerprint().to_hex()
    }

    pub fn cert(&self) -> &Cert {
        &self.cert
    }

    /// Decrypts `message` (armored or binary). The plaintext stays in zeroizing memory.
    pub fn decrypt(
        &self,
        message: &[u8],
        passphrase: Option<&SecretString>,
    ) -> std::result::Result<SecretBytes, DecryptError> {
        let policy = StandardPolicy::new();
        let helper = Helper {
            cert: &self.cert,
            passphrase,
            outcome: None,
        };
        let mut decryptor = match DecryptorBuilder::from_bytes(message)
            .and_then(|b| b.with_policy(&policy, None, helper))
        {
            Ok(d) => d,
            Err(e) => {
                // The helper's verdict survives in the error chain only as text; recover the
                // typed reason from the message.
                let text = e
                    .chain()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(": ");
                if let Some(key) = text.strip_prefix(NEED_PASSPHRASE) {
                    return Err(DecryptError::NeedPassphrase {
                        key: key.split(':').next().unwrap_or("").to_owned(),
                    });
                }
                if let Some(key) = text.strip_prefix(WRONG_PASSPHRASE) {
                    return Err(DecryptError::WrongPassphrase {
                        key: key.split(':').next().unwrap_or("").to_owned(),
                    });
                }
                return Err(DecryptError::Other(
                    Error::precondition("cannot decrypt the share").caused_by_boxed(e),
                ));
            }
        };
        let mut plain = zeroize::Zeroizing::new(Vec::new());
        (&mut decryptor)
            .take(MAX_MESSAGE)
            .read_to_end(&mut plain)
            .with_kind(Kind::Verification, "the share message is damaged")?;
        Ok(SecretBytes::new(std::mem::take(&mut *plain)))
    }
}

const NEED_PASSPHRASE: &str = "passphrase needed for key ";
const WRONG_PASSPHRASE: &str = "wrong passphrase for key ";

struct Helper<'a> {
    cert: &'a Cert,
    passphrase: Option<&'a SecretString>,
    outcome: Option<()>,
}

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(Vec::new())
    }
    fn check(&mut self, _structure: MessageStructure) -> openpgp::Result<()> {
        Ok(())
    }
}

impl DecryptionHelper for Helper<'_> {
    fn decrypt(
        &mut self,
        pkesks: &[PKESK],
        _skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        let policy = StandardPolicy::new();
        let keys: Vec<_> = self
            .cert
            .keys()
            .with_policy(&policy, None)
            .secret()
            .for_transport_encryption()
            .for_storage_encryption()
            .collect();
        for pkesk in pkesks {
            let addressed: Vec<_> = keys
                .iter()
                .filter(|k| {
                    pkesk
                        .recipient()
                        .map(|r| r.aliases(k.key().key_handle()))
                        .unwrap_or(true)
                })
                .collect();
            for ka in addressed {
                let mut key = ka.key().clone();
                if key.secret().is_encrypted() {
                    let fpr = key.fingerprint().to_hex();
                    let Some(pass) = self.passphrase else {
                        return Err(anyhow::anyhow!("{NEED_PASSPHRASE}{fpr}"));
                    };
                    let password = Password::from(pass.expose());
                    key = key
                        .decrypt_secret(&password)
                        .map_err(|_| anyhow::anyhow!("{WRONG_PASSPHRASE}{fpr}"))?;
                }
                let mut pair = key.into_keypair()?;
                if pkesk
                    .decrypt(&mut pair, sym_algo)
                    .map(|(algo, sk)| decrypt(algo, &sk))
                    .unwrap_or(false)
                {
                    self.outcome = Some(());
                    return Ok(None);
                }
            }
        }
        Err(anyhow::anyhow!(
            "the share is not addressed to the secret key {} (it was encrypted for someone else)",
            self.cert.fingerprint()
        ))
    }
}
