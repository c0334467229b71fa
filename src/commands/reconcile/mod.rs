//! `custody reconcile`: was every transaction the account sent signed through the plugin? The
//! chain's nonce count against the audit logs' signatures (`flows::reconcile`), recorded in the
//! transcript; exit 3 on a nonce no audited signature explains, or two payloads at one nonce.
//!
//! With a token (`--token-file`, `VAULT_TOKEN`) and `--addr`, the account's address is the
//! plugin's and every explaining line is proven the server's own (`sys/audit-hash`); without
//! one, the address is the logs' `from` and the lines are taken as written (said so, recorded).

mod report;

use serde_json::json;

use crate::cli::ReconcileArgs;
use crate::error::{Error, Result};
use crate::flows::reconcile::{Input, Prover, reconcile};
use crate::flows::{Ctx, active_node, node_error};
use crate::transcript::Step;

pub async fn run(ctx: &Ctx, args: &ReconcileArgs) -> Result<()> {
    let rpcs = crate::flows::rpcs::rpcs(
        ctx,
        crate::flows::rpcs::RpcFlags {
            flag: "--rpc",
            argv: &args.rpc,
            file_flag: "--rpc-file",
            file: args.rpc_file.as_deref(),
            env: true,
        },
    )?
    .ok_or_else(|| {
        Error::usage(format!(
            "reconcile needs the chain: --rpc URL, --rpc-file FILE or {}",
            crate::chain::RPC_URL_ENV
        ))
    })?;
    let rpc = rpcs.one("--rpc")?;
    let (address, prover) = match &ctx.token {
        Some(_) => {
            let vault = ctx.vault()?;
            let addr = active_node(&vault, ctx.require_addrs()?).await?;
            let account = vault
                .signer(&args.mount)
                .account(&addr, &args.account)
                .await
                .map_err(|e| {
                    node_error(
                        &format!("reading {}/accounts/{} on {addr}", args.mount, args.account),
                        e,
                    )
                })?;
            let address = account["address"].as_str().map(str::to_owned);
            (
                address,
                Some(Prover {
                    vault,
                    addr,
                    device: args.audit_device.clone(),
                }),
            )
        }
        None => {
            ctx.ui.warn(
                "no token: the account's address is taken from the logs and their lines as \
                 written; nothing proves them the server's own (give --token-file and --addr: \
                 a token that may read the account and call sys/audit-hash)",
            );
            (None, None)
        }
    };
    ctx.ui.status(format!(
        "reading {} audit log(s) and the chain at {}",
        args.audit_log.len(),
        rpc.url()
    ));
    let r = reconcile(Input {
        logs: &args.audit_log,
        rpc: &rpc,
        account: &args.account,
        mount: &args.mount,
        since_nonce: args.since_nonce,
        address,
        prover,
    })
    .await?;
    let facts = report::facts(&r, &rpcs.shown());
    let head = ctx
        .transcript
        .append(Step::new("reconcile", "reconcile", "witness", facts))?;
    let mut out = serde_json::to_value(&r).map_err(|e| Error::internal(e.to_string()))?;
    out["transcript_head"] = json!(head.head_hash);
    ctx.ui.result(&report::text(&r, &head.head_hash), out);
    if r.passed() {
        Ok(())
    } else {
        Err(report::failure(&r))
    }
}
