//! `custody snapshot save | verify | restore`: ceremony 5 and blue-green phase 1.

mod restore;
mod restore_test;
mod save;
mod verify;

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::flows::poll::poll;
use crate::snapshot::{self, ArchiveReport, Manifest};
use crate::vault::{Addr, Vault};

pub use restore::restore;
pub use restore_test::RestoreTest;
pub use save::save;
pub use verify::{verify, verify_with_shares};

/// How long a restored node may take to seal itself (6–8 s measured on OpenBao 2.7.2).
const RESEAL_BOUND: Duration = Duration::from_secs(60);

/// The archive's own checks, then the manifest's, naming whatever differs.
fn check_against_manifest(file: &Path) -> Result<(ArchiveReport, Option<Manifest>)> {
    let report = snapshot::check_file(file)?;
    let manifest = snapshot::manifest::read(file)?;
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
    Ok((report, manifest))
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
