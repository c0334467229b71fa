//! Encrypting a secret custody made (a ceremony token) to a holder's certificate, armored.

use std::io::Write;

use sequoia_openpgp as openpgp;

use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{Armorer, Encryptor, LiteralWriter, Message};

use super::HolderCert;
use crate::error::{Context, Error, Kind, Result};

pub fn encrypt_armored(to: &HolderCert, plaintext: &[u8]) -> Result<Vec<u8>> {
    let policy = StandardPolicy::new();
    let recipients: Vec<_> = to
        .cert
        .keys()
        .with_policy(&policy, None)
        .supported()
        .alive()
        .revoked(false)
        .for_transport_encryption()
        .for_storage_encryption()
        .collect();
    if recipients.is_empty() {
        return Err(Error::precondition(format!(
            "{}: no usable encryption key",
            to.path.display()
        )));
    }
    let fail = |e: anyhow::Error| {
        Error::failed(format!("encrypting to {}", to.fingerprint)).caused_by_boxed(e)
    };
    let mut out = Vec::new();
    {
        let message = Message::new(&mut out);
        let message = Armorer::new(message).build().map_err(fail)?;
        let message = Encryptor::for_recipients(message, recipients)
            .build()
            .map_err(fail)?;
        let mut w = LiteralWriter::new(message).build().map_err(fail)?;
        w.write_all(plaintext)
            .with_kind(Kind::Failed, format!("encrypting to {}", to.fingerprint))?;
        w.finalize().map_err(fail)?;
    }
    Ok(out)
}
