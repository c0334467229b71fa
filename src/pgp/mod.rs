//! OpenPGP through sequoia (pure-Rust backend): holders' certificates, recipients of the
//! server's encrypted output, share decryption, armor.

pub mod cert;
pub mod decrypt;
pub mod encrypt;
pub mod keygen;
pub mod message;
pub mod sign;

pub use cert::{HolderCert, load_holder_cert};
pub use decrypt::{DecryptError, SecretKeyFile};
pub use message::{
    MESSAGE_FORMS, MessageForm, addressed_only_to, armor_message, read_message, recipients,
};
