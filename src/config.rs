//! The one place that reads the environment: defaults for the global options.
//! Flags win over the environment; `VAULT_*` and `BAO_*` are both read and must agree.

use std::path::PathBuf;

use crate::error::{Error, Result};

fn env_pair(vault: &str, bao: &str) -> Result<Option<String>> {
    let v = std::env::var(vault).ok().filter(|s| !s.is_empty());
    let b = std::env::var(bao).ok().filter(|s| !s.is_empty());
    match (v, b) {
        (Some(v), Some(b)) if v != b => Err(Error::usage(format!(
            "{vault} and {bao} are both set and differ; unset one of them"
        ))),
        (Some(v), _) => Ok(Some(v)),
        (None, b) => Ok(b),
    }
}

/// `--addr` default: `VAULT_ADDR` or `BAO_ADDR`, comma-separated for several nodes.
pub fn default_addrs() -> Result<Vec<String>> {
    Ok(env_pair("VAULT_ADDR", "BAO_ADDR")?
        .map(|s| {
            s.split(',')
                .map(|a| a.trim().to_owned())
                .filter(|a| !a.is_empty())
                .collect()
        })
        .unwrap_or_default())
}

/// `--ca-cert` default: `VAULT_CACERT` or `BAO_CACERT`.
pub fn default_ca_cert() -> Result<Option<PathBuf>> {
    Ok(env_pair("VAULT_CACERT", "BAO_CACERT")?.map(PathBuf::from))
}

/// The token from `VAULT_TOKEN` or `BAO_TOKEN` (never from argv).
pub fn env_token() -> Result<Option<crate::secret::SecretString>> {
    Ok(env_pair("VAULT_TOKEN", "BAO_TOKEN")?.map(crate::secret::SecretString::new))
}

/// Where `rehearse` finds the OpenBao server binary when `--bao-bin` is not given.
pub fn bao_bin_env() -> Option<PathBuf> {
    std::env::var_os("CUSTODY_BAO_BIN").map(PathBuf::from)
}

/// `CUSTODY_ANVIL_BIN`: the anvil the rehearsal's throwaway chain runs.
pub fn anvil_bin_env() -> Option<PathBuf> {
    std::env::var_os("CUSTODY_ANVIL_BIN")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

/// `CUSTODY_BLUE_BAO_BIN`: the OpenBao the rehearsal's blue runs (its upgrade's old version).
pub fn blue_bao_bin_env() -> Option<PathBuf> {
    std::env::var_os("CUSTODY_BLUE_BAO_BIN")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

/// `CUSTODY_RPC_URL`: the Ethereum JSON-RPC URLs (commas or white space between them) that
/// `--rpc` takes when neither `--rpc` nor `--rpc-file` is given. It may hold an API key: kept
/// in a zeroizing string, and never shown (`chain::RpcUrl` shows a URL redacted).
pub fn rpc_url_env() -> Option<crate::secret::SecretString> {
    std::env::var("CUSTODY_RPC_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(crate::secret::SecretString::new)
}
