//! `custody rotate-shares`: the unseal shares move to a new set of holders. The old quorum gives
//! its shares (`start`), each new holder's share is written encrypted to them, and the new
//! holders prove a quorum of the new shares (`--verify`) before the server puts them in force;
//! until then the old shares keep working, and `--cancel` ends the rotation at any stage.

mod start;
mod verify;

use serde_json::json;

use crate::cli::RotateSharesArgs;
use crate::error::{Error, Result};
use crate::flows::rotation::STEP_CANCEL;
use crate::flows::{Ctx, active_node, cluster_nodes, node_error};
use crate::transcript::Step;
use crate::transcript::share_sets::ROTATION;
use crate::vault::{Addr, NodeError, Rotation, RotationFamily, Vault};

pub async fn run(ctx: &Ctx, args: &RotateSharesArgs) -> Result<()> {
    let checked = cluster_nodes::check(
        ctx,
        ctx.require_addrs()?,
        &args.nodes.new_node,
        "rotate-shares",
    )?;
    if args.cancel {
        cancel(ctx).await
    } else if args.verify {
        verify::run(ctx, args, &checked).await
    } else {
        start::run(ctx, args, &checked).await
    }
}

/// The active node, the rotation the server offers, and a token fit for it.
struct Target {
    vault: Vault,
    addr: Addr,
    family: RotationFamily,
}

impl Target {
    async fn find(ctx: &Ctx) -> Result<Target> {
        let vault = ctx.vault()?;
        let addr = active_node(&vault, ctx.require_addrs()?).await?;
        let family = vault
            .rotation_family(&addr)
            .await
            .map_err(|e| node_error("finding which share rotation the server offers", e))?;
        if family == RotationFamily::RotateRoot {
            ctx.require_token(
                "rotate-shares (the ceremony token from `custody root ceremony-token`)",
            )?;
            refuse_root_token(&vault, &addr).await?;
        }
        Ok(Target {
            vault,
            addr,
            family,
        })
    }

    async fn rotation(&self) -> Result<Rotation> {
        self.vault
            .rotation_status(&self.addr, self.family)
            .await
            .map_err(|e| refused_read(e, "reading the share rotation's status"))
    }
}

/// The ceremony token has no default policy, so it cannot look itself up; a token that can and
/// carries the root policy is a standing root, which a rotation must not need.
async fn refuse_root_token(vault: &Vault, addr: &Addr) -> Result<()> {
    let Ok(me) = vault.lookup_self(addr).await else {
        return Ok(());
    };
    let root = me["data"]["policies"]
        .as_array()
        .is_some_and(|p| p.iter().any(|x| x == "root"));
    if root {
        return Err(Error::precondition(
            "the token given is a root token: a share rotation runs with the ceremony token, \
             which may only rotate the shares and generate a root token with the quorum",
        )
        .hint("give the ceremony token (`custody root ceremony-token`) with --token-file"));
    }
    Ok(())
}

/// A refusal to read or change the rotation; a 403 means the ceremony token predates it.
fn refused_read(e: NodeError, what: &str) -> Error {
    let forbidden = matches!(e, NodeError::Api { status: 403, .. });
    let err = node_error(what, e);
    if forbidden {
        err.hint(
            "the token may not rotate shares: a ceremony token made before custody could rotate \
             has the old policy; make a new one with `custody root ceremony-token` (its policy \
             adds sys/rotate/root/* and nothing more)",
        )
    } else {
        err
    }
}

async fn cancel(ctx: &Ctx) -> Result<()> {
    let target = Target::find(ctx).await?;
    let rotation = target.rotation().await?;
    if !rotation.started {
        ctx.ui.result(
            "No share rotation is in progress; nothing to cancel.",
            json!({ "cancelled": false }),
        );
        return Ok(());
    }
    target
        .vault
        .rotation_cancel(&target.addr, target.family)
        .await
        .map_err(|e| refused_read(e, "cancelling the share rotation"))?;
    let stage = if rotation.awaiting_verification() {
        "verifying"
    } else {
        "collecting"
    };
    let head = ctx.transcript.append(Step::new(
        ROTATION,
        STEP_CANCEL,
        "operator",
        json!({
            "nonce": rotation.nonce,
            "stage": stage,
            "progress": rotation.progress,
            "endpoint": target.family.base(),
        }),
    ))?;
    ctx.ui.result(
        &format!(
            "The share rotation {} is cancelled ({stage}); the old shares stay in force.\n\
             Any new share files written for it open nothing: delete them.\nTranscript head: {}",
            rotation.nonce, head.head_hash
        ),
        json!({ "cancelled": true, "nonce": rotation.nonce, "stage": stage, "transcript_head": head.head_hash }),
    );
    Ok(())
}
