//! The one Vault/OpenBao API layer: addresses, typed endpoints, node sets.

pub mod addr;
pub mod auth;
pub mod client;
pub mod generate_root;
pub mod plugins;
pub mod signer;
pub mod types;

pub use addr::Addr;
pub use auth::{OrphanToken, WrapInfo};
pub use client::{NodeError, NodeResult, Vault, data_of};
pub use generate_root::{Attempt, Family};
pub use signer::{SignerMount, Signing};
pub use types::*;
