//! The rollback: blue back in service, never behind a nonce green or the chain has used.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::chain::Rpcs;
use crate::error::{Error, Result};
use crate::flows::node_error;
use crate::lb::Lb;
use crate::transcript::Step;
use crate::vault::Addr;

use super::Cutover;
use super::nodes::{accounts, active_of, next_nonce, set_frozen};

impl Cutover<'_> {
    /// `custody cutover rollback`.
    pub(super) async fn rollback_command(&self) -> Result<()> {
        let blue = active_of(&self.vault, &self.plan.blue, "blue").await?;
        let green = active_of(&self.vault, &self.plan.green, "green")
            .await
            .map_err(|e| e.to_string());
        let facts = self
            .rollback(&blue, green.as_ref().map_err(Clone::clone))
            .await?;
        let head = self.ctx.transcript.append(Step::new(
            "blue-green",
            "rollback",
            "operator",
            facts.clone(),
        ))?;
        self.ctx.ui.result(
            &format!("Rolled back: blue serves and signs, green is drained and frozen.\nTranscript head: {}", head.head_hash),
            json!({ "rollback": facts, "transcript_head": head.head_hash }),
        );
        Ok(())
    }

    /// Blue back in service, never behind a nonce green, the carry or the chain has used:
    /// first every floor that can be read without a change (blue's counters, the transcript's
    /// carry, the chain's nonces with --nonce-floor-from-rpc, green's counters unfrozen) and a
    /// floor past --max-nonce-jump confirmed; then green frozen and its counters read again, the
    /// balancer switched back, blue's counters raised to the highest, then blue unfrozen. When
    /// no source of green's signatures can be read, nothing changes and blue stays frozen
    /// (exit 4).
    pub(super) async fn rollback(
        &self,
        blue: &Addr,
        green: Result<&Addr, String>,
    ) -> Result<Value> {
        let (vault, plan) = (&self.vault, &self.plan);
        if let Lb::Haproxy(h) = &plan.lb {
            self.servers_exist(h)?;
        }
        let accounts = accounts(vault, blue, &plan.mount).await?;
        if let Some(rpc) = &plan.rpc {
            self.same_chain(rpc, blue).await?;
        }
        let floors = self.floors(blue, &accounts).await?;
        let preview = match &green {
            Ok(g) => self.read_counters(g, &accounts).await.ok(),
            Err(_) => None,
        };
        let jump_confirmed = self.jumps_confirmed(&floors, preview.as_ref())?;
        let from_green = match &green {
            Ok(g) => self.freeze_and_read(g, &accounts).await,
            Err(why) => Err(Error::precondition(why.clone())),
        };
        if let (Err(e), None) = (&from_green, &plan.rpc) {
            return Err(Error::precondition(format!(
                "green's nonce counters cannot be read, so blue cannot know which nonces green \
                 has signed: {e}. Blue stays frozen and nothing was changed"
            ))
            .hint("unseal green (or bring it back) and run `custody cutover rollback` again")
            .hint(
                "or give --nonce-floor-from-rpc URL: blue's counters are then raised to the \
                 chain's pending nonce of each account before blue signs again",
            ));
        }
        match &plan.lb {
            Lb::Haproxy(_) => {
                self.lb(&plan.blue_servers, "ready", "rollback")?;
                self.lb(&plan.green_servers, "drain", "rollback")?;
                self.lb(&plan.green_servers, "maint", "rollback")?;
            }
            Lb::Exec(e) => e.run("rollback")?,
        }
        let mut nonces = serde_json::Map::new();
        for name in accounts.keys() {
            let green_next = from_green.as_ref().ok().and_then(|n| n.get(name).copied());
            let floor = floors.floor(name, green_next);
            let (before, after) = self.raise(blue, name, floor.value).await?;
            let mut row = floors.json(name, &floor);
            row["to_before"] = json!(before);
            row["to_after"] = json!(after);
            nonces.insert(name.clone(), row);
        }
        set_frozen(vault, blue, &plan.mount, false).await?;
        let mut counters_from = Vec::new();
        if from_green.is_ok() {
            counters_from.push("green");
        }
        if floors.carry.is_some() {
            counters_from.push("transcript");
        }
        if floors.chain.is_some() {
            counters_from.push("chain");
        }
        Ok(json!({
            "blue": blue.to_string(),
            "green": green.ok().map(|g| g.to_string()),
            "green_error": from_green.as_ref().err().map(ToString::to_string),
            "nonces_back": nonces,
            "counters_from": counters_from,
            "carry_line": floors.carry.as_ref().map(|(line, _)| line),
            "rpc": plan.rpc.as_ref().map(Rpcs::label),
            "rpcs": plan.rpc.as_ref().map(Rpcs::shown),
            "max_nonce_jump": plan.max_nonce_jump,
            "jump_confirmed": jump_confirmed,
        }))
    }

    /// Each account's next nonce on green, read without changing anything.
    pub(super) async fn read_counters(
        &self,
        green: &Addr,
        accounts: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for name in accounts.keys() {
            out.insert(
                name.clone(),
                next_nonce(&self.vault, green, &self.plan.mount, name).await?,
            );
        }
        Ok(out)
    }

    /// Freezes green, then reads each account's next nonce there.
    pub(super) async fn freeze_and_read(
        &self,
        green: &Addr,
        accounts: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, u64>> {
        set_frozen(&self.vault, green, &self.plan.mount, true).await?;
        self.read_counters(green, accounts).await
    }

    /// Every RPC serves the chain the mount signs for (checked before anything changes).
    pub(super) async fn same_chain(&self, rpc: &Rpcs, blue: &Addr) -> Result<()> {
        let mount = &self.plan.mount;
        let config = self
            .vault
            .signer(mount)
            .config(blue)
            .await
            .map_err(|e| node_error(&format!("reading {mount}/config on {blue}"), e))?;
        rpc.expect_chain(mount, config["chain_id"].as_u64())
            .await
            .map_err(|e| e.hint("nothing was changed"))?;
        Ok(())
    }

    /// Raises blue's counter for `name` to at least `floor`: (before, after).
    pub(super) async fn raise(&self, blue: &Addr, name: &str, floor: u64) -> Result<(u64, u64)> {
        let mount = &self.plan.mount;
        let before = next_nonce(&self.vault, blue, mount, name).await?;
        if before < floor {
            self.vault
                .signer(mount)
                .raise_next_nonce(blue, name, floor)
                .await
                .map_err(|e| node_error(&format!("raising {name}'s nonce on {blue}"), e))?;
        }
        Ok((before, before.max(floor)))
    }
}
