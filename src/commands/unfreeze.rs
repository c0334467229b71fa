//! `custody wallet unfreeze`: lifts the freeze a mount restored from a snapshot comes up with,
//! when no cutover will carry the counters (a `--force` restore back into the source, a green
//! that serves on its own): every account's counter raised to at least the chain's pending nonce
//! or the floor given, each raise written (the plugin counts them), then signing unfrozen. A
//! cutover's freeze is not lifted here: that is `cutover rollback`'s.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::chain::Rpcs;
use crate::cli::WalletUnfreezeArgs;
use crate::error::{Error, Result};
use crate::flows::freeze::Signing;
use crate::flows::{Ctx, active_node, node_error};
use crate::transcript::Step;
use crate::ui::escape;
use crate::vault::{Addr, Vault};

/// `--nonce-floor`: one floor for every account, or one per named account.
#[derive(Debug, PartialEq, Eq)]
enum Given {
    None,
    All(u64),
    Each(BTreeMap<String, u64>),
}

fn parse_floors(raw: &[String]) -> Result<Given> {
    let number = |s: &str, what: &str| {
        s.trim().parse::<u64>().map_err(|_| {
            Error::usage(format!(
                "--nonce-floor {}: {what} is not a nonce (a whole number)",
                escape(s)
            ))
        })
    };
    match raw {
        [] => Ok(Given::None),
        [one] if !one.contains('=') => Ok(Given::All(number(one, "it")?)),
        many => {
            let mut each = BTreeMap::new();
            for item in many {
                let Some((name, n)) = item.split_once('=') else {
                    return Err(Error::usage(format!(
                        "--nonce-floor {}: with several floors give each as NAME=N",
                        escape(item)
                    )));
                };
                if each
                    .insert(name.to_owned(), number(n, "the floor")?)
                    .is_some()
                {
                    return Err(Error::usage(format!(
                        "--nonce-floor names {} twice",
                        escape(name)
                    )));
                }
            }
            Ok(Given::Each(each))
        }
    }
}

/// One account's counter: where it was, what each source said, where it goes.
struct Raise {
    before: u64,
    chain: Option<u64>,
    given: Option<u64>,
    after: u64,
}

pub async fn run(ctx: &Ctx, args: &WalletUnfreezeArgs) -> Result<()> {
    ctx.require_token("wallet unfreeze (the quorum's root token)")?;
    let given = parse_floors(&args.nonce_floor)?;
    let rpc = crate::flows::rpcs::rpcs(
        ctx,
        crate::flows::rpcs::RpcFlags {
            flag: "--nonce-floor-from-rpc",
            argv: &args.nonce_floor_from_rpc,
            file_flag: "--nonce-floor-from-rpc-file",
            file: args.nonce_floor_from_rpc_file.as_deref(),
            env: false,
        },
    )?;
    if given == Given::None && rpc.is_none() {
        return Err(Error::usage(
            "wallet unfreeze needs a floor for the counters: --nonce-floor-from-rpc URL (the \
             chain's pending nonce of each account) and/or --nonce-floor N",
        ));
    }
    let vault = ctx.vault()?;
    let addr = active_node(&vault, ctx.require_addrs()?).await?;
    let mount = args.mount.as_str();
    let config = vault
        .signer(mount)
        .config(&addr)
        .await
        .map_err(|e| node_error(&format!("reading {mount}/config on {addr}"), e))?;
    let signing = Signing::of_config(&config);
    match &signing {
        Signing::Signs => {
            ctx.ui.result(
                &format!("{mount}/ on {addr} is not frozen: it signs; nothing changed"),
                json!({ "mount": mount, "signing": "signs", "changed": false }),
            );
            return Ok(());
        }
        Signing::Frozen => {
            return Err(Error::precondition(format!(
                "{mount}/ on {addr} was frozen by a cutover, not by a restore: unfreezing it here \
                 could leave two clusters signing; nothing changed"
            ))
            .hint("run `custody cutover rollback` with the cutover's arguments to put this cluster back in service"));
        }
        Signing::Restored(_) => {}
    }
    let raises = plan_raises(&vault, &addr, mount, &config, rpc.as_ref(), &given).await?;
    let jump_confirmed = confirm_jumps(ctx, &raises, args.max_nonce_jump)?;
    for (name, r) in &raises {
        vault
            .signer(mount)
            .raise_next_nonce(&addr, name, r.after)
            .await
            .map_err(|e| node_error(&format!("raising {name}'s counter on {addr}"), e))?;
    }
    vault
        .signer(mount)
        .set_frozen(&addr, false)
        .await
        .map_err(|e| node_error(&format!("unfreezing {mount}/ on {addr}"), e))?;
    report(
        ctx,
        &addr,
        mount,
        &signing,
        &raises,
        rpc.as_ref(),
        jump_confirmed,
    )
}

/// Each account's counter now and its floors; refused (exit 2) when a named floor names no
/// account, or one floor is given for several accounts.
async fn plan_raises(
    vault: &Vault,
    addr: &Addr,
    mount: &str,
    config: &Value,
    rpc: Option<&Rpcs>,
    given: &Given,
) -> Result<BTreeMap<String, Raise>> {
    let accounts = vault
        .signer(mount)
        .addresses(addr)
        .await
        .map_err(|e| node_error(&format!("reading the accounts of {mount}/ on {addr}"), e))?;
    match given {
        Given::All(_) if accounts.len() > 1 => {
            return Err(Error::usage(format!(
                "{mount}/ holds {} accounts ({}): give --nonce-floor NAME=N for each",
                accounts.len(),
                accounts.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        Given::Each(each) => {
            if let Some(unknown) = each.keys().find(|n| !accounts.contains_key(*n)) {
                return Err(Error::usage(format!(
                    "--nonce-floor {}=…: {mount}/ has no such account",
                    escape(unknown)
                )));
            }
            if rpc.is_none()
                && let Some(missing) = accounts.keys().find(|n| !each.contains_key(*n))
            {
                return Err(Error::usage(format!(
                    "--nonce-floor gives no floor for {missing}: name every account, or add \
                     --nonce-floor-from-rpc"
                )));
            }
        }
        _ => {}
    }
    if let Some(rpc) = rpc {
        rpc.expect_chain(mount, config["chain_id"].as_u64())
            .await
            .map_err(|e| e.hint("nothing was changed"))?;
    }
    let mut raises = BTreeMap::new();
    for (name, address) in &accounts {
        let before = vault
            .signer(mount)
            .next_nonce(addr, name)
            .await
            .map_err(|e| node_error(&format!("reading {name}'s counter on {addr}"), e))?;
        let chain = match rpc {
            Some(rpc) => Some(rpc.nonces(address).await?.pending),
            None => None,
        };
        let given = match given {
            Given::All(n) => Some(*n),
            Given::Each(each) => each.get(name).copied(),
            Given::None => None,
        };
        let after = before.max(chain.unwrap_or(0)).max(given.unwrap_or(0));
        raises.insert(
            name.clone(),
            Raise {
                before,
                chain,
                given,
                after,
            },
        );
    }
    Ok(raises)
}

/// A counter raised by more than `max_jump` needs a confirmation (`--yes`), else exit 4.
fn confirm_jumps(ctx: &Ctx, raises: &BTreeMap<String, Raise>, max_jump: u64) -> Result<bool> {
    let over: Vec<String> = raises
        .iter()
        .filter(|(_, r)| r.after - r.before > max_jump)
        .map(|(n, r)| format!("{n}: {} → {} (+{})", r.before, r.after, r.after - r.before))
        .collect();
    crate::flows::nonce_jump::confirm(ctx, max_jump, "the mount's", &over)
}

fn report(
    ctx: &Ctx,
    addr: &Addr,
    mount: &str,
    signing: &Signing,
    raises: &BTreeMap<String, Raise>,
    rpc: Option<&Rpcs>,
    jump_confirmed: bool,
) -> Result<()> {
    let counters: serde_json::Map<String, Value> = raises
        .iter()
        .map(|(n, r)| {
            (
                n.clone(),
                json!({ "before": r.before, "chain": r.chain, "given": r.given, "after": r.after }),
            )
        })
        .collect();
    let fences = match signing {
        Signing::Restored(r) => r.fences.iter().map(|(id, _, _)| id.clone()).collect(),
        _ => Vec::new(),
    };
    let facts = json!({
        "addr": addr.to_string(),
        "mount": mount,
        "fences": fences,
        "counters": counters,
        "rpcs": rpc.map(Rpcs::shown),
        "jump_confirmed": jump_confirmed,
    });
    let head = ctx
        .transcript
        .append(Step::new("wallet", "unfreeze", "operator", facts.clone()))?;
    let lines = raises
        .iter()
        .map(|(n, r)| format!("  {n}: next nonce {} → {}", r.before, r.after))
        .collect::<Vec<_>>()
        .join("\n");
    ctx.ui.result(
        &format!(
            "{mount}/ on {addr} signs again: it was restored from a snapshot, and its counters \
             were raised first:\n{lines}\nTranscript head: {}",
            head.head_hash
        ),
        json!({ "unfreeze": facts, "transcript_head": head.head_hash }),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_are_one_number_or_one_per_account() {
        assert_eq!(parse_floors(&[]).unwrap(), Given::None);
        assert_eq!(parse_floors(&["7".into()]).unwrap(), Given::All(7));
        assert_eq!(
            parse_floors(&["a=1".into(), "b=2".into()]).unwrap(),
            Given::Each([("a".into(), 1), ("b".into(), 2)].into())
        );
        assert_eq!(
            parse_floors(&["authority=9".into()]).unwrap(),
            Given::Each([("authority".into(), 9)].into())
        );
        for bad in [
            vec!["-1".to_owned()],
            vec!["x".into()],
            vec!["1".into(), "2".into()],
            vec!["a=1".into(), "a=2".into()],
            vec!["a=z".into()],
        ] {
            assert!(parse_floors(&bad).is_err(), "{bad:?}");
        }
    }
}
