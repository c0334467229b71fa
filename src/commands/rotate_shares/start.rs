//! Starting a rotation, or continuing the one in progress: the new holders checked and
//! confirmed, the old holders' shares given, and on the last one the new shares written.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{Target, refused_read};
use crate::cli::RotateSharesArgs;
use crate::error::{Error, Result};
use crate::flows::Ctx;
use crate::flows::cluster_nodes::Checked;
use crate::flows::new_holders::{self, WrittenShare};
use crate::flows::recorded::{GiveAgain, ROTATION_OLD_SHARES, earlier_attempt_givers};
use crate::flows::rotation::{self, STEP_NEW_SHARES, STEP_SHARE, STEP_START};
use crate::flows::shares::{Shares, gather_recorded};
use crate::pgp::HolderCert;
use crate::transcript::Step;
use crate::transcript::share_sets::{self, ROTATION, ShareSet};
use crate::ui::{escape, prefix};
use crate::vault::{NodeError, Rotation, RotationRequest};

struct Plan {
    holders: Vec<HolderCert>,
    threshold: u32,
    out: PathBuf,
    backup: bool,
}

pub async fn run(ctx: &Ctx, args: &RotateSharesArgs, checked: &Checked) -> Result<()> {
    let plan = plan(args)?;
    let target = Target::find(ctx).await?;
    let rotation = target.rotation().await?;
    let lines = ctx.recorded_lines()?;
    let current = share_sets::current(&lines);
    if rotation.started {
        same_rotation(&rotation, &plan, &lines)?;
    }
    let need = if args.shares.uses_prompts() {
        old_shares_needed(&target, &rotation).await?
    } else {
        0
    };
    let shares = gather_recorded(ctx, &args.shares, need, &checked.record)?;
    holders_of(&shares, current.as_ref())?;
    new_holders::writable_out(&plan.out, "rotate-shares")?;
    checked.record_new_nodes(ctx, "rotate-shares")?;
    let rotation = if rotation.started {
        rotation
    } else {
        begin(ctx, &target, &plan, current.as_ref()).await?
    };
    let progress_before = rotation.progress;
    let (rotation, refused) = give_shares(ctx, &target, rotation, &shares).await?;
    record_shares(
        ctx,
        &rotation,
        &shares,
        refused.as_ref().map(|(why, _)| why.as_str()),
    )?;
    if let Some((why, given)) = refused {
        let earlier =
            earlier_attempt_givers(&lines, ROTATION, ROTATION_OLD_SHARES, &rotation.nonce);
        let unnamed = u64::from(progress_before).saturating_sub(earlier.len() as u64);
        return Err(
            Error::verification(why).hint(GiveAgain::new(&given, &earlier, unnamed).describe())
        );
    }
    if !rotation.complete {
        return report_progress(ctx, &rotation);
    }
    write_new_shares(ctx, &plan, &rotation)
}

fn plan(args: &RotateSharesArgs) -> Result<Plan> {
    let threshold = args
        .threshold
        .ok_or_else(|| Error::usage("--threshold T is required to start a rotation"))?;
    let out = args
        .out
        .clone()
        .ok_or_else(|| Error::usage("--out DIR is required to start a rotation"))?;
    let holders = new_holders::load(&args.pgp_keys, threshold, "rotate-shares")?;
    new_holders::refuse_existing_shares(&out, &holders)?;
    Ok(Plan {
        holders,
        threshold,
        out,
        backup: args.backup,
    })
}

/// A rerun continues only the rotation it started: one that requires the new holders' proof,
/// with the same new holders and threshold, and only while the old holders are still giving
/// shares.
fn same_rotation(server: &Rotation, plan: &Plan, lines: &[Value]) -> Result<()> {
    let cancel_hint = "`custody rotate-shares --cancel` cancels it; the old shares stay in force";
    if !server.verification_required {
        // Without it the last old share puts the new shares in force at once, unproven: a
        // rotation started outside custody (`bao operator rotate-keys` without -verify), or
        // one whose start an older custody recorded before it checked the server's answer.
        return Err(Error::precondition(format!(
            "the share rotation {} in progress does not require the new holders' proof \
             (verification_required is false): the last old share would put the new shares in \
             force before anyone proved them. custody continues no such rotation; nothing was \
             given and nothing recorded",
            escape(&server.nonce)
        ))
        .hint(cancel_hint)
        .hint(
            "then start it again with `custody rotate-shares`, which always requires the proof",
        ));
    }
    let recorded = rotation::recorded(lines, &server.nonce);
    if server.awaiting_verification() {
        let next = if recorded.new_shares_written {
            "the new shares were written; the new holders now prove them with `custody \
             rotate-shares --verify`"
        } else {
            "this transcript has no record of the new shares' files, so nobody can prove them: \
             cancel it with `custody rotate-shares --cancel` and start again"
        };
        return Err(Error::precondition(format!(
            "the share rotation {} is past the old holders: {next}",
            escape(&server.nonce)
        )));
    }
    let fprs: Vec<&str> = plan
        .holders
        .iter()
        .map(|h| h.fingerprint.as_str())
        .collect();
    let mut differs = Vec::new();
    if server.n as usize != plan.holders.len() || server.t != plan.threshold {
        differs.push(format!(
            "it makes {} shares with threshold {}, not {} with threshold {}",
            server.n,
            server.t,
            plan.holders.len(),
            plan.threshold
        ));
    }
    if let Some(server_fprs) = &server.pgp_fingerprints
        && !same_fingerprints(server_fprs.iter().map(String::as_str), &fprs)
    {
        differs.push("its new holders' keys are not the ones given".to_owned());
    }
    if !recorded.started {
        differs.push("this transcript has no record of its start".to_owned());
    } else if !same_fingerprints(
        recorded.holders.iter().map(|h| h.fingerprint.as_str()),
        &fprs,
    ) {
        differs.push("the transcript records other new holders for it".to_owned());
    }
    if differs.is_empty() {
        return Ok(());
    }
    Err(Error::precondition(format!(
        "another share rotation ({}) is in progress: {}",
        escape(&server.nonce),
        differs.join("; ")
    ))
    .hint(cancel_hint))
}

fn same_fingerprints<'a>(a: impl Iterator<Item = &'a str>, b: &[&str]) -> bool {
    let a: Vec<&str> = a.collect();
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y))
}

/// How many old shares the rotation still needs (for the hidden prompts).
async fn old_shares_needed(target: &Target, rotation: &Rotation) -> Result<u32> {
    if rotation.started {
        return Ok(rotation.required.saturating_sub(rotation.progress));
    }
    let seal = target
        .vault
        .seal_status(&target.addr)
        .await
        .map_err(|e| crate::flows::node_error("reading the seal's threshold", e))?;
    Ok(seal.t)
}

/// A holder identified by their secret key must hold a share of the set in force.
fn holders_of(shares: &Shares, current: Option<&ShareSet>) -> Result<()> {
    let Some(set) = current else { return Ok(()) };
    if let Some(stranger) = shares.holders.iter().find(|f| !set.holds(f)) {
        return Err(Error::precondition(format!(
            "secret key {stranger} holds no share of the set in force ({}); nothing was sent",
            set.describe()
        )));
    }
    Ok(())
}

/// Shows the new holders and asks, then starts the rotation and records its start.
async fn begin(
    ctx: &Ctx,
    target: &Target,
    plan: &Plan,
    current: Option<&ShareSet>,
) -> Result<Rotation> {
    let mut summary = format!(
        "Rotating the unseal shares of {} to {} new shares, threshold {}. The new holders, in order:\n",
        target.addr,
        plan.holders.len(),
        plan.threshold
    );
    summary.push_str(&new_holders::holder_lines(&plan.holders));
    if let Some(set) = current {
        summary.push_str(&format!("The shares in force: {}\n", set.describe()));
    }
    summary.push_str(
        "Each new holder: check that your fingerprint above is yours. The old shares stay in \
         force until the new holders prove a quorum of theirs (`custody rotate-shares --verify`).",
    );
    new_holders::confirm_on_screen(
        ctx,
        &summary,
        "Are these the new holders' fingerprints, confirmed by each holder?",
        "rotation cancelled; nothing was sent",
    )?;
    let request = RotationRequest {
        secret_shares: plan.holders.len() as u32,
        secret_threshold: plan.threshold,
        pgp_keys: new_holders::vault_encodings(&plan.holders)?,
        backup: plan.backup,
        require_verification: true,
    };
    let rotation = target
        .vault
        .rotation_start(&target.addr, target.family, &request)
        .await
        .map_err(|e| refused_read(e, "starting the share rotation"))?;
    let fprs: Vec<&str> = plan
        .holders
        .iter()
        .map(|h| h.fingerprint.as_str())
        .collect();
    checked_start(&rotation, &fprs, plan.threshold)?;
    ctx.transcript.append(Step::new(
        ROTATION,
        STEP_START,
        "operator",
        json!({
            "addr": target.addr.to_string(),
            "endpoint": target.family.base(),
            "nonce": rotation.nonce,
            "shares": plan.holders.len(),
            "threshold": plan.threshold,
            "holders": new_holders::holder_facts(&plan.holders),
            "backup": plan.backup,
            "verification_required": rotation.verification_required,
            "previous_set": current.map(|s| s.id.clone()),
        }),
    ))?;
    Ok(rotation)
}

/// The server's answer to the start, checked before anything is recorded: a rotation under a
/// nonce of the server's form (letters, digits and `-`), making the shares asked for, to the
/// new holders' keys in their order, and requiring their proof before the new shares take force.
fn checked_start(answer: &Rotation, fprs: &[&str], threshold: u32) -> Result<()> {
    let mut wrong = Vec::new();
    let nonce_ok = !answer.nonce.is_empty()
        && answer.nonce.len() <= 64
        && answer
            .nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !answer.started || !nonce_ok {
        wrong.push(format!(
            "it shows no rotation started under a nonce (started {}, nonce {:?})",
            answer.started,
            escape(prefix(&answer.nonce, 80))
        ));
    }
    if answer.n as usize != fprs.len() || answer.t != threshold {
        wrong.push(format!(
            "it makes {} shares with threshold {}, not the {} with threshold {threshold} asked for",
            answer.n,
            answer.t,
            fprs.len(),
        ));
    }
    if let Some(server_fprs) = &answer.pgp_fingerprints
        && !same_fingerprints(server_fprs.iter().map(String::as_str), fprs)
    {
        wrong.push("its new holders' keys are not the ones given".to_owned());
    }
    if !answer.verification_required {
        wrong.push(
            "it does not require the new holders' proof (verification_required is false), so the \
             last old share would put the new shares in force unproven"
                .to_owned(),
        );
    }
    if wrong.is_empty() {
        return Ok(());
    }
    Err(Error::verification(format!(
        "the server's answer to the start of the share rotation is not what custody asked for: \
         {}. Nothing was recorded and no share was given",
        wrong.join("; ")
    ))
    .hint(
        "cancel the rotation the server opened with `custody rotate-shares --cancel` (the old \
         shares stay in force)",
    ))
}

/// Gives each old share in turn; stops at the one that completes the rotation. The reason the
/// server refused the shares, when it did, with the labels of the shares this run gave.
async fn give_shares(
    ctx: &Ctx,
    target: &Target,
    mut rotation: Rotation,
    shares: &Shares,
) -> Result<(Rotation, Option<(String, Vec<String>)>)> {
    let nonce = rotation.nonce.clone();
    let mut given = Vec::new();
    for share in &shares.shares {
        given.push(share.label.clone());
        match target
            .vault
            .rotation_update(&target.addr, target.family, &share.text, &nonce)
            .await
        {
            Ok(r) if r.complete => {
                ctx.ui.status(format!(
                    "{} accepted; the old quorum is complete",
                    share.label
                ));
                return Ok((r, None));
            }
            Ok(r) => {
                ctx.ui.status(format!(
                    "{} accepted ({}/{})",
                    share.label, r.progress, r.required
                ));
                rotation = r;
            }
            Err(e) if e.message_contains("already been provided") => {
                ctx.ui.status(format!(
                    "{}: this share was already given in this rotation",
                    share.label
                ));
            }
            Err(e @ NodeError::Api { status: 400, .. }) => {
                let why = format!(
                    "the server refused the old shares ({e}): at least one is not a share of \
                     this cluster's shares in force (another cluster's, or of a set already \
                     rotated away). The rotation is still open; give the right shares, or \
                     `--cancel` it"
                );
                let now = target.rotation().await?;
                return Ok((now, Some((why, given))));
            }
            Err(e) => return Err(refused_read(e, "giving a share to the rotation")),
        }
    }
    Ok((rotation, None))
}

fn record_shares(
    ctx: &Ctx,
    rotation: &Rotation,
    shares: &Shares,
    refused: Option<&str>,
) -> Result<()> {
    let actor = if shares.holders.is_empty() {
        "holders".to_owned()
    } else {
        format!("holder {}", shares.holders.join(", "))
    };
    ctx.transcript.append(Step::new(
        ROTATION,
        STEP_SHARE,
        &actor,
        json!({
            "nonce": rotation.nonce,
            "holders": shares.holders,
            "shares_given": shares.shares.len(),
            "progress": rotation.progress,
            "required": rotation.required,
            "complete": rotation.complete,
            "refused": refused.is_some(),
        }),
    ))?;
    Ok(())
}

fn report_progress(ctx: &Ctx, rotation: &Rotation) -> Result<()> {
    let more = rotation.required.saturating_sub(rotation.progress);
    ctx.ui.result(
        &format!(
            "Share rotation {}: {}/{} old shares given; needs {more} more holder{}. Each runs the \
             same `custody rotate-shares` command with their share. The old shares stay in force.",
            escape(&rotation.nonce),
            rotation.progress,
            rotation.required,
            if more == 1 { "" } else { "s" }
        ),
        json!({ "nonce": rotation.nonce, "progress": rotation.progress, "required": rotation.required, "complete": false }),
    );
    Ok(())
}

/// The new shares, each written for its holder (or printed when it cannot be), recorded, and
/// checked to be addressed to their holders.
fn write_new_shares(ctx: &Ctx, plan: &Plan, rotation: &Rotation) -> Result<()> {
    let (written, rescued) =
        new_holders::write_shares(&plan.out, &plan.holders, &rotation.keys_base64);
    new_holders::print_rescued(ctx, "rotate-shares", &rescued);
    let mut step = Step::new(
        ROTATION,
        STEP_NEW_SHARES,
        "operator",
        json!({
            "nonce": rotation.nonce,
            "verification_nonce": rotation.verification_nonce,
            "written": written.len(),
            "shares": written,
            "rescued": rescued.iter().map(|r| r.label.clone()).collect::<Vec<_>>(),
            "recipients_verified": rescued.is_empty() && new_holders::misaddressed(&written).is_empty(),
        }),
    );
    for s in &written {
        step = step.file(Path::new(&s.file), &s.sha256);
    }
    let recorded = ctx.transcript.append(step);
    if !rescued.is_empty() {
        return Err(new_holders::rescued_error(
            "the old holders are done",
            "new share(s)",
            &rescued,
            ". Until the new holders prove their shares, the old ones stay in force",
            recorded.err(),
        ));
    }
    let head = recorded?;
    report_written(ctx, rotation, &written, &head.head_hash);
    let bad = new_holders::misaddressed(&written);
    if !bad.is_empty() {
        return Err(Error::verification(format!(
            "the server encrypted the new shares of {} to a key that is not the holder's \
             encryption key; do not verify this rotation: cancel it with `custody rotate-shares \
             --cancel`",
            bad.join(", ")
        )));
    }
    Ok(())
}

fn report_written(ctx: &Ctx, rotation: &Rotation, written: &[WrittenShare], head: &str) {
    let mut text = String::from(
        "The old quorum is complete. New shares written (each encrypted to its holder):\n",
    );
    text.push_str(&new_holders::written_lines(written));
    text.push_str(&format!(
        "The old shares stay in force until {} of the new holders prove theirs: each runs \
         `custody rotate-shares --verify` with their new share.\nTranscript head: {head}",
        rotation.t
    ));
    ctx.ui.result(
        &text,
        json!({ "nonce": rotation.nonce, "complete": true, "shares": written, "transcript_head": head }),
    );
}

#[cfg(test)]
mod tests {
    use super::checked_start;
    use crate::vault::Rotation;

    const A: &str = "AAAA1111";
    const B: &str = "BBBB2222";

    fn answer(json: &str) -> Rotation {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_start_is_checked_before_it_is_recorded() {
        let good = r#"{"started":true,"nonce":"5afc1d8e-4057-09a7-0819-406117c990ea","t":2,"n":2,
            "pgp_fingerprints":["aaaa1111","bbbb2222"],"verification_required":true}"#;
        assert!(checked_start(&answer(good), &[A, B], 2).is_ok());
        // OpenBao 2.7.2's own answer when the proof was not asked for.
        let unproven = good.replace(
            r#""verification_required":true"#,
            r#""verification_required":false"#,
        );
        for (bad, needle) in [
            (unproven.as_str(), "does not require the new holders' proof"),
            (
                &good.replace(r#""t":2"#, r#""t":1"#),
                "threshold 1, not the 2 with threshold 2",
            ),
            (
                &good.replace("bbbb2222", "cccc3333"),
                "keys are not the ones given",
            ),
            (
                &good.replace("5afc1d8e-4057", "5afc\\u001b[2J"),
                "no rotation started",
            ),
            (
                &good.replace(r#""started":true"#, r#""started":false"#),
                "no rotation started",
            ),
            (
                r#"{"verification_required":true,"t":2,"n":2}"#,
                "no rotation started",
            ),
        ] {
            let e = checked_start(&answer(bad), &[A, B], 2).unwrap_err();
            assert!(e.message.contains(needle), "{bad}: {}", e.message);
            assert!(e.message.contains("Nothing was recorded"), "{}", e.message);
            assert!(!e.message.contains('\u{1b}'), "{}", e.message);
            assert_eq!(e.kind.exit_code(), 3);
        }
        // The order of the keys is the order of the shares.
        let swapped = good.replace(r#"["aaaa1111","bbbb2222"]"#, r#"["bbbb2222","aaaa1111"]"#);
        assert!(checked_start(&answer(&swapped), &[A, B], 2).is_err());
    }
}
