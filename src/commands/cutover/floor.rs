//! The rollback's floor for each account: the highest of green's counter, the counter the
//! transcript's last cutover between these clusters carried to green, and the chain's pending
//! nonce (`--nonce-floor-from-rpc`, every RPC agreeing). Each figure is read before anything
//! changes, and a floor more than `--max-nonce-jump` above blue's counter needs a confirmation
//! (`--yes`): a counter only rises, so a lying RPC (or record) could otherwise push the
//! Authority to nonces the chain never reaches.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::chain::ChainNonces;
use crate::error::Result;
use crate::vault::Addr;

use super::Cutover;
use super::nodes::next_nonce;

/// Every figure a floor is made of, except green's counters after its freeze.
pub(super) struct Floors {
    /// Blue's next nonce, by account, before the rollback.
    pub blue: BTreeMap<String, u64>,
    /// The transcript's last cutover between these clusters: its line and what it carried.
    pub carry: Option<(usize, BTreeMap<String, u64>)>,
    /// The chain's nonces (with --nonce-floor-from-rpc).
    pub chain: Option<BTreeMap<String, ChainNonces>>,
}

/// One account's floor and where it comes from.
pub(super) struct Floor {
    pub value: u64,
    pub green: Option<u64>,
    pub carried: Option<u64>,
    pub chain: Option<u64>,
    /// The sources that give `value` (none: no source is above 0).
    pub from: Vec<&'static str>,
}

impl Floors {
    /// `name`'s floor, with green's counter when it was read.
    pub fn floor(&self, name: &str, green: Option<u64>) -> Floor {
        let carried = self.carry.as_ref().and_then(|(_, c)| c.get(name).copied());
        let chain = self
            .chain
            .as_ref()
            .and_then(|c| c.get(name).map(|n| n.pending));
        let value = green.max(carried).max(chain).unwrap_or(0);
        let from = [("green", green), ("transcript", carried), ("chain", chain)]
            .into_iter()
            .filter(|(_, v)| *v == Some(value) && value > 0)
            .map(|(s, _)| s)
            .collect();
        Floor {
            value,
            green,
            carried,
            chain,
            from,
        }
    }

    /// What the rollback line records of `name`'s floor.
    pub fn json(&self, name: &str, floor: &Floor) -> Value {
        let chain = self.chain.as_ref().and_then(|c| c.get(name));
        json!({
            "from": floor.green,
            "carried": floor.carried,
            "chain": floor.chain,
            "chain_mined": chain.map(|n| n.mined),
            "chain_block": chain.map(|n| n.block),
            "chain_pending_each": chain.map(|n| n.pending_each.clone()),
            "floor": floor.value,
            "floor_from": floor.from,
        })
    }
}

impl Cutover<'_> {
    /// Blue's counters, the transcript's carry and the chain's nonces, read before anything
    /// changes.
    pub(super) async fn floors(
        &self,
        blue: &Addr,
        accounts: &BTreeMap<String, String>,
    ) -> Result<Floors> {
        let mut blue_next = BTreeMap::new();
        for name in accounts.keys() {
            blue_next.insert(
                name.clone(),
                next_nonce(&self.vault, blue, &self.plan.mount, name).await?,
            );
        }
        let lines = self.ctx.recorded_lines()?;
        let names = |addrs: &[Addr]| addrs.iter().map(ToString::to_string).collect::<Vec<_>>();
        let carry = crate::transcript::authority::last_carry(
            &lines,
            &names(&self.plan.blue),
            &names(&self.plan.green),
        );
        if carry.is_none() {
            self.ctx.ui.warn(format!(
                "{} records no cutover from these blue nodes to these green ones: the floor \
                 counts no carried counters",
                self.ctx.transcript.path().display()
            ));
        }
        let chain = match &self.plan.rpc {
            Some(rpc) => {
                let mut out = BTreeMap::new();
                for (name, address) in accounts {
                    out.insert(name.clone(), rpc.nonces(address).await?);
                }
                Some(out)
            }
            None => None,
        };
        Ok(Floors {
            blue: blue_next,
            carry,
            chain,
        })
    }

    /// Every floor within --max-nonce-jump of blue's counter, or confirmed (`--yes`, or on the
    /// terminal): whether a jump past the bound was confirmed. Else exit 4, nothing changed.
    /// `green`: green's counters read without freezing it (they only rise until the freeze).
    pub(super) fn jumps_confirmed(
        &self,
        floors: &Floors,
        green: Option<&BTreeMap<String, u64>>,
    ) -> Result<bool> {
        let bound = self.plan.max_nonce_jump;
        let show = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
        let over: Vec<String> = floors
            .blue
            .iter()
            .filter_map(|(name, &blue)| {
                let f = floors.floor(name, green.and_then(|g| g.get(name).copied()));
                (f.value.saturating_sub(blue) > bound).then(|| {
                    format!(
                        "{name}: blue's counter {blue} → {} ({} above it; green {}, carried {}, \
                         chain {})",
                        f.value,
                        f.value - blue,
                        show(f.green),
                        show(f.carried),
                        show(f.chain)
                    )
                })
            })
            .collect();
        crate::flows::nonce_jump::confirm(self.ctx, bound, "blue's", &over)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_the_highest_source_and_names_it() {
        let nonces = |pending| ChainNonces {
            block: 9,
            mined: 3,
            pending,
            pending_each: vec![pending],
        };
        let floors = Floors {
            blue: BTreeMap::from([("a".to_owned(), 10), ("b".to_owned(), 0)]),
            carry: Some((4, BTreeMap::from([("a".to_owned(), 40)]))),
            chain: Some(BTreeMap::from([
                ("a".to_owned(), nonces(12)),
                ("b".to_owned(), nonces(0)),
            ])),
        };
        let a = floors.floor("a", Some(30));
        assert_eq!(
            (a.value, a.from.as_slice()),
            (40, ["transcript"].as_slice())
        );
        let a = floors.floor("a", Some(40));
        assert_eq!(a.from, ["green", "transcript"]);
        let b = floors.floor("b", None);
        assert_eq!((b.value, b.carried, b.from.len()), (0, None, 0));
        let row = floors.json("a", &floors.floor("a", None));
        assert_eq!(row["floor"], 40);
        assert_eq!(row["chain"], 12);
        assert_eq!(row["chain_block"], 9);
        assert_eq!(row["from"], Value::Null);
    }
}
