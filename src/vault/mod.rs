//! The one Vault/OpenBao API layer: addresses, typed endpoints, node sets.

pub mod addr;
pub mod audit;
pub mod auth;
pub mod client;
pub mod generate_root;
pub mod plugins;
pub mod rotate;
pub mod signer;
pub mod types;

pub use addr::Addr;
pub use audit::AuditDevice;
pub use auth::{OrphanToken, WrapInfo};
pub use client::{NodeError, NodeResult, Sent, SnapshotStream, Vault, data_of};
pub use generate_root::{Attempt, Family};
pub use rotate::{Rotation, RotationFamily, RotationRequest, Verification};
pub use signer::{SignerMount, Signing};
pub use types::*;

/// A mount or account name custody puts in a path: 1 to 64 of letters, digits, `-` and `_`.
pub fn valid_path_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
