//! `custody snapshot save`: the snapshot streamed to a partial file, renamed once whole, and a
//! manifest of what the cluster held beside it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;

use crate::error::{Context as _, Error, Result};
use crate::flows::{Ctx, active_node, node_error};
use crate::fsutil::{refuse_existing, write_private};
use crate::snapshot::{self, Manifest, manifest_path};
use crate::transcript::Step;
use crate::transcript::share_sets::{self, ShareSet};
use crate::ui::escape;
use crate::vault::{Addr, Vault};

use super::fence;

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The accounts (name → address) and the plugin sha a token can read; empty where it cannot.
async fn authority_facts(
    vault: &Vault,
    addr: &Addr,
    mount: &str,
) -> (BTreeMap<String, String>, Option<String>) {
    let accounts = vault
        .signer(mount)
        .addresses(addr)
        .await
        .unwrap_or_default();
    let sha = vault
        .running_sha256(addr, mount)
        .await
        .ok()
        .filter(|s| !s.is_empty());
    (accounts, sha)
}

pub async fn save(ctx: &Ctx, out: &Path, mount: &str) -> Result<()> {
    ctx.require_token("snapshot save")?;
    let manifest_file = manifest_path(out);
    let partial = fresh_outputs(out, &manifest_file)?;
    let vault = ctx.vault()?;
    let addrs = ctx.require_addrs()?;
    let addr = active_node(&vault, addrs).await?;
    let status = vault
        .seal_status(&addr)
        .await
        .map_err(|e| node_error("reading the cluster's status", e))?;
    // Read before anything is written: a transcript that fails its check stops the save here.
    let (share_set, share_set_unknown) = share_set_in_force(ctx, status.n, status.t)?;

    let file_name = out
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let fence = fence::raise(&vault, &addr, &file_name).await?;
    let started = Instant::now();
    let downloaded = download(ctx, &vault, &addr, &partial).await;
    if let Some(f) = &fence {
        for warning in fence::lower(&vault, &addr, f).await {
            ctx.ui.warn(warning);
        }
    }
    let (sha256, size) = downloaded?;
    let meta = match snapshot::read_meta(&partial) {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.doing("the server sent something that is not a snapshot"));
        }
    };
    put_in_place(&partial, out)?;
    let elapsed = started.elapsed();

    let (accounts, plugin_sha256) = authority_facts(&vault, &addr, mount).await;
    let audit_devices = match vault.audit_devices(&addr).await {
        Ok(d) => Some(d),
        Err(e) => {
            ctx.ui.warn(format!(
                "audit devices unknown: sys/audit on {addr} answered {e}; the manifest does not \
                 record them, so a restore cannot check that its target declares them and a \
                 restore test refuses this snapshot (save with a token that has sudo on sys/audit)"
            ));
            None
        }
    };
    let manifest = Manifest {
        schema_version: snapshot::manifest::MANIFEST_VERSION,
        file: file_name,
        sha256: sha256.clone(),
        size,
        raft_index: meta.index,
        raft_term: meta.term,
        cluster_id: status.cluster_id.clone(),
        cluster_name: status.cluster_name.clone(),
        nodes: addrs.iter().map(|a| a.to_string()).collect(),
        server_version: status.version.clone(),
        seal_shares: status.n,
        seal_threshold: status.t,
        time: now_rfc3339(),
        mount: mount.to_owned(),
        accounts,
        plugin_sha256,
        custody_version: env!("CARGO_PKG_VERSION").to_owned(),
        share_set,
        restore_fence: fence,
        audit_devices,
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)
        .with_kind(crate::error::Kind::Internal, "serializing the manifest")?;
    write_private(&manifest_file, &manifest_bytes, false)?;
    let head = ctx.transcript.append(
        Step::new(
            "snapshot",
            "save",
            "operator",
            serde_json::to_value(&manifest).unwrap_or_default(),
        )
        .file(out, &sha256)
        .file(&manifest_file, &crate::digest::sha256_hex(&manifest_bytes)),
    )?;
    report(
        ctx,
        out,
        &manifest,
        &manifest_file,
        elapsed.as_secs_f64(),
        &head.head_hash,
        share_set_unknown.as_deref(),
    );
    Ok(())
}

/// The share set the transcript has in force, when its shape is the cluster's seal (`shares`
/// shares, `threshold` to open): the shares this snapshot's barrier opens with. Otherwise none,
/// and why it is unknown.
fn share_set_in_force(
    ctx: &Ctx,
    shares: u32,
    threshold: u32,
) -> Result<(Option<ShareSet>, Option<String>)> {
    let path = ctx.transcript.path();
    if !path.exists() {
        return Ok((
            None,
            Some(format!(
                "no transcript at {}, so nothing says whose shares open this snapshot",
                path.display()
            )),
        ));
    }
    let (_, entries) = crate::transcript::read_verified(path)?;
    let Some(set) = share_sets::current(&entries) else {
        return Ok((
            None,
            Some(format!(
                "the transcript {} records no init or proven rotation, so nothing says whose \
                 shares open this snapshot",
                path.display()
            )),
        ));
    };
    if !set.fits_seal(shares, threshold) {
        return Ok((
            None,
            Some(format!(
                "the transcript's set {} is {} of {}, the cluster's seal is {threshold} of \
                 {shares}: it is not this cluster's set (another cluster's transcript, or a \
                 rotation it did not record)",
                set.id,
                set.threshold,
                set.holders.len()
            )),
        ));
    }
    Ok((Some(set), None))
}

/// Neither the snapshot, its manifest, nor a partial file of an interrupted save may exist: the
/// partial file's name.
fn fresh_outputs(out: &Path, manifest_file: &Path) -> Result<PathBuf> {
    refuse_existing(out)?;
    refuse_existing(manifest_file)?;
    let partial = PathBuf::from(format!("{}.partial", out.display()));
    if partial.exists() {
        return Err(Error::precondition(format!(
            "{} exists: an earlier save was interrupted; delete it and save again",
            partial.display()
        )));
    }
    Ok(partial)
}

/// Streams the snapshot into `partial` (0600, created exclusively, synced), hashing as it
/// goes: (sha256, size). A failure removes the partial file.
async fn download(ctx: &Ctx, vault: &Vault, addr: &Addr, partial: &Path) -> Result<(String, u64)> {
    let mut resp = vault
        .snapshot_download(addr)
        .await
        .map_err(|e| node_error("asking for a snapshot", e))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode_0600()
        .open(partial)
        .context(format!("creating {}", partial.display()))?;
    let mut hash = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut size = 0u64;
    let bar = ctx.ui.byte_progress("snapshot");
    let written: Result<()> = async {
        while let Some(chunk) = resp
            .next_chunk()
            .await
            .map_err(|e| node_error("receiving the snapshot", e))?
        {
            file.write_all(&chunk)
                .context(format!("writing {}", partial.display()))?;
            hash.update(&chunk);
            size += chunk.len() as u64;
            bar.inc(chunk.len() as u64);
        }
        file.sync_all()
            .context(format!("syncing {}", partial.display()))
    }
    .await;
    bar.finish();
    if let Err(e) = written {
        let _ = std::fs::remove_file(partial);
        return Err(e);
    }
    Ok((hex::encode(hash.finish().as_ref()), size))
}

/// The whole snapshot takes its name, and the directory entry is synced.
fn put_in_place(partial: &Path, out: &Path) -> Result<()> {
    std::fs::rename(partial, out).context(format!(
        "renaming {} to {}",
        partial.display(),
        out.display()
    ))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

fn report(
    ctx: &Ctx,
    out: &Path,
    manifest: &Manifest,
    manifest_file: &Path,
    seconds: f64,
    head: &str,
    share_set_unknown: Option<&str>,
) {
    let shares_line = match (&manifest.share_set, share_set_unknown) {
        (Some(set), _) => format!(
            "Opens with the shares of set {}: {} of {} of {}",
            escape(&set.id),
            set.threshold,
            set.holders.len(),
            set.holders
                .iter()
                .map(|h| format!("{}. {}", h.index, escape(&h.fingerprint)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (None, why) => {
            let why = why.unwrap_or("not recorded");
            ctx.ui.warn(format!("share set unknown: {why}"));
            format!("Share set: unknown ({why})")
        }
    };
    let fence_line = match &manifest.restore_fence {
        Some(f) => format!(
            "Restore fence {} in {}: a cluster restored from this snapshot signs nothing until \
             the cutover carries the counters (or custody wallet unfreeze raises them)",
            f.id,
            f.mounts
                .iter()
                .map(|m| format!("{}/", escape(m)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => "Restore fence: none (the cluster has no signer mount)".to_owned(),
    };
    let audit_line = match &manifest.audit_devices {
        Some(d) => format!(
            "Audit devices recorded: {}",
            crate::flows::audit_devices::listing(d)
        ),
        None => "Audit devices: unknown (the token could not read sys/audit)".to_owned(),
    };
    ctx.ui.result(
        &format!(
            "Snapshot of {} ({}) saved to {}: {} bytes, sha256 {}, raft index {} term {}, in {seconds:.1} s.\n\
             Accounts recorded: {}\n{shares_line}\n{fence_line}\n{audit_line}\nManifest: {}\nTranscript head: {head}",
            escape(&manifest.cluster_name),
            escape(&manifest.cluster_id),
            out.display(),
            manifest.size,
            manifest.sha256,
            manifest.raft_index,
            manifest.raft_term,
            if manifest.accounts.is_empty() {
                "none (the token could not read them)".to_owned()
            } else {
                manifest.accounts.iter().map(|(n, a)| format!("{n} {a}")).collect::<Vec<_>>().join(", ")
            },
            manifest_file.display(),
        ),
        json!({
            "manifest": manifest,
            "seconds": seconds,
            "transcript_head": head,
            "share_set_unknown": share_set_unknown,
        }),
    );
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}
