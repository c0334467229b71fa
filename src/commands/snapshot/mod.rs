//! `custody snapshot save | verify | restore`: ceremony 5 and blue-green phase 1. verify and
//! restore share the age check (`age.rs`): an older snapshot than the newest recorded save of its
//! cluster is refused unless --allow-older.

mod age;
mod fence;
mod interrupt;
mod restore;
mod restore_test;
mod save;
mod throwaway_audit;
mod verify;

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::poll::poll;
use crate::snapshot::{self, ArchiveReport, Manifest};
use crate::vault::{Addr, Vault};

pub use restore::{RestorePlan, restore};
pub use restore_test::RestoreTest;
pub use save::save;
pub use verify::{verify, verify_with_shares};

/// How long a restored node may take to seal itself (6–8 s measured on OpenBao 2.7.2).
const RESEAL_BOUND: Duration = Duration::from_secs(60);

/// A snapshot checked: what the archive holds, its manifest if any, and the open file the
/// check read (an upload sends from it, so the bytes sent are the bytes checked).
struct Checked {
    report: ArchiveReport,
    manifest: Option<Manifest>,
    open: std::fs::File,
}

/// The archive's own checks, then the manifest's, naming whatever differs. `for_upload`
/// records the digests an upload of the same open file needs ([`snapshot::VerifiedReader`]).
fn check_against_manifest(file: &Path, for_upload: bool) -> Result<Checked> {
    let manifest = snapshot::manifest::read(file)?;
    let fence = manifest.as_ref().and_then(|m| m.restore_fence.as_ref());
    let open = snapshot::open(file)?;
    let report = snapshot::check_open(
        &open,
        file,
        snapshot::CheckOptions {
            chunk_digests: for_upload,
            find_in_state: fence.map(|f| format!("/restore-fence/{}", f.id).into_bytes()),
            ..Default::default()
        },
    )?;
    if let Some(m) = &manifest {
        let mismatch = |field: &str, manifest: String, file: String| {
            Error::verification(format!(
                "{field}: the manifest says {manifest}, the snapshot has {file}"
            ))
        };
        if m.sha256 != report.sha256 {
            return Err(mismatch("sha256", m.sha256.clone(), report.sha256.clone()));
        }
        if m.size != report.size {
            return Err(mismatch(
                "size",
                m.size.to_string(),
                report.size.to_string(),
            ));
        }
        if m.raft_index != report.meta.index {
            return Err(mismatch(
                "raft_index",
                m.raft_index.to_string(),
                report.meta.index.to_string(),
            ));
        }
        if m.raft_term != report.meta.term {
            return Err(mismatch(
                "raft_term",
                m.raft_term.to_string(),
                report.meta.term.to_string(),
            ));
        }
    }
    if let Some(f) = fence
        && report.state_matches < f.mounts.len()
    {
        return Err(Error::verification(format!(
            "the manifest says the snapshot carries restore fence {} in {} mount(s), but \
             state.bin holds it {} time(s): a cluster restored from this snapshot would sign \
             at once",
            f.id,
            f.mounts.len(),
            report.state_matches
        )));
    }
    Ok(Checked {
        report,
        manifest,
        open,
    })
}

/// Sends the checked bytes of `checked`'s open file to `addr` as a restore, and makes sure the
/// bytes sent are the bytes verified: a file changed in place since the check stops the upload
/// before a changed byte is sent (exit 3).
async fn upload_checked(
    vault: &Vault,
    addr: &Addr,
    checked: &Checked,
    file: &Path,
    doing: &str,
) -> Result<crate::vault::Sent> {
    let reader = snapshot::VerifiedReader::new(&checked.open, &checked.report).await?;
    let changed = reader.changed_flag();
    let sent = match vault.snapshot_upload(addr, reader, true).await {
        Err(e) if changed.changed() => {
            return Err(Error::verification(format!(
                "{doing}: {} changed after it was verified, so custody stopped the upload before \
                 any byte that was not verified left. The server got a cut-short archive, which it \
                 cannot restore from; check {addr} (`custody status`), keep the file where nobody \
                 writes to it, and verify and restore again",
                file.display()
            ))
            .caused_by(e));
        }
        other => other,
    };
    let sent = sent.map_err(|e| crate::flows::node_error(doing, e))?;
    if sent.sha256 != checked.report.sha256 || sent.size != checked.report.size {
        return Err(Error::verification(format!(
            "{doing}: the server was sent {} bytes with sha256 {}, not the {} bytes with sha256 {} \
             that were verified: it got something unverified; check {addr} and restore again from a \
             verified file",
            sent.size, sent.sha256, checked.report.size, checked.report.sha256
        )));
    }
    Ok(sent)
}

async fn wait_sealed(vault: &Vault, addr: &Addr, bound: Duration) -> Result<()> {
    poll(bound, Duration::from_millis(250), || async {
        match vault.seal_status(addr).await {
            Ok(s) if s.sealed => Ok(()),
            Ok(_) => Err("it is unsealed".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
    .map_err(|why| {
        Error::failed(format!(
            "{addr} did not seal itself within {bound:?} after the restore ({why})"
        ))
    })
}

async fn wait_active(vault: &Vault, addr: &Addr, bound: Duration) -> Result<()> {
    poll(bound, Duration::from_millis(250), || async {
        match vault.health(addr).await {
            Ok((crate::vault::HaRole::Active, _)) => Ok(()),
            Ok((role, _)) => Err(format!("{role:?}")),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
    .map_err(|why| {
        Error::failed(format!(
            "{addr} did not become active within {bound:?} ({why})"
        ))
    })
}
