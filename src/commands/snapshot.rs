//! `custody snapshot save | verify | restore`: ceremony 5 and blue-green phase 1.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;

use crate::cli::SnapshotVerifyArgs;
use crate::error::{Context as _, Error, Result};
use crate::flows::poll::poll;
use crate::flows::{Ctx, active_node, node_error};
use crate::fsutil::{refuse_existing, write_private};
use crate::localcluster::{ClusterSpec, LocalCluster, find_bao};
use crate::secret::SecretString;
use crate::shamir::Share;
use crate::snapshot::{self, ArchiveReport, Manifest, manifest_path};
use crate::transcript::Step;
use crate::vault::{Addr, NodeError, Vault};

/// How long a restored node may take to seal itself (6–8 s measured on OpenBao 2.7.2).
const RESEAL_BOUND: Duration = Duration::from_secs(60);

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
    refuse_existing(out)?;
    refuse_existing(&manifest_file)?;
    let partial = PathBuf::from(format!("{}.partial", out.display()));
    if partial.exists() {
        return Err(Error::precondition(format!(
            "{} exists: an earlier save was interrupted; delete it and save again",
            partial.display()
        )));
    }
    let vault = ctx.vault()?;
    let addrs = ctx.require_addrs()?;
    let addr = active_node(&vault, addrs).await?;
    let status = vault
        .seal_status(&addr)
        .await
        .map_err(|e| node_error("reading the cluster's status", e))?;

    let started = Instant::now();
    let mut resp = vault
        .snapshot_download(&addr)
        .await
        .map_err(|e| node_error("asking for a snapshot", e))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode_0600()
        .open(&partial)
        .map_err(|e| Error::failed(format!("creating {}: {e}", partial.display())))?;
    let mut ctx_hash = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut size = 0u64;
    let bar = ctx.ui.byte_progress("snapshot");
    let write_result: Result<()> = async {
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| Error::failed(format!("receiving the snapshot: {e}")))?
        {
            file.write_all(&chunk)
                .map_err(|e| Error::failed(format!("writing {}: {e}", partial.display())))?;
            ctx_hash.update(&chunk);
            size += chunk.len() as u64;
            bar.inc(chunk.len() as u64);
        }
        file.sync_all()
            .map_err(|e| Error::failed(format!("syncing {}: {e}", partial.display())))
    }
    .await;
    bar.finish();
    if let Err(e) = write_result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let sha256 = hex::encode(ctx_hash.finish().as_ref());
    let meta = match snapshot::read_meta(&partial) {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.doing("the server sent something that is not a snapshot"));
        }
    };
    std::fs::rename(&partial, out).map_err(|e| {
        Error::failed(format!(
            "renaming {} to {}: {e}",
            partial.display(),
            out.display()
        ))
    })?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    let elapsed = started.elapsed();

    let (accounts, plugin_sha256) = authority_facts(&vault, &addr, mount).await;
    let manifest = Manifest {
        schema_version: snapshot::manifest::MANIFEST_VERSION,
        file: out
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
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
    ctx.ui.result(
        &format!(
            "Snapshot of {} ({}) saved to {}: {size} bytes, sha256 {sha256}, raft index {} term {}, in {:.1} s.\n\
             Accounts recorded: {}\nManifest: {}\nTranscript head: {}",
            manifest.cluster_name,
            manifest.cluster_id,
            out.display(),
            meta.index,
            meta.term,
            elapsed.as_secs_f64(),
            if manifest.accounts.is_empty() {
                "none (the token could not read them)".to_owned()
            } else {
                manifest.accounts.iter().map(|(n, a)| format!("{n} {a}")).collect::<Vec<_>>().join(", ")
            },
            manifest_file.display(),
            head.head_hash
        ),
        json!({ "manifest": manifest, "seconds": elapsed.as_secs_f64(), "transcript_head": head.head_hash }),
    );
    Ok(())
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

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

pub async fn verify(ctx: &Ctx, args: &SnapshotVerifyArgs) -> Result<()> {
    verify_with_shares(ctx, args, None).await.map(|_| ())
}

/// `verify`, with the quorum's shares already in hand (the rehearsal) or read from the inputs.
pub async fn verify_with_shares(
    ctx: &Ctx,
    args: &SnapshotVerifyArgs,
    given: Option<&crate::flows::shares::Shares>,
) -> Result<RestoreTest> {
    let started = Instant::now();
    let (report, manifest) = check_against_manifest(&args.file)?;
    let offline_secs = started.elapsed().as_secs_f64();
    let mut lines = vec![
        format!(
            "{}: a Raft snapshot, {} bytes, sha256 {}",
            args.file.display(),
            report.size,
            report.sha256
        ),
        format!(
            "members {} — each matches SHA256SUMS",
            report
                .members
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!(
            "meta.json: raft index {} term {}, state.bin {} bytes",
            report.meta.index, report.meta.term, report.meta.state_size
        ),
    ];
    if report.sealed_sums {
        lines.push(
            "SHA256SUMS.sealed is SHA256SUMS encrypted with the source cluster's keys: only a server \
             unsealed with that cluster's quorum can check it, which a restore does"
                .into(),
        );
    }
    match &manifest {
        Some(_) => lines.push(format!(
            "{}: sha256, size, raft index and term match",
            manifest_path(&args.file).display()
        )),
        None => lines.push(format!(
            "no manifest ({}): only the archive's own checksums were checked",
            manifest_path(&args.file).display()
        )),
    }
    let mut restore = None;
    if args.restore_test {
        let m = manifest.as_ref().ok_or_else(|| {
            Error::precondition(
                "--restore-test compares with the manifest written by snapshot save; there is none",
            )
        })?;
        let r = restore_test(ctx, args, m, given).await?;
        lines.push(format!(
            "restore test: restored into a throwaway OpenBao, unsealed with the quorum, {} is {} as recorded, raft index {} ≥ {}",
            args.account, r.address, r.raft_index, m.raft_index
        ));
        restore = Some(r);
    }
    let facts = json!({
        "file": args.file.display().to_string(),
        "sha256": report.sha256,
        "size": report.size,
        "raft_index": report.meta.index,
        "raft_term": report.meta.term,
        "manifest": manifest.is_some(),
        "restore_test": restore,
    });
    let head = ctx
        .transcript
        .append(Step::new("snapshot", "verify", "operator", facts.clone()))?;
    lines.push(format!("Transcript head: {}", head.head_hash));
    ctx.ui.result(
        &lines.join("\n"),
        json!({ "verify": facts, "archive": report, "offline_seconds": offline_secs, "transcript_head": head.head_hash }),
    );
    Ok(restore.unwrap_or(RestoreTest {
        address: String::new(),
        raft_index: 0,
        seconds: 0.0,
        token: "",
    }))
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreTest {
    pub address: String,
    pub raft_index: u64,
    pub seconds: f64,
    pub token: &'static str,
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

async fn restore_test(
    ctx: &Ctx,
    args: &SnapshotVerifyArgs,
    manifest: &Manifest,
    given: Option<&crate::flows::shares::Shares>,
) -> Result<RestoreTest> {
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
    let bao = find_bao(args.bao_bin.as_deref())?;
    let started = Instant::now();
    let cluster = LocalCluster::start(ClusterSpec {
        plugins: vec![plugin.clone()],
        ..ClusterSpec::raft("restore-test", 1, bao)
    })?;
    let throwaway = Vault::new(Some(&cluster.ca_cert), None)?;
    let addr = cluster.addrs()[0].clone();

    // A throwaway init, its keys held only in memory, so the restore can be sent. A restored
    // server keeps its own seal configuration, so it is split as the source's was.
    let init = throwaway
        .init(
            &addr,
            &crate::vault::InitRequest::plain(manifest.seal_shares, manifest.seal_threshold),
        )
        .await
        .map_err(|e| node_error("initializing the throwaway server", e))?;
    let root = SecretString::new(init.root_token.clone());
    for k in init.keys.iter().take(manifest.seal_threshold as usize) {
        let key = SecretString::new(k.clone());
        throwaway
            .unseal(&addr, &key)
            .await
            .map_err(|e| node_error("unsealing the throwaway server", e))?;
    }
    wait_active(&throwaway, &addr, Duration::from_secs(30)).await?;
    throwaway
        .with_token(Some(root))
        .snapshot_upload(&addr, &args.file, true)
        .await
        .map_err(|e| node_error("restoring the snapshot into the throwaway server", e))?;
    wait_sealed(&throwaway, &addr, RESEAL_BOUND).await?;

    // The original quorum unseals it.
    let status = throwaway
        .seal_status(&addr)
        .await
        .map_err(|e| node_error("reading the restored server", e))?;
    let gathered;
    let shares = match given {
        Some(s) => s,
        None => {
            gathered = crate::flows::shares::gather(ctx, &args.shares, status.t)?;
            &gathered
        }
    };
    let mut unsealed = false;
    for share in &shares.shares {
        match throwaway.unseal(&addr, &share.text).await {
            Ok(s) if !s.sealed => {
                unsealed = true;
                break;
            }
            Ok(_) => {}
            Err(e) => {
                return Err(Error::verification(format!(
                    "the restored server refused the shares ({e}): they are not the quorum of the cluster this snapshot came from"
                )));
            }
        }
    }
    if !unsealed {
        return Err(Error::usage(format!(
            "the restored server needs {} shares of the source cluster's quorum; {} were given",
            status.t,
            shares.shares.len()
        )));
    }
    wait_active(&throwaway, &addr, Duration::from_secs(30)).await?;

    // The account, with the operator's token, or with a root token the quorum makes here.
    let operator = throwaway.with_token(Some(token.clone()));
    let path = format!("{}/accounts/{}", args.mount, args.account);
    let (address, how) = match read_address(&operator, &addr, &path).await {
        Ok(a) => (a, "operator token"),
        Err(NodeError::Api { status: 403, .. }) => {
            let root = generate_root_otp(&operator, &addr, &shares.shares).await?;
            let as_root = throwaway.with_token(Some(root));
            let a = read_address(&as_root, &addr, &path)
                .await
                .map_err(|e| node_error(&format!("reading {path} on the restored server"), e))?;
            let _ = as_root.revoke_self(&addr).await;
            (
                a,
                "root token generated on the throwaway server by the quorum",
            )
        }
        Err(e) => {
            return Err(node_error(
                &format!("reading {path} on the restored server"),
                e,
            ));
        }
    };
    let leader = throwaway
        .leader(&addr)
        .await
        .map_err(|e| node_error("reading the restored raft index", e))?;
    drop(cluster);

    let recorded = manifest.accounts.get(&args.account).ok_or_else(|| {
        Error::verification(format!(
            "the manifest records no address for {} (the token used at save could not read it); restored: {address}",
            args.account
        ))
    })?;
    if !recorded.eq_ignore_ascii_case(&address) {
        return Err(Error::verification(format!(
            "{}: the restored address is {address}, the manifest recorded {recorded}",
            args.account
        )));
    }
    if leader.raft_committed_index < manifest.raft_index {
        return Err(Error::verification(format!(
            "the restored raft index {} is below the manifest's {}",
            leader.raft_committed_index, manifest.raft_index
        )));
    }
    Ok(RestoreTest {
        address,
        raft_index: leader.raft_committed_index,
        seconds: started.elapsed().as_secs_f64(),
        token: how,
    })
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

/// A root token on the throwaway server, from the same quorum, by the one-time-pad flow (it is
/// only ever in memory). `token` is the ceremony token where the server needs one.
async fn generate_root_otp(vault: &Vault, addr: &Addr, shares: &[Share]) -> Result<SecretString> {
    let family = crate::flows::root_generation::detect_family(vault, addr).await?;
    let _ = vault.root_generation_cancel(addr, family).await;
    let mut attempt = vault
        .root_generation_start(addr, family, None)
        .await
        .map_err(|e| node_error("starting a root generation on the throwaway server", e))?;
    let otp = SecretString::new(std::mem::take(&mut attempt.otp));
    for share in shares {
        let nonce = attempt.nonce.clone();
        attempt = vault
            .root_generation_update(addr, family, &share.text, &nonce)
            .await
            .map_err(|e| node_error("root generation on the throwaway server", e))?;
        if attempt.complete {
            break;
        }
    }
    let encoded = attempt.encoded();
    if !attempt.complete || encoded.is_empty() {
        return Err(Error::failed(
            "the root generation on the throwaway server did not complete",
        ));
    }
    let engine = base64::engine::general_purpose::STANDARD_NO_PAD;
    let xored = zeroize::Zeroizing::new(
        engine
            .decode(encoded.trim_end_matches('='))
            .map_err(|e| Error::failed(format!("the encoded root token is not base64: {e}")))?,
    );
    let otp_bytes = otp.expose().as_bytes();
    if xored.len() != otp_bytes.len() {
        return Err(Error::failed(
            "the encoded root token and the one-time pad differ in length",
        ));
    }
    let token: Vec<u8> = xored.iter().zip(otp_bytes).map(|(a, b)| a ^ b).collect();
    let token = String::from_utf8(token)
        .map_err(|_| Error::failed("the decoded root token is not text"))?;
    Ok(SecretString::new(token))
}

pub async fn restore(ctx: &Ctx, file: &Path, force: bool, peer_wait: Duration) -> Result<()> {
    ctx.require_token("snapshot restore (the target cluster's own token)")?;
    let (report, manifest) = check_against_manifest(file)?;
    let vault = ctx.vault()?;
    let addrs = ctx.require_addrs()?;
    let nodes = crate::flows::nodes::all_status(&vault, addrs).await;
    match &manifest {
        None if !force => {
            return Err(Error::precondition(format!(
                "{} has no manifest: custody cannot tell whether this cluster is the one it came from; \
                 give --force to restore anyway",
                file.display()
            )));
        }
        Some(m) if !force => {
            let same_name = nodes
                .iter()
                .any(|n| !n.cluster_name.is_empty() && n.cluster_name == m.cluster_name);
            let same_node = addrs.iter().any(|a| m.nodes.contains(&a.to_string()));
            if same_name || same_node {
                return Err(Error::precondition(format!(
                    "the target looks like the cluster this snapshot came from ({}{}); a restore would roll it back. \
                     Nothing was changed; give --force if that is what you want",
                    if same_name {
                        format!("cluster name {}", m.cluster_name)
                    } else {
                        String::new()
                    },
                    if same_node {
                        format!(
                            "{}node {}",
                            if same_name { ", " } else { "" },
                            m.nodes.join(", ")
                        )
                    } else {
                        String::new()
                    }
                )));
            }
        }
        _ => {}
    }
    if let Some(m) = &manifest
        && let Some(n) = nodes.iter().find(|n| {
            n.reachable
                && n.initialized
                && (n.threshold, n.shares) != (m.seal_threshold, m.seal_shares)
        })
    {
        return Err(Error::precondition(format!(
            "{} is sealed {} of {}, the source was {} of {}: a restored server keeps its own seal \
             configuration, so the source's quorum could not unseal it. Initialize the target with \
             --threshold {} and {} keys; nothing was changed",
            n.addr,
            n.threshold,
            n.shares,
            m.seal_threshold,
            m.seal_shares,
            m.seal_threshold,
            m.seal_shares
        )));
    }
    let addr = active_node(&vault, addrs).await?;
    crate::flows::raft_peers::wait_stable_voters(
        &ctx.ui,
        &vault,
        &addr,
        peer_wait,
        "A restore now could leave that follower running with the target's old keys, never to \
         rejoin. Nothing was changed: bring the peer back (or remove it with `bao operator raft \
         remove-peer`), wait for autopilot to promote it, and restore again",
    )
    .await?;
    let started = Instant::now();
    vault
        .snapshot_upload(&addr, file, true)
        .await
        .map_err(|e| node_error(&format!("restoring {} into {addr}", file.display()), e))?;
    wait_sealed(&vault, &addr, RESEAL_BOUND).await?;
    let facts = json!({
        "file": file.display().to_string(),
        "sha256": report.sha256,
        "raft_index": report.meta.index,
        "target": addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "restored_into": addr.to_string(),
        "source_cluster": manifest.as_ref().map(|m| m.cluster_name.clone()),
        "forced": force,
    });
    let head = ctx.transcript.append(Step::new(
        "blue-green",
        "restore",
        "operator",
        facts.clone(),
    ))?;
    ctx.ui.result(
        &format!(
            "Restored {} into {addr} in {:.1} s; the node sealed itself.\n\
             It now holds the source cluster's data and keys: the ORIGINAL quorum must unseal it \
             (`custody unseal` with the source's shares; the target's own init shares no longer work).\n\
             Transcript head: {}",
            file.display(),
            started.elapsed().as_secs_f64(),
            head.head_hash
        ),
        json!({ "restore": facts, "transcript_head": head.head_hash }),
    );
    Ok(())
}
