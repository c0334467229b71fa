//! The one Vault/OpenBao API layer: addresses, typed endpoints, node sets.

pub mod addr;
pub mod client;
pub mod generate_root;
pub mod types;

pub use addr::Addr;
pub use client::{NodeError, NodeResult, Vault, data_of};
pub use generate_root::{Attempt, Family};
pub use types::*;
