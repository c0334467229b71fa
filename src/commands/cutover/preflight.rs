//! The pre-flight: every check before anything changes.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::chain::Rpcs;
use crate::error::{Error, Result};
use crate::flows::freeze::Signing;
use crate::lb::Lb;
use crate::poll::{Check, Stopped, wait_for};
use crate::vault::Addr;

use super::nodes::{accounts, active_in, next_nonce, plugin_sha, signing};
use super::{Checked, Cutover};

/// How long green's active node may take to pass HAProxy's own health check.
const CHECK_BOUND: Duration = Duration::from_secs(30);
/// How long the pre-flight waits for autopilot to count every green peer a healthy voter (it
/// promotes a joined node some 10-20 s after its unseal).
const GREEN_PEER_WAIT: Duration = Duration::from_secs(30);

/// "2.7.2" (or "2.7.2-beta") as numbers to compare: (2, 7, 2).
pub(super) fn version_of(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text
        .trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|p| p.parse::<u64>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

/// `next` (whose counter `whose` says) is not behind the chain's pending nonce for the account
/// (the highest any RPC has; `agreed`: the RPCs were also checked to agree on the mined nonce,
/// else only the pending nonce is read, one call each, as while signing is paused): else it
/// would sign a nonce the chain already has (exit 4).
pub(super) async fn not_behind(
    rpc: &Rpcs,
    name: &str,
    address: &str,
    next: u64,
    whose: &str,
    agreed: bool,
) -> Result<()> {
    let pending = if agreed {
        rpc.nonces(address).await?.pending
    } else {
        rpc.highest_pending(address).await?
    };
    match crate::chain::standing(next, pending) {
        crate::chain::Standing::Behind(by) => Err(Error::precondition(format!(
            "{whose} next nonce for {name} is {next}, {by} behind the chain's pending nonce \
             {pending}: it would sign a nonce the chain already has; nothing was switched"
        ))
        .hint("raise the counters first (custody cutover rollback --nonce-floor-from-rpc URL raises blue's)")),
        _ => Ok(()),
    }
}

impl Cutover<'_> {
    /// Every check before anything changes.
    pub(super) async fn preflight(&self) -> Result<Checked> {
        let (vault, plan) = (&self.vault, &self.plan);
        let blue_nodes = crate::flows::nodes::all_status(vault, &plan.blue).await;
        let (blue, blue_status) = active_in(&plan.blue, &blue_nodes, "blue")?;
        let green_nodes = crate::flows::nodes::all_status(vault, &plan.green).await;
        for n in &green_nodes {
            if !n.reachable || n.sealed || !n.initialized {
                return Err(Error::precondition(format!(
                    "green node {} is not unsealed ({})",
                    n.addr,
                    n.error.as_deref().unwrap_or("sealed")
                )));
            }
        }
        let (green, green_status) = active_in(&plan.green, &green_nodes, "green")?;
        let versions = self.no_downgrade(&blue_status.version, &green_status.version)?;
        let audit = self.same_audit_devices(&blue, &green).await?;
        crate::flows::raft_peers::wait_stable_voters(
            &self.ctx.ui,
            vault,
            &green,
            GREEN_PEER_WAIT,
            "Green must be whole before it takes traffic: wait for autopilot to promote the peer, \
             then run the cutover again",
        )
        .await?;
        let accounts = self.same_accounts(&blue, &green).await?;
        let names: Vec<String> = accounts.keys().cloned().collect();
        let plugin_sha = self.same_plugin(&blue, &green).await?;
        match signing(vault, &blue, &plan.mount).await? {
            Signing::Signs => {}
            Signing::Frozen => {
                return Err(Error::precondition(
                    "blue is already frozen: a cutover may have stopped half-way; run `custody cutover rollback`",
                ));
            }
            restored @ Signing::Restored(_) => {
                return Err(Error::precondition(format!(
                    "blue signs nothing: {}",
                    restored.describe(&plan.mount)
                )));
            }
        }
        // Green restored from a snapshot custody saved comes up frozen (restored): the switch
        // unfreezes it once it holds blue's counters. A green that signs already was restored
        // without a fence or unfrozen since: the switch freezes it before the carry.
        let green_signing = signing(vault, &green, &plan.mount).await?;
        if green_signing == Signing::Signs {
            self.ctx.ui.warn(
                "green signs already (restored from a snapshot without a restore fence, or \
                 unfrozen since): the switch freezes it before it carries blue's counters",
            );
        }
        if let Some(rpc) = &plan.watch {
            self.same_chain(rpc, &blue).await?;
            for (name, address) in &accounts {
                let after_carry = next_nonce(vault, &blue, &plan.mount, name)
                    .await?
                    .max(next_nonce(vault, &green, &plan.mount, name).await?);
                not_behind(
                    rpc,
                    name,
                    address,
                    after_carry,
                    "after the carry, green's",
                    true,
                )
                .await?;
            }
        }
        if let Lb::Haproxy(h) = &plan.lb {
            self.green_passes_checks(h).await?;
        }
        self.ctx.ui.status(format!(
            "pre-flight passed: green {} matches blue {} ({} accounts, plugin {}, audit devices \
             {}); OpenBao {} → {}",
            green,
            blue,
            names.len(),
            crate::ui::escape(crate::ui::prefix(&plugin_sha, 12)),
            crate::flows::audit_devices::listing(&audit),
            versions.0,
            versions.1
        ));
        Ok(Checked {
            blue,
            green,
            names,
            accounts,
            green_signing,
        })
    }

    /// Blue's and green's OpenBao versions; green older than blue (a downgrade) is refused
    /// unless --allow-downgrade.
    pub(super) fn no_downgrade(&self, b: &str, g: &str) -> Result<(String, String)> {
        if let (Some(bv), Some(gv)) = (version_of(b), version_of(g))
            && gv < bv
            && !self.plan.allow_downgrade
        {
            return Err(Error::precondition(format!(
                "green runs OpenBao {g}, older than blue's {b}: a cutover would downgrade; nothing \
                 changed (give --allow-downgrade if that is what you want)"
            )));
        }
        Ok((b.to_owned(), g.to_owned()))
    }

    /// Green's active node has every audit device blue's has, as blue has it: a green with
    /// fewer (a restored device its configuration does not declare is disabled silently) or
    /// other ones would serve the Authority without blue's audit trail. Blue's devices.
    pub(super) async fn same_audit_devices(
        &self,
        blue: &Addr,
        green: &Addr,
    ) -> Result<Vec<crate::vault::AuditDevice>> {
        use crate::flows::audit_devices::{compare, explain, listing, read};
        let blue_devices = read(&self.vault, blue, "blue").await?;
        let green_devices = read(&self.vault, green, "green").await?;
        let diffs = compare(&blue_devices, "blue", &green_devices, "green");
        if diffs.is_empty() {
            return Ok(blue_devices);
        }
        Err(Error::precondition(format!(
            "green's audit devices are not blue's: blue has {} ({}), green {} ({}). Green would \
             serve the Authority without blue's audit trail; nothing was switched:{}",
            blue_devices.len(),
            listing(&blue_devices),
            green_devices.len(),
            listing(&green_devices),
            explain(&diffs, &blue_devices, "blue", "green")
        )))
    }

    /// Green holds blue's accounts (it was restored from this blue): their addresses, by name.
    pub(super) async fn same_accounts(
        &self,
        blue: &Addr,
        green: &Addr,
    ) -> Result<BTreeMap<String, String>> {
        let mount = &self.plan.mount;
        let blue_accounts = accounts(&self.vault, blue, mount).await?;
        let green_accounts = accounts(&self.vault, green, mount).await?;
        if blue_accounts.is_empty() {
            return Err(Error::precondition(format!(
                "blue has no accounts under {mount}/"
            )));
        }
        if blue_accounts != green_accounts {
            return Err(Error::verification(format!(
                "green's accounts differ from blue's: blue {blue_accounts:?}, green {green_accounts:?}; was green restored from this blue?"
            )));
        }
        Ok(blue_accounts)
    }

    /// Both run the same plugin binary: its sha256.
    pub(super) async fn same_plugin(&self, blue: &Addr, green: &Addr) -> Result<String> {
        let mount = &self.plan.mount;
        let (blue_sha, green_sha) = (
            plugin_sha(&self.vault, blue, mount).await?,
            plugin_sha(&self.vault, green, mount).await?,
        );
        if blue_sha != green_sha {
            return Err(Error::verification(format!(
                "the plugin differs: blue runs sha256 {blue_sha}, green {green_sha}"
            )));
        }
        Ok(blue_sha)
    }

    /// Every named server exists, HAProxy's own check passes on green's active node, and HAProxy
    /// has classified every green server (up with a passing check, or down): a standby still in
    /// its first checks counts as up and would get requests once ready, which it answers 429.
    /// In maintenance HAProxy does not check a server: green's are set to drain (checked, no
    /// traffic) for the wait, and back to maintenance if it times out. HAProxy's runtime API
    /// shows each server's rise and fall but not its check interval, so the bound is fixed.
    pub(super) async fn green_passes_checks(&self, h: &crate::lb::haproxy::Haproxy) -> Result<()> {
        let plan = &self.plan;
        let servers = self.servers_exist(h)?;
        for name in &plan.green_servers {
            if servers[name].status.starts_with("MAINT") {
                h.set_state(&plan.backend, name, "drain")?;
            }
        }
        let passed = wait_for(CHECK_BOUND, Duration::from_millis(100), || async {
            let now = h.servers(&plan.backend)?;
            let green: Vec<_> = plan
                .green_servers
                .iter()
                .filter_map(|n| now.get(n))
                .collect();
            let passing = green.iter().any(|s| s.check_status.starts_with("L7OK"));
            let unsettled: Vec<String> = green
                .iter()
                .filter(|s| !s.classified())
                .map(|s| format!("{} {} ({})", s.name, s.status, s.check_status))
                .collect();
            Ok::<_, Error>(if passing && unsettled.is_empty() {
                Check::Ready(())
            } else if !passing {
                Check::NotYet("no green server passed HAProxy's health check".to_owned())
            } else {
                Check::NotYet(format!(
                    "HAProxy has not yet classified every green server: {}",
                    unsettled.join(", ")
                ))
            })
        })
        .await;
        match passed {
            Ok(()) => Ok(()),
            Err(Stopped::Failed(e)) => Err(e),
            Err(Stopped::TimedOut(why)) => {
                for name in &plan.green_servers {
                    let _ = h.set_state(&plan.backend, name, "maint");
                }
                Err(Error::precondition(format!(
                    "{why} within {CHECK_BOUND:?}; green is back in maintenance, nothing else changed"
                )))
            }
        }
    }

    /// Every named server is in the backend, as `show stat` lists it: the servers, by name.
    pub(super) fn servers_exist(
        &self,
        h: &crate::lb::haproxy::Haproxy,
    ) -> Result<BTreeMap<String, crate::lb::haproxy::ServerStat>> {
        let plan = &self.plan;
        let servers = h.servers(&plan.backend)?;
        for name in plan.blue_servers.iter().chain(&plan.green_servers) {
            if !servers.contains_key(name) {
                return Err(Error::precondition(format!(
                    "HAProxy backend {} has no server {name} (it has {})",
                    plan.backend,
                    servers.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        Ok(servers)
    }
}

#[cfg(test)]
mod tests {
    use super::version_of;

    #[test]
    fn versions_compare_as_numbers() {
        assert_eq!(version_of("2.7.2"), Some((2, 7, 2)));
        assert_eq!(version_of("v2.10.0-beta1"), Some((2, 10, 0)));
        assert!(version_of("2.6.2") < version_of("2.7.2"));
        assert!(version_of("2.9.9") < version_of("2.10.0"));
        assert_eq!(version_of("dev"), None);
    }
}
