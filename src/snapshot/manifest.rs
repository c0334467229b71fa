//! `FILE.manifest.json`: what `snapshot save` knew about the snapshot and its cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Context, Kind, Result};

pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub schema_version: u32,
    pub file: String,
    pub sha256: String,
    pub size: u64,
    pub raft_index: u64,
    pub raft_term: u64,
    pub cluster_id: String,
    pub cluster_name: String,
    pub nodes: Vec<String>,
    pub server_version: String,
    /// The source's seal: its shares (n) and threshold (t). A server restored from this
    /// snapshot keeps its own seal configuration, so it must have the same.
    pub seal_shares: u32,
    pub seal_threshold: u32,
    pub time: String,
    pub mount: String,
    /// Account name → address, where the token could read them.
    #[serde(default)]
    pub accounts: BTreeMap<String, String>,
    #[serde(default)]
    pub plugin_sha256: Option<String>,
    pub custody_version: String,
    /// The unseal shares whose root key seals this snapshot: the set the save's transcript had
    /// in force, when its shape matched the cluster's seal. None when unknown (and in manifests
    /// written before custody recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_set: Option<crate::transcript::share_sets::ShareSet>,
    /// The restore fence the save wrote into every signer mount just before the snapshot: a
    /// cluster restored from it comes up frozen. None when the cluster had no signer mount (and
    /// in manifests written before custody fenced its snapshots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_fence: Option<RestoreFence>,
    /// The source's audit devices (`sys/audit` on its active node: type, path, options), which
    /// a restored server holds in storage and checks against its configuration. None when the
    /// save's token could not read them (and in manifests written before custody recorded
    /// them); empty when the source had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_devices: Option<Vec<crate::vault::AuditDevice>>,
}

/// The fence a snapshot carries: its id and the signer mounts it was written into.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RestoreFence {
    pub id: String,
    pub mounts: Vec<String>,
}

pub fn manifest_path(snapshot: &Path) -> PathBuf {
    let mut s = snapshot.as_os_str().to_owned();
    s.push(".manifest.json");
    PathBuf::from(s)
}

pub fn read(snapshot: &Path) -> Result<Option<Manifest>> {
    let path = manifest_path(snapshot);
    if !path.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(&path).context(format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).map(Some).with_kind(
        Kind::Verification,
        format!("{}: not a custody manifest", path.display()),
    )
}
