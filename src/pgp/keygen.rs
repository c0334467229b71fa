//! Throwaway holder keys for the rehearsal: v4, Cv25519, no passphrase.

use sequoia_openpgp as openpgp;

use openpgp::cert::{CertBuilder, CipherSuite};
use openpgp::serialize::SerializeInto;

use crate::error::{Error, Result};

/// A generated key: its fingerprint, the armored public certificate and the armored secret key.
pub struct GeneratedKey {
    pub fingerprint: String,
    pub public_armored: Vec<u8>,
    pub secret_armored: zeroize::Zeroizing<Vec<u8>>,
}

pub fn generate_cv25519(user_id: &str) -> Result<GeneratedKey> {
    let (cert, _revocation) = CertBuilder::general_purpose(Some(user_id))
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_profile(openpgp::Profile::RFC4880)
        .and_then(|b| b.generate())
        .map_err(|e| Error::failed(format!("generating a key for {user_id}")).caused_by_boxed(e))?;
    let public_armored = cert
        .armored()
        .to_vec()
        .map_err(|e| Error::failed("armoring the certificate").caused_by_boxed(e))?;
    let secret_armored = zeroize::Zeroizing::new(
        cert.as_tsk()
            .armored()
            .to_vec()
            .map_err(|e| Error::failed("armoring the secret key").caused_by_boxed(e))?,
    );
    Ok(GeneratedKey {
        fingerprint: cert.fingerprint().to_hex(),
        public_armored,
        secret_armored,
    })
}
