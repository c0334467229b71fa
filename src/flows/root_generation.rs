//! Which root generation a server offers, as custody's error when none can be used.

use super::context::node_error;
use crate::error::{Error, Result};
use crate::vault::{Addr, Family, Vault};

/// Which root generation the server offers, or why none can be used.
pub async fn detect_family(vault: &Vault, addr: &Addr) -> Result<Family> {
    vault
        .root_generation_family(addr)
        .await
        .map_err(|e| match e {
            e if e.message_contains("unsupported operation") => Error::precondition(
                "this server allows only the authenticated root generation (sys/generate-root-token): \
                 give the ceremony token (VAULT_TOKEN or --token-file)",
            ),
            e => node_error("asking for the root generation", e),
        })
}
