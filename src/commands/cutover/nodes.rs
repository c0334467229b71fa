//! What the cutover reads of one cluster: its active node, accounts, plugin, flag and counters.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::flows::freeze::Signing;
use crate::flows::node_error;
use crate::flows::nodes::NodeStatus;
use crate::vault::{Addr, HaRole, Vault};

pub(super) async fn active_of(vault: &Vault, addrs: &[Addr], which: &str) -> Result<Addr> {
    let nodes = crate::flows::nodes::all_status(vault, addrs).await;
    active_in(addrs, &nodes, which).map(|(addr, _)| addr)
}

/// The one active node among `nodes` (the status of `addrs`, in order), with its status.
pub(super) fn active_in<'a>(
    addrs: &[Addr],
    nodes: &'a [NodeStatus],
    which: &str,
) -> Result<(Addr, &'a NodeStatus)> {
    let active: Vec<usize> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.ha_role == Some(HaRole::Active))
        .map(|(i, _)| i)
        .collect();
    match active.as_slice() {
        [i] => Ok((addrs[*i].clone(), &nodes[*i])),
        [] => Err(Error::precondition(format!("{which} has no active node"))),
        _ => Err(Error::precondition(format!(
            "{which} has {} active nodes",
            active.len()
        ))),
    }
}

pub(super) async fn accounts(
    vault: &Vault,
    addr: &Addr,
    mount: &str,
) -> Result<BTreeMap<String, String>> {
    vault
        .signer(mount)
        .addresses(addr)
        .await
        .map_err(|e| node_error(&format!("reading the accounts of {mount}/ on {addr}"), e))
}

/// Whether `mount` on `addr` signs, and if not, which freeze holds it.
pub(super) async fn signing(vault: &Vault, addr: &Addr, mount: &str) -> Result<Signing> {
    let c = vault
        .signer(mount)
        .config(addr)
        .await
        .map_err(|e| node_error(&format!("reading {mount}/config on {addr}"), e))?;
    Ok(Signing::of_config(&c))
}

pub(super) async fn frozen(vault: &Vault, addr: &Addr, mount: &str) -> Result<bool> {
    Ok(signing(vault, addr, mount).await? != Signing::Signs)
}

pub(super) async fn plugin_sha(vault: &Vault, addr: &Addr, mount: &str) -> Result<String> {
    vault
        .running_sha256(addr, mount)
        .await
        .map_err(|e| node_error(&format!("reading the mount {mount} on {addr}"), e))
}

pub(super) async fn set_frozen(vault: &Vault, addr: &Addr, mount: &str, value: bool) -> Result<()> {
    vault
        .signer(mount)
        .set_frozen(addr, value)
        .await
        .map_err(|e| node_error(&format!("setting frozen={value} on {addr}"), e))
}

pub(super) async fn next_nonce(vault: &Vault, addr: &Addr, mount: &str, name: &str) -> Result<u64> {
    vault
        .signer(mount)
        .next_nonce(addr, name)
        .await
        .map_err(|e| node_error(&format!("reading {name}'s nonce on {addr}"), e))
}
