//! `rotate-shares --verify`: the new holders prove a quorum of their new shares; the last proof
//! puts them in force, and custody says which snapshots still need the old ones.

use serde_json::json;

use super::{Target, refused_read};
use crate::cli::RotateSharesArgs;
use crate::error::{Error, Result};
use crate::flows::Ctx;
use crate::flows::cluster_nodes::Checked;
use crate::flows::recorded::{GiveAgain, ROTATION_PROOFS, earlier_attempt_givers};
use crate::flows::rotation::{self, Recorded, STEP_VERIFY};
use crate::flows::shares::{Shares, gather_recorded};
use crate::transcript::Step;
use crate::transcript::share_sets::{self, ROTATION, ROTATION_VERIFIED, SavedSnapshot, ShareSet};
use crate::vault::{NodeError, Rotation, Verification};

pub async fn run(ctx: &Ctx, args: &RotateSharesArgs, checked: &Checked) -> Result<()> {
    let target = Target::find(ctx).await?;
    let rotation = target.rotation().await?;
    if !rotation.started {
        let lost = rotation::unfinished(&ctx.recorded_lines()?).map(|n| {
            format!(
                "; the rotation {n} this transcript records is gone from the server (a seal, a \
                 restart or a change of leader ends a rotation): its new shares open nothing, \
                 and the old shares are still in force. Start again with `custody rotate-shares`"
            )
        });
        return Err(Error::precondition(format!(
            "no share rotation is in progress: there is nothing to verify{}",
            lost.unwrap_or_default()
        )));
    }
    if !rotation.awaiting_verification() {
        return Err(Error::precondition(format!(
            "the share rotation {} still needs the old holders: {}/{} old shares given",
            rotation.nonce, rotation.progress, rotation.required
        ))
        .hint("each old holder runs `custody rotate-shares --pgp-key … --threshold T --out DIR` with their share"));
    }
    let lines = ctx.recorded_lines()?;
    let recorded = rotation::recorded(&lines, &rotation.nonce);
    if !recorded.started {
        return Err(Error::precondition(format!(
            "the transcript {} has no record of the share rotation {}: custody cannot tell who \
             its new holders are",
            ctx.transcript.path().display(),
            rotation.nonce
        ))
        .hint(
            "run --verify with the transcript the rotation was started with (--transcript FILE)",
        ));
    }
    let verification = target
        .vault
        .verification_status(&target.addr, target.family)
        .await
        .map_err(|e| refused_read(e, "reading the verification's status"))?;
    let need = if args.shares.uses_prompts() {
        verification.t.saturating_sub(verification.progress)
    } else {
        0
    };
    let shares = gather_recorded(ctx, &args.shares, need, &checked.record)?;
    if let Some(stranger) = shares.holders.iter().find(|f| {
        !recorded
            .holders
            .iter()
            .any(|h| h.fingerprint.eq_ignore_ascii_case(f))
    }) {
        return Err(Error::precondition(format!(
            "secret key {stranger} is not one of the new holders of rotation {}; nothing was sent",
            rotation.nonce
        )));
    }
    checked.record_new_nodes(ctx, "rotate-shares --verify")?;
    let progress_before = verification.progress;
    let (verification, refused) = prove(ctx, &target, verification, &shares).await?;
    record_proof(ctx, &rotation, &verification, &shares, refused.is_some())?;
    if let Some((why, given)) = refused {
        let earlier = earlier_attempt_givers(&lines, ROTATION, ROTATION_PROOFS, &rotation.nonce);
        let unnamed = u64::from(progress_before).saturating_sub(earlier.len() as u64);
        return Err(
            Error::verification(why).hint(GiveAgain::new(&given, &earlier, unnamed).describe())
        );
    }
    if !verification.complete {
        let more = verification.t.saturating_sub(verification.progress);
        ctx.ui.result(
            &format!(
                "Verification of rotation {}: {}/{} new shares proven; needs {more} more new \
                 holder{}. The old shares stay in force until then.",
                rotation.nonce,
                verification.progress,
                verification.t,
                if more == 1 { "" } else { "s" }
            ),
            json!({ "nonce": rotation.nonce, "verification": verification, "complete": false }),
        );
        return Ok(());
    }
    finish(ctx, &target, &rotation, &recorded, &shares, &lines).await
}

/// Gives each new share in turn to the verification; the reason the server refused them.
async fn prove(
    ctx: &Ctx,
    target: &Target,
    mut verification: Verification,
    shares: &Shares,
) -> Result<(Verification, Option<(String, Vec<String>)>)> {
    let nonce = verification.nonce.clone();
    let mut given = Vec::new();
    for share in &shares.shares {
        given.push(share.label.clone());
        match target
            .vault
            .verification_update(&target.addr, target.family, &share.text, &nonce)
            .await
        {
            Ok(v) if v.complete => {
                ctx.ui.status(format!(
                    "{} proven; the new shares are in force",
                    share.label
                ));
                return Ok((v, None));
            }
            Ok(v) => {
                ctx.ui
                    .status(format!("{} proven ({}/{})", share.label, v.progress, v.t));
                verification = v;
            }
            Err(e) if e.message_contains("already been provided") => {
                ctx.ui.status(format!(
                    "{}: this new share was already proven in this verification",
                    share.label
                ));
            }
            Err(e @ NodeError::Api { status: 400, .. }) => {
                let why = format!(
                    "the server refused the new shares ({e}): at least one of this \
                     verification's shares is not a new share of this rotation (an old share, or \
                     another cluster's). The verification starts over; the old shares stay in \
                     force. The new holders run `custody rotate-shares --verify` again with the \
                     new shares"
                );
                let now = target
                    .vault
                    .verification_status(&target.addr, target.family)
                    .await
                    .unwrap_or_default();
                return Ok((now, Some((why, given))));
            }
            Err(e) => return Err(refused_read(e, "giving a new share to the verification")),
        }
    }
    Ok((verification, None))
}

fn record_proof(
    ctx: &Ctx,
    rotation: &Rotation,
    verification: &Verification,
    shares: &Shares,
    refused: bool,
) -> Result<()> {
    let actor = if shares.holders.is_empty() {
        "new holders".to_owned()
    } else {
        format!("holder {}", shares.holders.join(", "))
    };
    ctx.transcript.append(Step::new(
        ROTATION,
        STEP_VERIFY,
        &actor,
        json!({
            "nonce": rotation.nonce,
            "verification_nonce": verification.nonce,
            "holders": shares.holders,
            "shares_given": shares.shares.len(),
            "progress": verification.progress,
            "t": verification.t,
            "complete": verification.complete,
            "refused": refused,
        }),
    ))?;
    Ok(())
}

/// The new set is in force: the server's seal shape checked, the set recorded, and the
/// snapshots that still need the old shares named.
async fn finish(
    ctx: &Ctx,
    target: &Target,
    rotation: &Rotation,
    recorded: &Recorded,
    shares: &Shares,
    before: &[serde_json::Value],
) -> Result<()> {
    let mut proven_by = recorded.proven_by.clone();
    for f in &shares.holders {
        if !proven_by.contains(f) {
            proven_by.push(f.clone());
        }
    }
    let previous = share_sets::current(before);
    let holders = &recorded.holders;
    let head = ctx.transcript.append(Step::new(
        ROTATION,
        ROTATION_VERIFIED,
        "new holders",
        json!({
            "nonce": rotation.nonce,
            "endpoint": target.family.base(),
            "threshold": recorded.threshold,
            "shares": holders.len(),
            "holders": holders,
            "proven_by": proven_by,
            "previous_set": previous.as_ref().map(|s| s.id.clone()),
        }),
    ))?;
    let now = ctx.recorded_lines()?;
    let set = share_sets::current(&now)
        .ok_or_else(|| Error::internal("the verified rotation put no share set in force"))?;
    let needing_old = share_sets::saved_needing_other_than(&now, &set.id);
    report(ctx, &set, previous.as_ref(), &needing_old, &head.head_hash);
    seal_shape(target, &set).await
}

fn report(
    ctx: &Ctx,
    set: &ShareSet,
    previous: Option<&ShareSet>,
    needing_old: &[SavedSnapshot],
    head: &str,
) {
    let mut text = format!(
        "The rotation is complete: the new shares are in force ({}); the old shares no longer \
         open this cluster.\n",
        set.describe()
    );
    for h in &set.holders {
        text.push_str(&format!(
            "  {}. {}  {}\n",
            h.index,
            h.fingerprint,
            crate::ui::escape(&h.user_id)
        ));
    }
    if let Some(p) = previous {
        text.push_str(&format!("The previous set was {}.\n", p.describe()));
    }
    if needing_old.is_empty() {
        text.push_str("No snapshot in this transcript was taken before the rotation.\n");
    } else {
        text.push_str(
            "Snapshots taken before the rotation still need the OLD shares of the set they name \
             (keep those shares as long as you keep the snapshots):\n",
        );
        for s in needing_old {
            text.push_str(&format!(
                "  {}  ({}, set {})\n",
                s.file,
                s.time,
                s.share_set
                    .as_ref()
                    .map_or("unknown".to_owned(), |x| x.describe())
            ));
        }
    }
    text.push_str(&format!(
        "Next: take a fresh snapshot (`custody snapshot save`), which the new shares open.\n\
         Transcript head: {head}"
    ));
    ctx.ui.result(
        &text,
        json!({ "complete": true, "share_set": set, "previous_set": previous, "snapshots_needing_old_shares": needing_old, "transcript_head": head }),
    );
}

/// The seal now says the new shape.
async fn seal_shape(target: &Target, set: &ShareSet) -> Result<()> {
    let seal = target
        .vault
        .seal_status(&target.addr)
        .await
        .map_err(|e| crate::flows::node_error("reading the seal after the rotation", e))?;
    if seal.n as usize != set.holders.len() || seal.t != set.threshold {
        return Err(Error::verification(format!(
            "after the rotation the seal says {} shares with threshold {}, not {} with threshold {}",
            seal.n,
            seal.t,
            set.holders.len(),
            set.threshold
        )));
    }
    Ok(())
}
