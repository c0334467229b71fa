//! `custody root ceremony-token | generate | revoke`: no root token stands except while the
//! quorum wants one. The init root token makes a ceremony token (it can only start a root
//! generation) and is revoked; a root token is then made only by the holders' quorum, encrypted
//! to the operator's key, and revoked after its work.

use std::path::Path;

use base64::Engine as _;
use serde_json::json;

use crate::cli::RootGenerateArgs;
use crate::error::{Context as _, Error, Kind, Result};
use crate::flows::cluster_nodes::{self, Checked};
use crate::flows::recorded::{GiveAgain, earlier_attempt_givers};
use crate::flows::shares::{Shares, gather_recorded};
use crate::flows::{Ctx, active_node, node_error};
use crate::fsutil::{refuse_existing, write_private};
use crate::pgp;
use crate::pgp::HolderCert;
use crate::transcript::Step;
use crate::vault::{Addr, Attempt, Family, NodeError, OrphanToken, Vault};

pub const CEREMONY_POLICY: &str = "custody-ceremony";
/// The ceremony token's only powers: the authenticated root generation of OpenBao 2.6+ and the
/// rotation of the unseal shares (2.4+); each still needs the holders' quorum.
pub const CEREMONY_POLICY_TEXT: &str = r#"# custody: the ceremony token may only start, advance and cancel a root generation,
# which still needs the holders' quorum,
path "sys/generate-root-token/*" {
  capabilities = ["create", "read", "update", "delete", "sudo"]
}
# and rotate the unseal shares to new holders, which needs the old quorum and the new
# holders' proof of their shares.
path "sys/rotate/root/init" {
  capabilities = ["read", "update", "delete"]
}
path "sys/rotate/root/update" {
  capabilities = ["update"]
}
path "sys/rotate/root/verify" {
  capabilities = ["read", "update", "delete"]
}
"#;

pub async fn ceremony_token(ctx: &Ctx, pgp_key: &Path, out: &Path) -> Result<()> {
    ctx.require_token("root ceremony-token (run it with the root token init encrypted to you)")?;
    let cert = pgp::load_holder_cert(pgp_key)?;
    refuse_existing(out)?;
    let vault = ctx.vault()?;
    let addr = active_node(&vault, ctx.require_addrs()?).await?;

    vault
        .put_policy(&addr, CEREMONY_POLICY, CEREMONY_POLICY_TEXT)
        .await
        .map_err(|e| node_error("writing the custody-ceremony policy", e))?;
    let (token, accessor) = vault
        .create_orphan_token(
            &addr,
            &OrphanToken {
                policies: &[CEREMONY_POLICY.to_owned()],
                period: Some("768h"),
                display_name: "custody-ceremony",
            },
        )
        .await
        .map_err(|e| node_error("creating the ceremony token", e))?;

    // Prove it is what it claims: it can see a root generation, and nothing else.
    let narrow = vault.with_token(Some(token.clone()));
    let family = crate::flows::root_generation::detect_family(&narrow, &addr).await?;
    if family != Family::Authenticated {
        return Err(Error::precondition(
            "this server has the classic unauthenticated sys/generate-root; no ceremony token is needed there",
        ));
    }
    if narrow.mounts(&addr).await.is_ok() {
        return Err(Error::verification(
            "the ceremony token can read sys/mounts: it is not narrow; revoke it",
        ));
    }

    let armored = pgp::encrypt::encrypt_armored(&cert, token.expose().as_bytes())?;
    write_private(out, &armored, false)?;
    let sha = crate::digest::sha256_hex(&armored);
    let head = ctx.transcript.append(
        Step::new(
            "configure",
            "ceremony-token",
            "operator",
            json!({
                "policy": CEREMONY_POLICY,
                "policy_sha256": crate::digest::sha256_hex(CEREMONY_POLICY_TEXT.as_bytes()),
                "token_accessor": accessor,
                "encrypted_to": cert.fingerprint,
                "period": "768h",
            }),
        )
        .file(out, &sha),
    )?;
    ctx.ui.result(
        &format!(
            "Ceremony token written to {} (encrypted to {}; accessor {accessor}).\n\
             It can only start a root generation, which still needs the quorum.\n\
             Next: revoke the init root token with `custody root revoke`.\nTranscript head: {}",
            out.display(),
            cert.fingerprint,
            head.head_hash
        ),
        json!({ "file": out.display().to_string(), "accessor": accessor, "encrypted_to": cert.fingerprint, "transcript_head": head.head_hash }),
    );
    Ok(())
}

pub async fn revoke(ctx: &Ctx) -> Result<()> {
    ctx.require_token("root revoke (the token to revoke)")?;
    let vault = ctx.vault()?;
    let addr = active_node(&vault, ctx.require_addrs()?).await?;
    let who = vault.lookup_self(&addr).await.ok();
    let accessor = who
        .as_ref()
        .and_then(|w| w["data"]["accessor"].as_str())
        .unwrap_or("")
        .to_owned();
    let policies: Vec<String> = who
        .as_ref()
        .and_then(|w| w["data"]["policies"].as_array())
        .map(|p| {
            p.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    vault
        .revoke_self(&addr)
        .await
        .map_err(|e| node_error("revoking the token", e))?;
    // It must no longer work, on any node; a node that does not answer is not counted as
    // refusing it.
    let mut unreachable = Vec::new();
    for a in ctx.require_addrs()? {
        match vault.lookup_self(a).await {
            Err(NodeError::Api { status: 403, .. }) => {}
            Err(e @ NodeError::Unreachable(_)) => unreachable.push(format!("{a} ({e})")),
            Ok(_) => {
                return Err(Error::verification(format!(
                    "{a} still accepts the token after revocation"
                )));
            }
            Err(e) => return Err(node_error(&format!("checking the revocation on {a}"), e)),
        }
    }
    let head = ctx.transcript.append(Step::new(
        "configure",
        "revoke-token",
        "operator",
        json!({ "accessor": accessor, "policies": policies, "refused_after": unreachable.is_empty(), "unreachable": unreachable }),
    ))?;
    let revoked = if accessor.is_empty() {
        String::new()
    } else {
        format!(" (accessor {accessor})")
    };
    if !unreachable.is_empty() {
        return Err(Error::failed(format!(
            "revoked{revoked} on {addr}, but not every node confirmed it: {} did not answer \
             (recorded; transcript head {})",
            unreachable.join(", "),
            head.head_hash
        ))
        .hint("once the node is back, check that it refuses the token (any request with it answers 403)"));
    }
    ctx.ui.result(
        &format!(
            "Revoked{revoked}; the cluster now refuses it.\nTranscript head: {}",
            head.head_hash
        ),
        json!({ "revoked": true, "accessor": accessor, "policies": policies, "transcript_head": head.head_hash }),
    );
    Ok(())
}

/// Where a root generation runs: the active node, the server's family of endpoints.
struct Target {
    vault: Vault,
    addr: Addr,
    family: Family,
}

impl Target {
    fn family_text(&self) -> &'static str {
        match self.family {
            Family::Authenticated => "authenticated sys/generate-root-token (OpenBao 2.6+)",
            Family::Classic => "classic sys/generate-root",
        }
    }
}

pub async fn generate(ctx: &Ctx, args: &RootGenerateArgs) -> Result<()> {
    let checked = cluster_nodes::check(
        ctx,
        ctx.require_addrs()?,
        &args.nodes.new_node,
        "root generate",
    )?;
    let vault = ctx.vault()?;
    let addr = active_node(&vault, ctx.require_addrs()?).await?;
    let family = crate::flows::root_generation::detect_family(&vault, &addr).await?;
    let target = Target {
        vault,
        addr,
        family,
    };
    if args.cancel {
        return cancel(ctx, &target).await;
    }
    let (Some(pgp_key), Some(out)) = (&args.pgp_key, &args.out) else {
        return Err(Error::usage(
            "root generate needs --pgp-key FILE and --out FILE",
        ));
    };
    let cert = pgp::load_holder_cert(pgp_key)?;
    refuse_existing(out)?;
    let attempt = join_or_start(ctx, &target, &cert).await?;
    let need = attempt.required.saturating_sub(attempt.progress);
    let shares = gather_recorded(ctx, &args.shares, need, &checked.record)?;
    checked.record_new_nodes(ctx, "root generate")?;
    let earlier = earlier_givers(&checked, &attempt);
    let (attempt, refused) = give_shares(ctx, &target, attempt, &shares).await?;
    let refused = refused.map(|(why, given)| (why, GiveAgain::new(&given, &earlier.0, earlier.1)));
    finish(ctx, &target, &cert, out, &attempt, &shares, refused)
}

/// Who gave the attempt its progress in earlier runs, as the transcript records (its
/// `root-generate` lines with the attempt's nonce), and how many of its shares that leaves
/// unnamed.
fn earlier_givers(checked: &Checked, attempt: &Attempt) -> (Vec<String>, u64) {
    let holders = earlier_attempt_givers(
        &checked.lines,
        "configure",
        &["root-generate"],
        &attempt.nonce,
    );
    let unnamed = u64::from(attempt.progress).saturating_sub(holders.len() as u64);
    (holders, unnamed)
}

/// `--cancel`: the attempt in progress is dropped.
async fn cancel(ctx: &Ctx, target: &Target) -> Result<()> {
    let (vault, addr, family) = (&target.vault, &target.addr, target.family);
    let base = family.base();
    let family_text = target.family_text();
    vault
        .root_generation_cancel(addr, family)
        .await
        .map_err(|e| node_error("cancelling the root generation", e))?;
    let head = ctx.transcript.append(Step::new(
        "configure",
        "root-generate-cancel",
        "operator",
        json!({ "endpoint": base }),
    ))?;
    ctx.ui.result(
        &format!(
            "The root generation attempt is cancelled ({family_text}).\nTranscript head: {}",
            head.head_hash
        ),
        json!({ "cancelled": true, "endpoint": base, "transcript_head": head.head_hash }),
    );
    Ok(())
}

/// The attempt in progress, or a new one encrypting the token to `cert`; refused when the
/// attempt in progress encrypts to another key.
async fn join_or_start(ctx: &Ctx, target: &Target, cert: &HolderCert) -> Result<Attempt> {
    let (vault, addr, family) = (&target.vault, &target.addr, target.family);
    let family_text = target.family_text();
    let mut attempt = vault
        .root_generation_attempt(addr, family)
        .await
        .map_err(|e| node_error("reading the root generation", e))?;
    if !attempt.started {
        let encoded = cert.vault_encoding()?;
        attempt = vault
            .root_generation_start(addr, family, Some(&encoded))
            .await
            .map_err(|e| node_error("starting the root generation", e))?;
        ctx.ui.status(format!(
            "Started a root generation ({family_text}); the root token will be encrypted to {}.",
            cert.fingerprint
        ));
    }
    if !attempt
        .pgp_fingerprint
        .eq_ignore_ascii_case(&cert.fingerprint)
    {
        return Err(Error::verification(format!(
            "the attempt in progress encrypts the root token to {}, not to --pgp-key {}; \
             nothing was sent. If that attempt is not yours, cancel it with --cancel",
            attempt.pgp_fingerprint, cert.fingerprint
        )));
    }
    ctx.ui.status(format!(
        "Root generation nonce: {}\nRead it out loud: every holder must see the same nonce. Progress {}/{}.",
        attempt.nonce, attempt.progress, attempt.required
    ));

    Ok(attempt)
}

/// Gives each share to the attempt until it completes; a share the server cannot use makes it
/// start over, which is reported (the refusal's words, and the labels of the shares this run
/// gave) rather than an error here.
async fn give_shares(
    ctx: &Ctx,
    target: &Target,
    mut attempt: Attempt,
    shares: &Shares,
) -> Result<(Attempt, Option<(String, Vec<String>)>)> {
    let (vault, addr, family) = (&target.vault, &target.addr, target.family);
    let mut refused = None;
    let mut given = Vec::new();
    for share in &shares.shares {
        given.push(share.label.clone());
        let nonce = attempt.nonce.clone();
        match vault
            .root_generation_update(addr, family, &share.text, &nonce)
            .await
        {
            Ok(next) => {
                attempt = next;
                ctx.ui.status(format!(
                    "{} accepted ({}/{})",
                    share.label, attempt.progress, attempt.required
                ));
                if attempt.complete {
                    break;
                }
            }
            Err(e) if e.message_contains("already been provided") => {
                ctx.ui.status(format!(
                    "{}: this share was already given in this attempt",
                    share.label
                ));
            }
            Err(e)
                if e.message_contains("unable to authenticate")
                    || e.message_contains("duplicate part")
                    || e.message_contains("message authentication failed") =>
            {
                refused = Some((
                    format!(
                        "{e}. The server could not open its keys with the shares of this attempt and started over \
                         (progress 0): at least one share is not from this cluster"
                    ),
                    std::mem::take(&mut given),
                ));
                break;
            }
            Err(e) => return Err(node_error("submitting the share", e)),
        }
    }

    Ok((attempt, refused))
}

/// Records the outcome; on completion, writes the encrypted root token and checks its recipient.
fn finish(
    ctx: &Ctx,
    target: &Target,
    cert: &HolderCert,
    out: &Path,
    attempt: &Attempt,
    shares: &Shares,
    refused: Option<(String, GiveAgain)>,
) -> Result<()> {
    let base = target.family.base();
    let mut facts = json!({
        "endpoint": base,
        "nonce": attempt.nonce,
        "progress": attempt.progress,
        "required": attempt.required,
        "encrypted_to": cert.fingerprint,
        "holders": shares.holders,
        "complete": attempt.complete,
    });
    if let Some((msg, give_again)) = refused {
        facts["refused"] = json!(true);
        ctx.transcript
            .append(Step::new("configure", "root-generate", "holders", facts))?;
        return Err(Error::new(Kind::Verification, msg).hint(give_again.describe()));
    }
    if !attempt.complete {
        let head =
            ctx.transcript
                .append(Step::new("configure", "root-generate", "holders", facts))?;
        let more = attempt.required.saturating_sub(attempt.progress);
        ctx.ui.result(
            &format!(
                "Root generation {}/{}: needs {more} more holder{}. Nonce {}.\nTranscript head: {}",
                attempt.progress,
                attempt.required,
                if more == 1 { "" } else { "s" },
                attempt.nonce,
                head.head_hash
            ),
            json!({ "complete": false, "nonce": attempt.nonce, "progress": attempt.progress, "required": attempt.required, "endpoint": base, "transcript_head": head.head_hash }),
        );
        return Ok(());
    }
    let binary = base64::engine::general_purpose::STANDARD
        .decode(attempt.encoded().trim())
        .with_kind(Kind::Verification, "the encoded root token is not base64")?;
    let addressed = crate::pgp::addressed_only_to(&binary, cert);
    let armored = pgp::armor_message(&binary)?;
    write_private(out, &armored, false)?;
    let sha = crate::digest::sha256_hex(&armored);
    facts["recipient_verified"] = json!(addressed);
    let head = ctx
        .transcript
        .append(Step::new("configure", "root-generate", "holders", facts).file(out, &sha))?;
    ctx.ui.result(
        &format!(
            "The quorum made a root token, encrypted to {} and written to {}.\n\
             Decrypt it only where it is used, and revoke it after the work (`custody root revoke`).\nTranscript head: {}",
            cert.fingerprint,
            out.display(),
            head.head_hash
        ),
        json!({ "complete": true, "file": out.display().to_string(), "encrypted_to": cert.fingerprint, "nonce": attempt.nonce, "endpoint": base, "transcript_head": head.head_hash }),
    );
    if !addressed {
        return Err(Error::verification(format!(
            "the root token is not addressed to the encryption key of {}",
            cert.fingerprint
        )));
    }
    Ok(())
}
