//! After the cutover: `custody reconcile` over both clusters' audit logs (every node's) finds
//! every nonce the Authority has on the chain signed through the plugin, each line proven the
//! server's own with a witness's token.

use super::*;
use crate::vault::Addr;

/// The witness's policy: the Authority's reader, and `sys/audit-hash` of the clusters' device
/// (no sudo), so that `reconcile` proves each line. Made before the snapshot, so green holds it.
pub(super) async fn witness_token(vault: &Vault, addr: &Addr) -> Result<SecretString> {
    let policy = format!(
        "path \"{MOUNT}/accounts/{AUTHORITY}\" {{\n  capabilities = [\"read\"]\n}}\n\
         path \"sys/audit-hash/file\" {{\n  capabilities = [\"update\"]\n}}\n"
    );
    vault
        .put_policy(addr, "custody-rehearsal-witness", &policy)
        .await
        .map_err(|e| crate::flows::node_error("writing the witness's policy", e))?;
    let (token, _) = vault
        .create_orphan_token(
            addr,
            &crate::vault::OrphanToken {
                policies: &["custody-rehearsal-witness".to_owned()],
                period: None,
                display_name: "custody-rehearsal-witness",
            },
        )
        .await
        .map_err(|e| crate::flows::node_error("creating the witness's token", e))?;
    Ok(token)
}

/// `custody reconcile` as its own process, through green with the witness's token, over every
/// node's audit log of blue and green: every mined nonce explained, none signed twice.
pub(super) fn accounted(
    dir: &Path,
    blue: &LocalCluster,
    green: &LocalCluster,
    witness: &SecretString,
    chain: &crate::localcluster::anvil::LocalChain,
    transcript: &Path,
) -> Result<String> {
    let token_file = dir.join("witness.token");
    write_private(&token_file, witness.expose().as_bytes(), false)?;
    let mut args: Vec<String> = Vec::new();
    for a in green.addrs() {
        args.extend(["--addr".to_owned(), a.to_string()]);
    }
    args.extend(
        [
            "--ca-cert",
            &green.ca_cert.display().to_string(),
            "--transcript",
            &transcript.display().to_string(),
            "--token-file",
            &token_file.display().to_string(),
            "--format",
            "json",
            "reconcile",
            "--rpc",
            &chain.url,
            "--account",
            AUTHORITY,
            "--mount",
            MOUNT,
        ]
        .map(String::from),
    );
    let logs: Vec<PathBuf> = (blue.nodes.iter().chain(&green.nodes))
        .map(|n| n.audit_log())
        .collect();
    for l in &logs {
        args.extend(["--audit-log".to_owned(), l.display().to_string()]);
    }
    let (code, stdout, output) = super::driver::run_custody(dir, "reconcile", &args)?;
    let r: serde_json::Value = serde_json::from_str(&stdout).map_err(|e| {
        Error::failed(format!(
            "custody reconcile exited {code}: {}",
            tail(&output, 20)
        ))
        .caused_by(e)
    })?;
    let mined = r["mined_nonces"].as_u64().unwrap_or_default();
    if code != 0
        || r["explained"].as_u64() != Some(mined)
        || mined == 0
        || r["proof"] != "audit-hash"
    {
        return Err(Error::verification(format!(
            "custody reconcile exited {code}: {} of {mined} mined nonces explained, proof {}, \
             unexplained {}, equivocations {}",
            r["explained"], r["proof"], r["unexplained"], r["equivocations"]
        )));
    }
    Ok(format!(
        "custody reconcile over the 6 nodes' audit logs (blue's and green's, {} lines): all {mined} nonces the \
         Authority has on the chain were signed through the plugin, each line proven the server's own \
         (sys/audit-hash of the mined raw transaction, a witness's token); {} signed but never mined, {} \
         bad lines",
        r["log_lines"],
        r["unmined"].as_array().map_or(0, Vec::len),
        r["bad_lines_total"]
    ))
}
