//! `custody cutover [rollback]`: blue-green phase 2. Every check is made before anything
//! changes; from the freeze on, any failure rolls back. Signing pauses only between the freeze
//! of blue and the switch of the balancer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::chain::Rpc;
use crate::cli::CutoverArgs;
use crate::error::{Error, Result};
use crate::flows::nodes::NodeStatus;
use crate::flows::{Ctx, node_error, parse_addrs};
use crate::lb::Lb;
use crate::poll::{Check, Stopped, wait_for};
use crate::transcript::Step;
use crate::vault::{Addr, HaRole, Vault};

/// How long green's active node may take to pass HAProxy's own health check.
const CHECK_BOUND: Duration = Duration::from_secs(30);
/// How long the pre-flight waits for autopilot to count every green peer a healthy voter (it
/// promotes a joined node some 10-20 s after its unseal).
const GREEN_PEER_WAIT: Duration = Duration::from_secs(30);

pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || {
        Error::usage(format!(
            "--drain-timeout {s:?}: give a duration such as 30s, 500ms or 2m"
        ))
    };
    let (num, unit) = s.trim().split_at(
        s.trim()
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(s.trim().len()),
    );
    let n: u64 = num.parse().map_err(|_| bad())?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(bad()),
    }
}

struct Plan {
    blue: Vec<Addr>,
    green: Vec<Addr>,
    lb: Lb,
    lb_url: Addr,
    drain: Duration,
    mount: String,
    backend: String,
    blue_servers: Vec<String>,
    green_servers: Vec<String>,
    /// Where a rollback reads the chain's pending nonces (--nonce-floor-from-rpc).
    rpc: Option<Rpc>,
    /// Where the cutover checks green's counters against the chain (--rpc).
    watch: Option<Rpc>,
    allow_downgrade: bool,
}

/// The characters HAProxy allows in a proxy or server name.
fn valid_lb_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

fn plan(args: &CutoverArgs) -> Result<Plan> {
    let blue = parse_addrs(&args.from)?;
    let green = parse_addrs(&args.to)?;
    if blue.iter().any(|b| green.contains(b)) {
        return Err(Error::usage("a node is both in --from and --to"));
    }
    let lb = Lb::parse(&args.lb, args.lb_shell)?;
    for (flag, name) in std::iter::once(("--lb-backend", &args.lb_backend))
        .chain(args.blue_servers.iter().map(|n| ("--blue-server", n)))
        .chain(args.green_servers.iter().map(|n| ("--green-server", n)))
    {
        if !valid_lb_name(name) {
            return Err(Error::usage(format!(
                "{flag} {:?}: HAProxy names hold only letters, digits, '-', '_', '.' and ':'",
                crate::ui::escape(name)
            )));
        }
    }
    if matches!(lb, Lb::Haproxy(_))
        && (args.blue_servers.is_empty() || args.green_servers.is_empty())
    {
        return Err(Error::usage(
            "--lb haproxy: name every --blue-server and --green-server",
        ));
    }
    Ok(Plan {
        blue,
        green,
        lb,
        lb_url: Addr::parse(&args.lb_url)?,
        drain: parse_duration(&args.drain_timeout)?,
        mount: args.mount.clone(),
        backend: args.lb_backend.clone(),
        blue_servers: args.blue_servers.clone(),
        green_servers: args.green_servers.clone(),
        rpc: args
            .nonce_floor_from_rpc
            .as_deref()
            .map(Rpc::new)
            .transpose()?,
        watch: args.rpc.as_deref().map(Rpc::new).transpose()?,
        allow_downgrade: args.allow_downgrade,
    })
}

async fn active_of(vault: &Vault, addrs: &[Addr], which: &str) -> Result<Addr> {
    let nodes = crate::flows::nodes::all_status(vault, addrs).await;
    active_in(addrs, &nodes, which).map(|(addr, _)| addr)
}

/// The one active node among `nodes` (the status of `addrs`, in order), with its status.
fn active_in<'a>(
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

async fn accounts(vault: &Vault, addr: &Addr, mount: &str) -> Result<BTreeMap<String, String>> {
    vault
        .signer(mount)
        .addresses(addr)
        .await
        .map_err(|e| node_error(&format!("reading the accounts of {mount}/ on {addr}"), e))
}

async fn frozen(vault: &Vault, addr: &Addr, mount: &str) -> Result<bool> {
    let c = vault
        .signer(mount)
        .config(addr)
        .await
        .map_err(|e| node_error(&format!("reading {mount}/config on {addr}"), e))?;
    Ok(c["frozen"] == true)
}

async fn plugin_sha(vault: &Vault, addr: &Addr, mount: &str) -> Result<String> {
    vault
        .running_sha256(addr, mount)
        .await
        .map_err(|e| node_error(&format!("reading the mount {mount} on {addr}"), e))
}

async fn set_frozen(vault: &Vault, addr: &Addr, mount: &str, value: bool) -> Result<()> {
    vault
        .signer(mount)
        .set_frozen(addr, value)
        .await
        .map_err(|e| node_error(&format!("setting frozen={value} on {addr}"), e))
}

async fn next_nonce(vault: &Vault, addr: &Addr, mount: &str, name: &str) -> Result<u64> {
    vault
        .signer(mount)
        .next_nonce(addr, name)
        .await
        .map_err(|e| node_error(&format!("reading {name}'s nonce on {addr}"), e))
}

/// Raises `to`'s counters to at least `from`'s; returns name → (from, to before, to after).
async fn carry_nonces(
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
        if target < source {
            vault
                .signer(mount)
                .raise_next_nonce(to, name, source)
                .await
                .map_err(|e| node_error(&format!("raising {name}'s nonce on {to}"), e))?;
        }
        out.insert(
            name.clone(),
            json!({ "from": source, "to_before": target, "to_after": target.max(source) }),
        );
    }
    Ok(Value::Object(out))
}

/// "2.7.2" (or "2.7.2-beta") as numbers to compare: (2, 7, 2).
fn version_of(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text
        .trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|p| p.parse::<u64>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

/// `next` (whose counter `whose` says) is not behind the chain's pending nonce for the account:
/// else it would sign a nonce the chain already has (exit 4).
async fn not_behind(rpc: &Rpc, name: &str, address: &str, next: u64, whose: &str) -> Result<()> {
    let pending = rpc.pending_nonce(address).await?;
    match crate::chain::standing(next, pending) {
        crate::chain::Standing::Behind(by) => Err(Error::precondition(format!(
            "{whose} next nonce for {name} is {next}, {by} behind the chain's pending nonce \
             {pending}: it would sign a nonce the chain already has; nothing was switched"
        ))
        .hint("raise the counters first (custody cutover rollback --nonce-floor-from-rpc URL raises blue's)")),
        _ => Ok(()),
    }
}

/// What the pre-flight found: the two active nodes and what they share.
struct Checked {
    blue: Addr,
    green: Addr,
    names: Vec<String>,
    /// Each account's address, by name.
    accounts: BTreeMap<String, String>,
}

/// One cutover (or rollback) between the plan's two clusters.
struct Cutover<'a> {
    ctx: &'a Ctx,
    vault: Vault,
    plan: Plan,
}

pub async fn run(ctx: &Ctx, args: &CutoverArgs) -> Result<()> {
    ctx.require_token(
        "cutover (a token valid on blue and green, such as the quorum's root token)",
    )?;
    let cut = Cutover {
        ctx,
        vault: ctx.vault()?,
        plan: plan(args)?,
    };
    if args.action.as_deref() == Some("rollback") {
        return cut.rollback_command().await;
    }
    let checked = cut.preflight().await?;
    let t_freeze = Instant::now();
    let outcome = match cut.freeze_blue(&checked.blue).await {
        Ok(()) => cut.switch(&checked, t_freeze).await,
        Err(e) => Err(cut.freeze_failed(&checked.blue, e).await?),
    };
    cut.finish(&checked, outcome).await
}

impl Cutover<'_> {
    /// Every check before anything changes.
    async fn preflight(&self) -> Result<Checked> {
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
        if frozen(vault, &green, &plan.mount).await? {
            return Err(Error::precondition(
                "green is frozen; it would refuse every signature",
            ));
        }
        if frozen(vault, &blue, &plan.mount).await? {
            return Err(Error::precondition(
                "blue is already frozen: a cutover may have stopped half-way; run `custody cutover rollback`",
            ));
        }
        if let Some(rpc) = &plan.watch {
            self.same_chain(rpc, &blue).await?;
            for (name, address) in &accounts {
                let after_carry = next_nonce(vault, &blue, &plan.mount, name)
                    .await?
                    .max(next_nonce(vault, &green, &plan.mount, name).await?);
                not_behind(rpc, name, address, after_carry, "after the carry, green's").await?;
            }
        }
        if let Lb::Haproxy(h) = &plan.lb {
            self.green_passes_checks(h).await?;
        }
        self.ctx.ui.status(format!(
            "pre-flight passed: green {} matches blue {} ({} accounts, plugin {}); OpenBao {} → {}",
            green,
            blue,
            names.len(),
            &plugin_sha[..plugin_sha.len().min(12)],
            versions.0,
            versions.1
        ));
        Ok(Checked {
            blue,
            green,
            names,
            accounts,
        })
    }

    /// Blue's and green's OpenBao versions; green older than blue (a downgrade) is refused
    /// unless --allow-downgrade.
    fn no_downgrade(&self, b: &str, g: &str) -> Result<(String, String)> {
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

    /// Green holds blue's accounts (it was restored from this blue): their addresses, by name.
    async fn same_accounts(&self, blue: &Addr, green: &Addr) -> Result<BTreeMap<String, String>> {
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
    async fn same_plugin(&self, blue: &Addr, green: &Addr) -> Result<String> {
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
    async fn green_passes_checks(&self, h: &crate::lb::haproxy::Haproxy) -> Result<()> {
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
    fn servers_exist(
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

    async fn freeze_blue(&self, blue: &Addr) -> Result<()> {
        set_frozen(&self.vault, blue, &self.plan.mount, true).await
    }

    /// The freeze request failed, but its answer may be what was lost (a timeout): the flag
    /// says. Not frozen: nothing changed, the error is returned (`Err`). Frozen, or unknown:
    /// the error goes on to the rollback (`Ok`), which unfreezes blue once it is safe.
    async fn freeze_failed(&self, blue: &Addr, e: Error) -> Result<Error> {
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
    async fn switch(&self, c: &Checked, t_freeze: Instant) -> Result<Value> {
        let (vault, plan) = (&self.vault, &self.plan);
        self.ctx.transcript.append(Step::new(
            "blue-green",
            "freeze-blue",
            "operator",
            json!({ "blue": c.blue.to_string() }),
        ))?;
        let nonces = carry_nonces(vault, &c.blue, &c.green, &plan.mount, &c.names).await?;
        if let Some(rpc) = &plan.watch {
            for (name, address) in &c.accounts {
                let green_next = next_nonce(vault, &c.green, &plan.mount, name).await?;
                not_behind(rpc, name, address, green_next, "green's").await?;
            }
        }
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
            "signing_pause_ms": pause.as_secs_f64() * 1000.0,
            "drain_seconds": drained.as_secs_f64(),
            "leader_via_lb": leader,
        }))
    }

    /// Waits (up to --drain-timeout) until blue's servers hold no session.
    async fn drain_blue(&self, h: &crate::lb::haproxy::Haproxy) -> Result<()> {
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
    async fn leader_is_green(&self) -> Result<String> {
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
    async fn finish(&self, c: &Checked, outcome: Result<Value>) -> Result<()> {
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

    /// `custody cutover rollback`.
    async fn rollback_command(&self) -> Result<()> {
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

    /// Blue back in service, never behind a nonce green or the chain has used: green frozen
    /// and its counters read, the balancer switched back, the counters the chain expects read
    /// (with --nonce-floor-from-rpc), blue's counters raised to the highest, then blue unfrozen.
    /// When no source of counters can be read, nothing changes and blue stays frozen (exit 4).
    async fn rollback(&self, blue: &Addr, green: Result<&Addr, String>) -> Result<Value> {
        let (vault, plan) = (&self.vault, &self.plan);
        if let Lb::Haproxy(h) = &plan.lb {
            self.servers_exist(h)?;
        }
        let accounts = accounts(vault, blue, &plan.mount).await?;
        if let Some(rpc) = &plan.rpc {
            self.same_chain(rpc, blue).await?;
        }
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
        let from_chain = match &plan.rpc {
            Some(rpc) => Some(self.chain_nonces(rpc, &accounts).await?),
            None => None,
        };
        let mut nonces = serde_json::Map::new();
        for name in accounts.keys() {
            let green_next = from_green.as_ref().ok().and_then(|n| n.get(name).copied());
            let chain_next = from_chain.as_ref().and_then(|n| n.get(name).copied());
            let floor = green_next.max(chain_next).unwrap_or(0);
            let (before, after) = self.raise(blue, name, floor).await?;
            nonces.insert(
                name.clone(),
                json!({ "from": green_next, "chain": chain_next, "to_before": before, "to_after": after }),
            );
        }
        set_frozen(vault, blue, &plan.mount, false).await?;
        let mut counters_from = Vec::new();
        if from_green.is_ok() {
            counters_from.push("green");
        }
        if from_chain.is_some() {
            counters_from.push("chain");
        }
        Ok(json!({
            "blue": blue.to_string(),
            "green": green.ok().map(|g| g.to_string()),
            "green_error": from_green.as_ref().err().map(ToString::to_string),
            "nonces_back": nonces,
            "counters_from": counters_from,
            "rpc": plan.rpc.as_ref().map(|r| r.url().to_owned()),
        }))
    }

    /// Freezes green, then reads each account's next nonce there.
    async fn freeze_and_read(
        &self,
        green: &Addr,
        accounts: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, u64>> {
        set_frozen(&self.vault, green, &self.plan.mount, true).await?;
        let mut out = BTreeMap::new();
        for name in accounts.keys() {
            out.insert(
                name.clone(),
                next_nonce(&self.vault, green, &self.plan.mount, name).await?,
            );
        }
        Ok(out)
    }

    /// The RPC serves the chain the mount signs for (checked before anything changes).
    async fn same_chain(&self, rpc: &Rpc, blue: &Addr) -> Result<()> {
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

    /// The next nonce the chain expects from each account: its pending transaction count.
    async fn chain_nonces(
        &self,
        rpc: &Rpc,
        accounts: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for (name, address) in accounts {
            out.insert(name.clone(), rpc.pending_nonce(address).await?);
        }
        Ok(out)
    }

    /// Raises blue's counter for `name` to at least `floor`: (before, after).
    async fn raise(&self, blue: &Addr, name: &str, floor: u64) -> Result<(u64, u64)> {
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

    /// Puts `servers` in `state` (HAProxy), or runs the exec balancer's `exec_action`.
    fn lb(&self, servers: &[String], state: &str, exec_action: &str) -> Result<()> {
        match &self.plan.lb {
            Lb::Haproxy(h) => servers
                .iter()
                .try_for_each(|s| h.set_state(&self.plan.backend, s, state)),
            Lb::Exec(e) => e.run(exec_action),
        }
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
