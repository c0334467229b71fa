//! The switch: blue frozen, green given blue's counters, the balancer moved, blue drained; and
//! the outcome recorded, a failure rolled back.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::flows::freeze::Signing;
use crate::flows::node_error;
use crate::lb::Lb;
use crate::poll::{Check, Stopped, wait_for};
use crate::transcript::Step;
use crate::vault::{Addr, Vault};

use super::nodes::{frozen, next_nonce, set_frozen};
use super::preflight::not_behind;
use super::{Checked, Cutover};

/// Sets each of `to`'s counters to at least `from`'s, writing every one (a restored green counts
/// the counters set since its restore, and unfreezes only once all are); then reads `to`'s back:
/// each must be at least `from`'s (exit 3 otherwise). name → (from, to before, to after).
pub(super) async fn carry_nonces(
    vault: &Vault,
    from: &Addr,
    to: &Addr,
    mount: &str,
    names: &[String],
) -> Result<Value> {
    let mut out = serde_json::Map::new();
    for name in names {
        let source = next_nonce(vault, from, mount, name).await?;
        let target = next_nonce(vault, to, mount, name).await?;
        vault
            .signer(mount)
            .raise_next_nonce(to, name, source.max(target))
            .await
            .map_err(|e| node_error(&format!("raising {name}'s nonce on {to}"), e))?;
        let after = next_nonce(vault, to, mount, name).await?;
        if after < source {
            return Err(Error::verification(format!(
                "after the carry, {name}'s next nonce on {to} is {after}, below blue's {source}"
            )));
        }
        out.insert(
            name.clone(),
            json!({ "from": source, "to_before": target, "to_after": after }),
        );
    }
    Ok(Value::Object(out))
}

impl Cutover<'_> {
    pub(super) async fn freeze_blue(&self, blue: &Addr) -> Result<()> {
        set_frozen(&self.vault, blue, &self.plan.mount, true).await
    }

    /// The freeze request failed, but its answer may be what was lost (a timeout): the flag
    /// says. Not frozen: nothing changed, the error is returned (`Err`). Frozen, or unknown:
    /// the error goes on to the rollback (`Ok`), which unfreezes blue once it is safe.
    pub(super) async fn freeze_failed(&self, blue: &Addr, e: Error) -> Result<Error> {
        match frozen(&self.vault, blue, &self.plan.mount).await {
            Ok(false) => Err(e.hint("blue is not frozen: nothing was changed")),
            Ok(true) => Ok(e.doing("freezing blue (blue is frozen nonetheless)")),
            Err(read) => Ok(Error::failed(format!(
                "freezing blue failed ({e}) and reading its flag failed too, so blue may be frozen"
            ))
            .caused_by(read)),
        }
    }

    /// From the freeze on (everything here is inside the rollback guard): the freeze recorded,
    /// green takes blue's counters, the balancer switches, blue drains, and
    /// requests through the balancer reach green.
    pub(super) async fn switch(&self, c: &Checked, t_freeze: Instant) -> Result<Value> {
        let (vault, plan) = (&self.vault, &self.plan);
        self.ctx.transcript.append(Step::new(
            "blue-green",
            "freeze-blue",
            "operator",
            json!({ "blue": c.blue.to_string() }),
        ))?;
        // Green signs nothing while it takes blue's counters.
        if c.green_signing == Signing::Signs {
            set_frozen(vault, &c.green, &plan.mount, true).await?;
        }
        let nonces = carry_nonces(vault, &c.blue, &c.green, &plan.mount, &c.names).await?;
        if let Some(rpc) = &plan.watch {
            for (name, address) in &c.accounts {
                let green_next = next_nonce(vault, &c.green, &plan.mount, name).await?;
                not_behind(rpc, name, address, green_next, "green's", false).await?;
            }
        }
        // Only now, with blue's counters checked on green, may green sign.
        set_frozen(vault, &c.green, &plan.mount, false)
            .await
            .map_err(|e| e.doing("unfreezing green after the carry"))?;
        self.lb(&plan.green_servers, "ready", "ready-green")?;
        self.lb(&plan.blue_servers, "drain", "drain-blue")?;
        let pause = t_freeze.elapsed();
        self.ctx.ui.status(format!(
            "switched: green ready, blue draining (signing paused {:.0} ms)",
            pause.as_secs_f64() * 1000.0
        ));
        let t_drain = Instant::now();
        if let Lb::Haproxy(h) = &plan.lb {
            self.drain_blue(h).await?;
        }
        let drained = t_drain.elapsed();
        self.lb(&plan.blue_servers, "maint", "maint-blue")?;
        let leader = self.leader_is_green().await?;
        Ok(json!({
            "blue": c.blue.to_string(),
            "green": c.green.to_string(),
            "nonces": nonces,
            "green_before": c.green_signing.word(),
            "signing_pause_ms": pause.as_secs_f64() * 1000.0,
            "drain_seconds": drained.as_secs_f64(),
            "leader_via_lb": leader,
            "rpc": plan.watch.as_ref().map(crate::chain::Rpcs::label),
        }))
    }

    /// Waits (up to --drain-timeout) until blue's servers hold no session.
    pub(super) async fn drain_blue(&self, h: &crate::lb::haproxy::Haproxy) -> Result<()> {
        let plan = &self.plan;
        let bar = self.ctx.ui.progress(0, "draining blue");
        let drained = wait_for(plan.drain, Duration::from_millis(100), || async {
            let servers = h.servers(&plan.backend)?;
            let left: u64 = plan
                .blue_servers
                .iter()
                .filter_map(|n| servers.get(n))
                .map(|s| s.sessions)
                .sum();
            bar.set(left, format!("{left} sessions on blue"));
            Ok::<_, Error>(if left == 0 {
                Check::Ready(())
            } else {
                Check::NotYet(left.to_string())
            })
        })
        .await;
        bar.finish();
        match drained {
            Ok(()) => Ok(()),
            Err(Stopped::Failed(e)) => Err(e),
            Err(Stopped::TimedOut(left)) => Err(Error::failed(format!(
                "blue still had {left} sessions after --drain-timeout {:?}",
                plan.drain
            ))),
        }
    }

    /// Requests through the balancer reach green's active node: the leader's address. (A
    /// restored green carries blue's cluster id, so the address is what tells them apart.)
    pub(super) async fn leader_is_green(&self) -> Result<String> {
        let green_addrs: Vec<String> = self.plan.green.iter().map(|a| a.to_string()).collect();
        let leader = self
            .vault
            .leader(&self.plan.lb_url)
            .await
            .map_err(|e| node_error("asking the balancer for the leader", e))?;
        if !green_addrs.contains(&leader.leader_address.trim_end_matches('/').to_owned()) {
            return Err(Error::verification(format!(
                "through the balancer the leader is {}, not a green node ({})",
                leader.leader_address,
                green_addrs.join(", ")
            )));
        }
        Ok(leader.leader_address)
    }

    /// Records the outcome; a failed switch rolls back, and says whether the rollback held.
    pub(super) async fn finish(&self, c: &Checked, outcome: Result<Value>) -> Result<()> {
        let e = match outcome {
            Ok(facts) => {
                let head = self.ctx.transcript.append(Step::new(
                    "blue-green",
                    "cutover",
                    "operator",
                    facts.clone(),
                ))?;
                self.ctx.ui.result(
                    &format!(
                        "Cutover done: the balancer sends everything to green (leader {}).\n\
                         Signing paused {:.0} ms (freeze → switch); blue drained in {:.1} s.\nTranscript head: {}",
                        facts["leader_via_lb"].as_str().unwrap_or(""),
                        facts["signing_pause_ms"].as_f64().unwrap_or(0.0),
                        facts["drain_seconds"].as_f64().unwrap_or(0.0),
                        head.head_hash
                    ),
                    json!({ "cutover": facts, "transcript_head": head.head_hash }),
                );
                return Ok(());
            }
            Err(e) => e,
        };
        self.ctx.ui.warn(format!(
            "cutover failed after the freeze: {e}; rolling back"
        ));
        let rb = self.rollback(&c.blue, Ok(&c.green)).await;
        let facts = json!({ "error": e.to_string(), "rollback": rb.as_ref().ok(), "rollback_error": rb.as_ref().err().map(ToString::to_string) });
        self.ctx.transcript.append(Step::new(
            "blue-green",
            "cutover-rolled-back",
            "operator",
            facts,
        ))?;
        match rb {
            Ok(_) => Err(e.doing("the cutover was rolled back (blue serves and signs again)")),
            Err(r) => Err(Error::failed(format!(
                "the cutover failed: {e}; and the rollback failed too"
            ))
            .caused_by(r)
            .hint(
                "blue stays frozen unless the rollback got that far: once green and the balancer \
                 answer, run `custody cutover rollback` with the same arguments (or with \
                 --nonce-floor-from-rpc URL when green's counters cannot be read)",
            )),
        }
    }
}
