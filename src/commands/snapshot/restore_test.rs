//! The restore test: the snapshot restored into a throwaway one-node OpenBao, unsealed by the
//! source's quorum, and the Authority's address and the raft index compared with the manifest.

use std::path::Path;
use std::time::{Duration, Instant};

use super::interrupt::Interrupt;
use super::{Checked, RESEAL_BOUND, upload_checked, wait_active, wait_sealed};
use crate::cli::SnapshotVerifyArgs;
use crate::error::{Error, Result};
use crate::flows::shares::{self, Shares};
use crate::flows::{Ctx, node_error};
use crate::localcluster::known_bao::{self, ServerBinary};
use crate::localcluster::owned_dir::{self, OwnedDir};
use crate::localcluster::{ClusterSpec, LocalCluster};
use crate::pgp::SecretKeyFile;
use crate::secret::SecretString;
use crate::snapshot::Manifest;
use crate::snapshot::manifest::RestoreFence;
use crate::transcript::share_sets::ShareSet;
use crate::ui::escape;
use crate::vault::{Addr, NodeError, Vault};

/// How long the throwaway server may take to become active after an unseal.
const ACTIVE_BOUND: Duration = Duration::from_secs(30);
/// The throwaway's private directory in the temporary directory: the checked server binary,
/// the TLS files, the plugin and the restored data. A killed run's is removed by the next.
pub const DIR_PREFIX: &str = "custody-restore-test-";

#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreTest {
    pub address: String,
    pub raft_index: u64,
    pub seconds: f64,
    pub token: &'static str,
    /// The OpenBao binary the throwaway ran: path, version, sha256, why it was trusted.
    pub server: ServerBinary,
    /// The restore fence every fenced mount of the restored copy was seen frozen on (none
    /// when the snapshot carries no fence).
    pub frozen_on_fence: Option<String>,
}

pub(super) async fn restore_test(
    ctx: &Ctx,
    args: &SnapshotVerifyArgs,
    manifest: &Manifest,
    checked: &Checked,
    given: Option<&Shares>,
    set: Option<&ShareSet>,
) -> Result<(RestoreTest, Vec<String>)> {
    let token = ctx.token.clone().ok_or_else(|| {
        Error::usage("--restore-test reads the account with a token valid in the snapshot: set VAULT_TOKEN or --token-file")
    })?;
    let plugin = args
        .plugin_bin
        .as_ref()
        .ok_or_else(|| Error::usage("--restore-test needs --plugin-bin FILE"))?;
    if !plugin.is_file() {
        return Err(Error::usage(format!(
            "--plugin-bin {}: not a file",
            plugin.display()
        )));
    }
    // The binary that will receive the snapshot, the shares and the token: a known one or the
    // one named on purpose, refused before anything is asked or started.
    let pin = known_bao::pin(args.bao_bin.as_deref(), args.bao_sha256.as_deref())?;
    // The snapshot's own audit devices, declared as they were (else the restored server never
    // becomes active), and only ones whose records stay in the throwaway's directory.
    let audit = super::throwaway_audit::stanzas_for(manifest)?;
    sweep_left(ctx);
    // The shares first, each holder checked against the snapshot's set, before any server work:
    // a restored server keeps its own seal, split as the source's was.
    let gathered;
    let shares = match given {
        Some(s) => s,
        None => {
            gathered = gather_shares(ctx, args, manifest.seal_threshold, set)?;
            &gathered
        }
    };
    for fpr in &shares.holders {
        refuse_outsider(set, fpr)?;
    }
    let mut interrupt = Interrupt::listen()?;
    let dir = OwnedDir::create(DIR_PREFIX)?;
    // The server runs from the copy in its private directory whose bytes were hashed as they
    // were written: a file swapped in at the original path after the check never runs.
    let bao = pin.install(&dir.path().join("bin"))?;
    let server = pin.server_binary(&bao)?;
    ctx.ui.status(format!(
        "The throwaway server runs {} (copied into {} and started from there)",
        server.line(),
        dir.path().display()
    ));
    // A signal during the copy: no server is started at all.
    if let Some(signal) = interrupt.pending().await {
        return Err(interrupted(signal, dir, "no server was started"));
    }
    let started = Instant::now();
    let spec = ClusterSpec {
        dir: Some(dir.path().join("server")),
        plugins: vec![plugin.clone()],
        die_with_parent: true,
        audit: Some(audit),
        ..ClusterSpec::raft("restore-test", 1, bao)
    };
    let mut cluster = LocalCluster::start(spec).map_err(|e| start_failed(e, dir.path()))?;
    let throwaway = Throwaway {
        vault: Vault::new(Some(&cluster.ca_cert), None)?,
        addr: cluster.addrs()[0].clone(),
    };
    let path = format!("{}/accounts/{}", args.mount, args.account);
    // A signal received while the server started (blocking work) is seen here at once.
    let outcome = tokio::select! {
        biased;
        signal = interrupt.received() => Err(signal),
        checked = throwaway.check(args, manifest, checked, shares, token, &path) => Ok(checked),
    };
    let (address, how, raft_index) = match outcome {
        Err(signal) => {
            cluster.kill_all();
            drop(cluster);
            return Err(interrupted(signal, dir, "the throwaway server was killed"));
        }
        Ok(checked) => {
            drop(cluster);
            remove_dir(ctx, dir);
            checked?
        }
    };
    matches_manifest(manifest, &args.account, &address, raft_index)?;
    Ok((
        RestoreTest {
            address,
            raft_index,
            seconds: started.elapsed().as_secs_f64(),
            token: how,
            server,
            frozen_on_fence: manifest.restore_fence.as_ref().map(|f| f.id.clone()),
        },
        shares.holders.clone(),
    ))
}

/// Removes the directories of restore tests whose custody was killed (their lock released),
/// saying which.
fn sweep_left(ctx: &Ctx) {
    let (swept, failed) = owned_dir::sweep(DIR_PREFIX);
    for s in swept {
        let owner = match s.owner {
            Some(pid) => format!("custody pid {pid}, which is gone"),
            None => {
                "no owner lock: a custody older than this one left it; nothing runs in it".into()
            }
        };
        let killed = if s.killed.is_empty() {
            String::new()
        } else {
            format!(
                "; killed what still ran in it: pid {}",
                s.killed
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        ctx.ui.status(format!(
            "Removed {}, left by a restore test that was killed ({owner}){killed}",
            s.path.display()
        ));
    }
    for (path, e) in failed {
        ctx.ui.warn(format!(
            "{} was left by a killed restore test and could not be removed: {e}",
            path.display()
        ));
    }
}

fn remove_dir(ctx: &Ctx, dir: OwnedDir) {
    let shown = dir.path().display().to_string();
    if let Err(e) = dir.remove() {
        ctx.ui.warn(format!(
            "the throwaway's directory {shown} could not be removed: {e}"
        ));
    }
}

/// The error of a restore test interrupted by `signal` (`what` became of its server): the
/// directory removed, or why not.
fn interrupted(signal: &str, dir: OwnedDir, what: &str) -> Error {
    let shown = dir.path().display().to_string();
    match dir.remove() {
        Ok(()) => Error::failed(format!(
            "interrupted by {signal} during the restore test: {what} and its directory {shown} \
             removed; nothing was recorded"
        )),
        Err(e) => Error::failed(format!(
            "interrupted by {signal} during the restore test: {what}, but its directory {shown} \
             could not be removed (remove it by hand: it may hold the restored data); nothing \
             was recorded"
        ))
        .caused_by(e),
    }
}

/// A server that did not start: its last log lines kept in the error, since its directory
/// (which could hold restored data) is removed.
fn start_failed(e: Error, dir: &Path) -> Error {
    let log = std::fs::read_to_string(dir.join("server/node1/server.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..]
        .iter()
        .map(|l| escape(l))
        .collect::<Vec<_>>()
        .join("\n");
    e.doing("starting the throwaway server").hint(format!(
        "its last log lines (its directory is removed):\n{tail}"
    ))
}

/// The holders' shares for the restore test, `need` of them: the snapshot's set listed first
/// (when known), the hidden prompts naming it; a `--secret-key` whose holder is not in the set
/// refused before its share is decrypted; share files short of a quorum topped up at hidden prompts.
fn gather_shares(
    ctx: &Ctx,
    args: &SnapshotVerifyArgs,
    need: u32,
    set: Option<&ShareSet>,
) -> Result<Shares> {
    if let Some(set) = set {
        ctx.ui.status(holders_listing(set));
    }
    for key in &args.shares.secret_key {
        refuse_outsider(set, &SecretKeyFile::load(key)?.fingerprint())?;
    }
    let of = set.map(|s| format!("set {}", s.id));
    let mut shares = shares::gather_for(ctx, &args.shares, need, of.as_deref())?;
    if !args.shares.share_file.is_empty() {
        shares::prompt_rest(ctx, &mut shares, need, of.as_deref())?;
    }
    Ok(shares)
}

/// `This snapshot opens with the shares of set ss-…: 3 of 5 of:` and a line per holder.
pub(super) fn holders_listing(set: &ShareSet) -> String {
    let mut out = format!(
        "This snapshot opens with the shares of set {}: {} of {} of:",
        escape(&set.id),
        set.threshold,
        set.holders.len()
    );
    for h in &set.holders {
        out.push_str(&format!(
            "\n  {}. {} {}",
            h.index,
            escape(&h.fingerprint),
            escape(&h.user_id)
        ));
    }
    out
}

/// A holder identified by their key (`fpr`) who is not a holder of the snapshot's set holds no
/// share that opens it: refused (exit 4) before anything is sent.
fn refuse_outsider(set: Option<&ShareSet>, fpr: &str) -> Result<()> {
    match set {
        Some(set) if !set.holds(fpr) => Err(Error::precondition(format!(
            "the key {} is not a holder of set {} ({} of {}, from {} {}), whose shares this \
             snapshot needs: its share cannot open it; nothing was sent",
            escape(fpr),
            escape(&set.id),
            set.threshold,
            set.holders.len(),
            escape(&set.origin.ceremony),
            escape(&set.origin.time)
        ))
        .hint("the holders of that set are listed by `custody snapshot verify FILE`")),
        _ => Ok(()),
    }
}

/// The one node of the throwaway server.
struct Throwaway {
    vault: Vault,
    addr: Addr,
}

impl Throwaway {
    /// The restore, the quorum's unseal, and what the restored server says: the account's
    /// address, which token read it, and the raft index.
    async fn check(
        &self,
        args: &SnapshotVerifyArgs,
        manifest: &Manifest,
        checked: &Checked,
        shares: &Shares,
        token: SecretString,
        path: &str,
    ) -> Result<(String, &'static str, u64)> {
        self.restore(args, manifest, checked).await?;
        self.unseal(shares).await?;
        let (address, how) = self
            .read_restored(token, path, manifest.restore_fence.as_ref(), shares)
            .await?;
        let leader = self
            .vault
            .leader(&self.addr)
            .await
            .map_err(|e| node_error("reading the restored raft index", e))?;
        Ok((address, how, leader.raft_committed_index))
    }

    /// A throwaway init, its keys held only in memory, so the restore can be sent; then the
    /// restore of the checked bytes, after which the server seals itself. A restored server
    /// keeps its own seal configuration, so it is split as the source's was.
    async fn restore(
        &self,
        args: &SnapshotVerifyArgs,
        manifest: &Manifest,
        checked: &Checked,
    ) -> Result<()> {
        let (vault, addr) = (&self.vault, &self.addr);
        let init = vault
            .init(
                addr,
                &crate::vault::InitRequest::plain(manifest.seal_shares, manifest.seal_threshold),
            )
            .await
            .map_err(|e| node_error("initializing the throwaway server", e))?;
        let root = SecretString::new(init.root_token.clone());
        for k in init.keys.iter().take(manifest.seal_threshold as usize) {
            let key = SecretString::new(k.clone());
            vault
                .unseal(addr, &key)
                .await
                .map_err(|e| node_error("unsealing the throwaway server", e))?;
        }
        wait_active(vault, addr, ACTIVE_BOUND).await?;
        upload_checked(
            &vault.with_token(Some(root)),
            addr,
            checked,
            &args.file,
            "restoring the snapshot into the throwaway server",
        )
        .await?;
        wait_sealed(vault, addr, RESEAL_BOUND).await
    }

    /// How many shares the restored server needs.
    async fn threshold(&self) -> Result<u32> {
        let status = self
            .vault
            .seal_status(&self.addr)
            .await
            .map_err(|e| node_error("reading the restored server", e))?;
        Ok(status.t)
    }

    /// The original quorum unseals it: shares of any other cluster are refused.
    async fn unseal(&self, shares: &Shares) -> Result<()> {
        for share in &shares.shares {
            match self.vault.unseal(&self.addr, &share.text).await {
                Ok(s) if !s.sealed => {
                    return wait_active(&self.vault, &self.addr, ACTIVE_BOUND).await;
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(Error::verification(format!(
                        "the restored server refused the shares ({e}): they are not the quorum of the cluster this snapshot came from"
                    )));
                }
            }
        }
        Err(Error::usage(format!(
            "the restored server needs {} shares of the source cluster's quorum; {} were given",
            self.threshold().await?,
            shares.shares.len()
        )))
    }

    /// The account's address and, for a fenced snapshot, that every fenced mount came up
    /// frozen on the fence (the restored copy signs nothing): with the operator's token, or with
    /// a root token the quorum makes here when that token may not read them; and which token
    /// read them.
    async fn read_restored(
        &self,
        token: SecretString,
        path: &str,
        fence: Option<&RestoreFence>,
        shares: &Shares,
    ) -> Result<(String, &'static str)> {
        let operator = self.vault.with_token(Some(token));
        let failed = |e| node_error(&format!("reading {path} on the restored server"), e);
        match self.reads(&operator, path, fence).await {
            Ok(a) => Ok((a?, "operator token")),
            Err(NodeError::Api { status: 403, .. }) => {
                let root = crate::flows::root_generation::generate_with_otp(
                    &operator,
                    &self.addr,
                    &shares.shares,
                )
                .await
                .map_err(|e| e.doing("on the throwaway server"))?;
                let as_root = self.vault.with_token(Some(root));
                let read = self.reads(&as_root, path, fence).await;
                let _ = as_root.revoke_self(&self.addr).await;
                Ok((
                    read.map_err(failed)??,
                    "root token generated on the throwaway server by the quorum",
                ))
            }
            Err(e) => Err(failed(e)),
        }
    }

    /// The reads [`Throwaway::read_restored`] makes with one token: the address, and the
    /// fenced mounts' freeze (exit 3 when one would sign).
    async fn reads(
        &self,
        as_: &Vault,
        path: &str,
        fence: Option<&RestoreFence>,
    ) -> std::result::Result<Result<String>, NodeError> {
        let address = read_address(as_, &self.addr, path).await?;
        let Some(f) = fence else {
            return Ok(Ok(address));
        };
        for mount in &f.mounts {
            let config = as_.signer(mount).config(&self.addr).await?;
            let on_fence = config["restored"]["fences"]
                .as_array()
                .is_some_and(|fs| fs.iter().any(|x| x["id"] == f.id.as_str()));
            if config["frozen"] != true || !on_fence {
                return Ok(Err(Error::verification(format!(
                    "the restored copy's {}/ is not frozen on the snapshot's restore fence {}: \
                     a cluster restored from this snapshot would sign",
                    crate::ui::escape(mount),
                    f.id
                ))));
            }
        }
        Ok(Ok(address))
    }
}

/// The restored account's address is the one the manifest recorded, and the restored raft
/// index is not below the manifest's.
fn matches_manifest(
    manifest: &Manifest,
    account: &str,
    address: &str,
    raft_index: u64,
) -> Result<()> {
    let recorded = manifest.accounts.get(account).ok_or_else(|| {
        Error::verification(format!(
            "the manifest records no address for {account} (the token used at save could not read it); restored: {address}"
        ))
    })?;
    if !recorded.eq_ignore_ascii_case(address) {
        return Err(Error::verification(format!(
            "{account}: the restored address is {address}, the manifest recorded {recorded}"
        )));
    }
    if raft_index < manifest.raft_index {
        return Err(Error::verification(format!(
            "the restored raft index {raft_index} is below the manifest's {}",
            manifest.raft_index
        )));
    }
    Ok(())
}

async fn read_address(
    vault: &Vault,
    addr: &Addr,
    path: &str,
) -> std::result::Result<String, NodeError> {
    let v = vault.get(addr, path).await?;
    v["data"]["address"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| NodeError::Decode(format!("{path} has no address")))
}
