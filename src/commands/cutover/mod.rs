//! `custody cutover [rollback]`: blue-green phase 2. Every check is made before anything
//! changes; from the freeze on, any failure rolls back. Signing pauses only between the freeze
//! of blue and the switch of the balancer.

mod floor;
mod nodes;
mod preflight;
mod rollback;
mod switch;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::chain::Rpcs;
use crate::cli::CutoverArgs;
use crate::error::{Error, Result};
use crate::flows::{Ctx, parse_addrs};
use crate::lb::Lb;
use crate::vault::{Addr, Vault};

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
    /// Where a rollback reads the chain's pending nonces (--nonce-floor-from-rpc, or its file).
    rpc: Option<Rpcs>,
    /// Where the cutover checks green's counters against the chain (--rpc, --rpc-file or
    /// CUSTODY_RPC_URL).
    watch: Option<Rpcs>,
    /// How far above blue's counter a rollback's floor may go unconfirmed (--max-nonce-jump).
    max_nonce_jump: u64,
    allow_downgrade: bool,
}

/// The characters HAProxy allows in a proxy or server name.
fn valid_lb_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

fn plan(ctx: &Ctx, args: &CutoverArgs) -> Result<Plan> {
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
        rpc: crate::flows::rpcs::rpcs(
            ctx,
            crate::flows::rpcs::RpcFlags {
                flag: "--nonce-floor-from-rpc",
                argv: &args.nonce_floor_from_rpc,
                file_flag: "--nonce-floor-from-rpc-file",
                file: args.nonce_floor_from_rpc_file.as_deref(),
                env: false,
            },
        )?,
        watch: crate::flows::rpcs::rpcs(
            ctx,
            crate::flows::rpcs::RpcFlags {
                flag: "--rpc",
                argv: &args.rpc,
                file_flag: "--rpc-file",
                file: args.rpc_file.as_deref(),
                env: true,
            },
        )?,
        max_nonce_jump: args.max_nonce_jump,
        allow_downgrade: args.allow_downgrade,
    })
}

/// What the pre-flight found: the two active nodes and what they share.
struct Checked {
    blue: Addr,
    green: Addr,
    names: Vec<String>,
    /// Each account's address, by name.
    accounts: BTreeMap<String, String>,
    /// Whether green signed before the switch (a restored green does not).
    green_signing: crate::flows::freeze::Signing,
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
        plan: plan(ctx, args)?,
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
