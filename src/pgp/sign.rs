//! Detached OpenPGP signatures: a holder signs the transcript's head hash with their own key;
//! a witness checks it against the certificate recorded at init.

use std::io::Write;

use sequoia_openpgp as openpgp;

use openpgp::Cert;
use openpgp::parse::Parse;
use openpgp::parse::stream::{
    DetachedVerifierBuilder, MessageLayer, MessageStructure, VerificationHelper,
};
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{Armorer, Message, Signer};

use super::decrypt::SecretKeyFile;
use crate::error::{Context, Error, Result};
use crate::secret::SecretString;

/// An armored detached signature over `data` by the key's signing subkey.
pub fn sign_detached(
    key: &SecretKeyFile,
    passphrase: Option<&SecretString>,
    data: &[u8],
) -> Result<Vec<u8>> {
    let policy = StandardPolicy::new();
    let ka = key
        .cert()
        .keys()
        .with_policy(&policy, None)
        .supported()
        .alive()
        .revoked(false)
        .secret()
        .for_signing()
        .next()
        .ok_or_else(|| {
            Error::usage(format!(
                "secret key {} has no usable signing key",
                key.fingerprint()
            ))
        })?;
    let mut k = ka.key().clone();
    if k.secret().is_encrypted() {
        let pass = passphrase.ok_or_else(|| {
            Error::usage(format!(
                "secret key {} is passphrase-protected: give --passphrase-file FILE",
                key.fingerprint()
            ))
        })?;
        k = k
            .decrypt_secret(&openpgp::crypto::Password::from(pass.expose()))
            .map_err(|_| {
                Error::usage(format!(
                    "the passphrase does not unlock secret key {}",
                    key.fingerprint()
                ))
            })?;
    }
    let pair = k
        .into_keypair()
        .map_err(|e| Error::failed("the signing key").caused_by_boxed(e))?;
    let fail = |e: anyhow::Error| Error::failed("signing").caused_by_boxed(e);
    let mut out = Vec::new();
    {
        let message = Message::new(&mut out);
        let message = Armorer::new(message)
            .kind(openpgp::armor::Kind::Signature)
            .build()
            .map_err(fail)?;
        let mut signer = Signer::new(message, pair)
            .map_err(fail)?
            .detached()
            .build()
            .map_err(fail)?;
        signer.write_all(data).context("signing")?;
        signer.finalize().map_err(fail)?;
    }
    Ok(out)
}

struct Helper<'a> {
    cert: &'a Cert,
    good: bool,
}

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, _ids: &[openpgp::KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(vec![self.cert.clone()])
    }
    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        for layer in structure.into_iter() {
            if let MessageLayer::SignatureGroup { results } = layer {
                self.good |= results.iter().any(|r| r.is_ok());
            }
        }
        Ok(())
    }
}

/// True when `signature` is a good signature over `data` by `cert`.
pub fn verify_detached(cert: &Cert, signature: &[u8], data: &[u8]) -> bool {
    let policy = StandardPolicy::new();
    let helper = Helper { cert, good: false };
    let Ok(builder) = DetachedVerifierBuilder::from_bytes(signature) else {
        return false;
    };
    let Ok(mut v) = builder.with_policy(&policy, None, helper) else {
        return false;
    };
    v.verify_bytes(data).is_ok() && v.into_helper().good
}
