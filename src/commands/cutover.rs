//! `custody cutover [rollback]`: blue-green phase 2. Every check is made before anything
//! changes; from the freeze on, any failure rolls back. Signing pauses only between the freeze
//! of blue and the switch of the balancer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::CutoverArgs;
use crate::error::{Error, Result};
use crate::flows::{Ctx, node_error, parse_addrs};
use crate::lb::Lb;
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
}

fn plan(args: &CutoverArgs) -> Result<Plan> {
    let blue = parse_addrs(&args.from)?;
    let green = parse_addrs(&args.to)?;
    if blue.iter().any(|b| green.contains(b)) {
        return Err(Error::usage("a node is both in --from and --to"));
    }
    let lb = Lb::parse(&args.lb)?;
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
    })
}

async fn active_of(vault: &Vault, addrs: &[Addr], which: &str) -> Result<Addr> {
    let nodes = crate::flows::nodes::all_status(vault, addrs).await;
    let active: Vec<usize> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.ha_role == Some(HaRole::Active))
        .map(|(i, _)| i)
        .collect();
    match active.as_slice() {
        [i] => Ok(addrs[*i].clone()),
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

fn lb_do(
    plan: &Plan,
    backend: &str,
    servers: &[String],
    state: &str,
    exec_action: &str,
) -> Result<()> {
    match &plan.lb {
        Lb::Haproxy(h) => servers
            .iter()
            .try_for_each(|s| h.set_state(backend, s, state)),
        Lb::Exec(e) => e.run(exec_action),
    }
}

pub async fn run(ctx: &Ctx, args: &CutoverArgs) -> Result<()> {
    ctx.require_token(
        "cutover (a token valid on blue and green, such as the quorum's root token)",
    )?;
    let plan = plan(args)?;
    let vault = ctx.vault()?;
    if args.action.as_deref() == Some("rollback") {
        let blue = active_of(&vault, &plan.blue, "blue").await?;
        let green = active_of(&vault, &plan.green, "green").await.ok();
        let facts = rollback(&vault, &plan, args, &blue, green.as_ref()).await?;
        let head = ctx.transcript.append(Step::new(
            "blue-green",
            "rollback",
            "operator",
            facts.clone(),
        ))?;
        ctx.ui.result(
            &format!("Rolled back: blue serves and signs, green is drained and frozen.\nTranscript head: {}", head.head_hash),
            json!({ "rollback": facts, "transcript_head": head.head_hash }),
        );
        return Ok(());
    }

    // ---- pre-flight: nothing changes if any check fails.
    let blue = active_of(&vault, &plan.blue, "blue").await?;
    let green_nodes = crate::flows::nodes::all_status(&vault, &plan.green).await;
    for n in &green_nodes {
        if !n.reachable || n.sealed || !n.initialized {
            return Err(Error::precondition(format!(
                "green node {} is not unsealed ({})",
                n.addr,
                n.error.as_deref().unwrap_or("sealed")
            )));
        }
    }
    let green = active_of(&vault, &plan.green, "green").await?;
    crate::flows::raft_peers::wait_stable_voters(
        &ctx.ui,
        &vault,
        &green,
        GREEN_PEER_WAIT,
        "Green must be whole before it takes traffic: wait for autopilot to promote the peer, \
         then run the cutover again",
    )
    .await?;
    let blue_accounts = accounts(&vault, &blue, &args.mount).await?;
    let green_accounts = accounts(&vault, &green, &args.mount).await?;
    if blue_accounts.is_empty() {
        return Err(Error::precondition(format!(
            "blue has no accounts under {}/",
            args.mount
        )));
    }
    if blue_accounts != green_accounts {
        return Err(Error::verification(format!(
            "green's accounts differ from blue's: blue {blue_accounts:?}, green {green_accounts:?}; was green restored from this blue?"
        )));
    }
    let (blue_sha, green_sha) = (
        plugin_sha(&vault, &blue, &args.mount).await?,
        plugin_sha(&vault, &green, &args.mount).await?,
    );
    if blue_sha != green_sha {
        return Err(Error::verification(format!(
            "the plugin differs: blue runs sha256 {blue_sha}, green {green_sha}"
        )));
    }
    if frozen(&vault, &green, &args.mount).await? {
        return Err(Error::precondition(
            "green is frozen; it would refuse every signature",
        ));
    }
    if frozen(&vault, &blue, &args.mount).await? {
        return Err(Error::precondition(
            "blue is already frozen: a cutover may have stopped half-way; run `custody cutover rollback`",
        ));
    }
    if let Lb::Haproxy(h) = &plan.lb {
        let servers = h.servers(&args.lb_backend)?;
        for name in args.blue_servers.iter().chain(&args.green_servers) {
            if !servers.contains_key(name) {
                return Err(Error::precondition(format!(
                    "HAProxy backend {} has no server {name} (it has {})",
                    args.lb_backend,
                    servers.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        // In maintenance HAProxy does not check a server: let green's be checked (drain: checked,
        // no traffic) and wait for its active node to pass.
        for name in &args.green_servers {
            if servers[name].status.starts_with("MAINT") {
                h.set_state(&args.lb_backend, name, "drain")?;
            }
        }
        let deadline = Instant::now() + CHECK_BOUND;
        loop {
            let now = h.servers(&args.lb_backend)?;
            if args.green_servers.iter().any(|n| {
                now.get(n)
                    .is_some_and(|s| s.check_status.starts_with("L7OK"))
            }) {
                break;
            }
            if Instant::now() >= deadline {
                for name in &args.green_servers {
                    let _ = h.set_state(&args.lb_backend, name, "maint");
                }
                return Err(Error::precondition(format!(
                    "no green server passed HAProxy's health check within {CHECK_BOUND:?}; green is back in maintenance, nothing else changed"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    ctx.ui.status(format!(
        "pre-flight passed: green {} matches blue {} ({} accounts, plugin {})",
        green,
        blue,
        blue_accounts.len(),
        &blue_sha[..blue_sha.len().min(12)]
    ));

    // ---- the switch; from the freeze on, any failure rolls back.
    let names: Vec<String> = blue_accounts.keys().cloned().collect();
    let t_freeze = Instant::now();
    set_frozen(&vault, &blue, &args.mount, true).await?;
    ctx.transcript.append(Step::new(
        "blue-green",
        "freeze-blue",
        "operator",
        json!({ "blue": blue.to_string() }),
    ))?;
    let outcome = switch(ctx, &vault, &plan, args, &blue, &green, &names, t_freeze).await;
    match outcome {
        Ok(facts) => {
            let head = ctx.transcript.append(Step::new(
                "blue-green",
                "cutover",
                "operator",
                facts.clone(),
            ))?;
            ctx.ui.result(
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
            Ok(())
        }
        Err(e) => {
            ctx.ui.warn(format!(
                "cutover failed after the freeze: {e}; rolling back"
            ));
            let rb = rollback(&vault, &plan, args, &blue, Some(&green)).await;
            let facts = json!({ "error": e.to_string(), "rollback": rb.as_ref().ok(), "rollback_error": rb.as_ref().err().map(ToString::to_string) });
            ctx.transcript.append(Step::new(
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
                .caused_by(r)),
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn switch(
    ctx: &Ctx,
    vault: &Vault,
    plan: &Plan,
    args: &CutoverArgs,
    blue: &Addr,
    green: &Addr,
    names: &[String],
    t_freeze: Instant,
) -> Result<Value> {
    let nonces = carry_nonces(vault, blue, green, &args.mount, names).await?;
    lb_do(
        plan,
        &args.lb_backend,
        &args.green_servers,
        "ready",
        "ready-green",
    )?;
    lb_do(
        plan,
        &args.lb_backend,
        &args.blue_servers,
        "drain",
        "drain-blue",
    )?;
    let pause = t_freeze.elapsed();
    ctx.ui.status(format!(
        "switched: green ready, blue draining (signing paused {:.0} ms)",
        pause.as_secs_f64() * 1000.0
    ));

    let t_drain = Instant::now();
    if let Lb::Haproxy(h) = &plan.lb {
        let bar = ctx.ui.progress(0, "draining blue");
        loop {
            let servers = h.servers(&args.lb_backend)?;
            let left: u64 = args
                .blue_servers
                .iter()
                .filter_map(|n| servers.get(n))
                .map(|s| s.sessions)
                .sum();
            bar.set(left, format!("{left} sessions on blue"));
            if left == 0 {
                break;
            }
            if t_drain.elapsed() >= plan.drain {
                bar.finish();
                return Err(Error::failed(format!(
                    "blue still had {left} sessions after --drain-timeout {:?}",
                    plan.drain
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bar.finish();
    }
    let drained = t_drain.elapsed();
    lb_do(
        plan,
        &args.lb_backend,
        &args.blue_servers,
        "maint",
        "maint-blue",
    )?;

    // Requests through the balancer reach green's active node. (A restored green carries blue's
    // cluster id, so the leader's address is what tells them apart.)
    let green_addrs: Vec<String> = plan.green.iter().map(|a| a.to_string()).collect();
    let leader = vault
        .leader(&plan.lb_url)
        .await
        .map_err(|e| node_error("asking the balancer for the leader", e))?;
    if !green_addrs.contains(&leader.leader_address.trim_end_matches('/').to_owned()) {
        return Err(Error::verification(format!(
            "through the balancer the leader is {}, not a green node ({})",
            leader.leader_address,
            green_addrs.join(", ")
        )));
    }
    Ok(json!({
        "blue": blue.to_string(),
        "green": green.to_string(),
        "nonces": nonces,
        "signing_pause_ms": pause.as_secs_f64() * 1000.0,
        "drain_seconds": drained.as_secs_f64(),
        "leader_via_lb": leader.leader_address,
    }))
}

/// Blue back in service: green frozen first and its counters carried back to blue (green may
/// have signed), the balancer switched back, then blue unfrozen.
async fn rollback(
    vault: &Vault,
    plan: &Plan,
    args: &CutoverArgs,
    blue: &Addr,
    green: Option<&Addr>,
) -> Result<Value> {
    let mut nonces = Value::Null;
    if let Some(g) = green {
        set_frozen(vault, g, &args.mount, true).await?;
        let names: Vec<String> = accounts(vault, blue, &args.mount)
            .await?
            .keys()
            .cloned()
            .collect();
        nonces = carry_nonces(vault, g, blue, &args.mount, &names).await?;
    }
    match &plan.lb {
        Lb::Haproxy(_) => {
            lb_do(
                plan,
                &args.lb_backend,
                &args.blue_servers,
                "ready",
                "rollback",
            )?;
            lb_do(
                plan,
                &args.lb_backend,
                &args.green_servers,
                "drain",
                "rollback",
            )?;
            lb_do(
                plan,
                &args.lb_backend,
                &args.green_servers,
                "maint",
                "rollback",
            )?;
        }
        Lb::Exec(e) => e.run("rollback")?,
    }
    set_frozen(vault, blue, &args.mount, false).await?;
    Ok(
        json!({ "blue": blue.to_string(), "green": green.map(|g| g.to_string()), "nonces_back": nonces }),
    )
}
