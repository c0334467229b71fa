//! Secret values: zeroized on drop, `Debug` prints a placeholder, no `Display`.

use zeroize::{Zeroize, Zeroizing};

/// A secret text (an unseal share as a holder types it, a passphrase, a token).
#[derive(Clone, Default)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(value: String) -> Self {
        SecretString(Zeroizing::new(value))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

/// Secret bytes (a decoded share, a decrypted plaintext).
#[derive(Clone, Default)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(value: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(value))
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

impl AsRef<[u8]> for SecretBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for SecretBytesOwner {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Owns a request body holding a secret, so that `bytes::Bytes::from_owner` zeroizes it
/// when the HTTP stack lets go of it.
pub struct SecretBytesOwner(pub Vec<u8>);

impl AsRef<[u8]> for SecretBytesOwner {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
